"""The one HTTP client every source fetches through.

Timeouts, a size cap, redirects followed by hand (each hop checked again) and no requests
to private, loopback, link-local or metadata addresses unless the operator allows them.
The address check runs on the resolved addresses before any socket is opened, and the
connection goes to the address that was checked: the host is never resolved a second time,
so a DNS answer that changes in between (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

USER_AGENT = "ByteStackJobs/0.1 (+self-hosted scheduled queries)"
MAX_REDIRECTS = 5


class FetchError(Exception):
    """A fetch that failed, with a sentence a person can act on."""


@dataclass
class FetchPolicy:
    timeout: float = 20.0
    max_bytes: int = 10 * 1024 * 1024
    allow_private: bool = False
    # Networks reachable even when private ones are refused ("10.1.0.0/16", "127.0.0.0/8"):
    # one internal mirror, or loopback in a test that must see every other private hop refused.
    allowed_networks: tuple[str, ...] = ()
    # Politeness: at least this many seconds between two requests to one host (per process).
    min_interval: float = 0.0
    # Extra attempts after a refused connection or a 429/502/503/504 answer: a GET that
    # never reached the server, or that the server asked to repeat, is safe to send again.
    retries: int = 0


@dataclass
class Response:
    url: str
    status_code: int
    headers: httpx.Headers
    content: bytes


def resolve(host: str, port: int) -> list[str]:
    """Resolve a host name; tests replace this to prove the guard acts before any socket."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip


def _is_public(address: str) -> bool:
    ip = _ip(address)
    return ip.is_global and not ip.is_multicast


def _is_allowed(address: str, policy: FetchPolicy) -> bool:
    ip = _ip(address)
    return any(ip in ipaddress.ip_network(network) for network in policy.allowed_networks)


def check_url(url: str, policy: FetchPolicy) -> str:
    """Refuse a URL the policy does not allow; return the checked address to connect to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"Only http and https URLs can be fetched, not {parts.scheme or 'none'}.")
    host = parts.hostname
    if not host:
        raise FetchError(f"The URL {url!r} has no host.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"Could not resolve {host}: {exc}.") from None
    if not addresses:
        raise FetchError(f"Could not resolve {host}.")
    for address in addresses:
        if not (policy.allow_private or _is_public(address) or _is_allowed(address, policy)):
            raise FetchError(
                f"Refused to fetch {host}: it resolves to the private or local address "
                f"{address} (set BYTESTACK_ALLOW_PRIVATE_NETWORKS=1 to allow)."
            )
    return addresses[0]


def _pinned(url: str, address: str) -> tuple[httpx.URL, dict, dict]:
    """The request URL with the checked address as its host, plus the Host header and the TLS
    server name of the original host, so certificates are still checked against that name."""
    try:
        original = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"The URL {url!r} is not valid: {exc}.") from None
    host = original.raw_host.decode("ascii")
    return (
        original.copy_with(host=address.split("%", 1)[0]),
        {"Host": original.netloc.decode("ascii")},
        {"sni_hostname": host},
    )


RETRY_STATUSES = frozenset((429, 502, 503, 504))
MAX_RETRY_WAIT = 10.0


class _Retryable(FetchError):
    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _HostPacer:
    """Spaces requests to one host by the policy's interval, across a process's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def wait(self, host: str, interval: float) -> None:
        if interval <= 0:
            return
        with self._lock:
            moment = time.monotonic()
            start = max(moment, self._next.get(host, 0.0))
            self._next[host] = start + interval
        if start > moment:
            time.sleep(start - moment)


_pacer = _HostPacer()


def fetch(url: str, policy: FetchPolicy, headers: dict | None = None) -> Response:
    """GET a URL under the policy, politely and with safe retries; raise a readable FetchError."""
    attempt = 0
    while True:
        try:
            return _fetch_once(url, policy, headers)
        except _Retryable as exc:
            if attempt >= policy.retries:
                raise FetchError(str(exc)) from None
            wait = exc.wait if exc.wait is not None else 0.5 * 2**attempt
            if wait > MAX_RETRY_WAIT:
                raise FetchError(str(exc)) from None
            time.sleep(wait)
            attempt += 1


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _fetch_once(url: str, policy: FetchPolicy, headers: dict | None) -> Response:
    request_headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    request_headers.update(headers or {})
    timeout = httpx.Timeout(policy.timeout, connect=min(policy.timeout, 10.0))
    # No kept-alive connections: a connection is pinned to one host's address and TLS name.
    limits = httpx.Limits(max_keepalive_connections=0)
    current = url
    with httpx.Client(
        timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, host_header, extensions = _pinned(current, check_url(current, policy))
            _pacer.wait(urlsplit(current).hostname or "", policy.min_interval)
            try:
                with client.stream(
                    "GET",
                    target,
                    headers={**request_headers, **host_header},
                    extensions=extensions,
                ) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"{current} redirected without a Location.")
                        current = urljoin(current, location)
                        continue
                    if response.status_code in RETRY_STATUSES:
                        raise _Retryable(
                            f"{current} answered HTTP {response.status_code} "
                            f"{response.reason_phrase}.",
                            _retry_after(response.headers.get("retry-after")),
                        )
                    if response.status_code >= 400:
                        raise FetchError(
                            f"{current} answered HTTP {response.status_code} "
                            f"{response.reason_phrase}."
                        )
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                        raise FetchError(_too_large(current, policy))
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body.extend(chunk)
                        if len(body) > policy.max_bytes:
                            raise FetchError(_too_large(current, policy))
                    return Response(current, response.status_code, response.headers, bytes(body))
            except httpx.TimeoutException:
                raise FetchError(
                    f"{current} did not answer within {policy.timeout:g} s."
                ) from None
            except httpx.ConnectError as exc:
                raise _Retryable(f"Could not fetch {current}: {exc or 'connection refused'}.") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"Could not fetch {current}: {exc or type(exc).__name__}.") from None
        raise FetchError(f"{url} redirected more than {MAX_REDIRECTS} times.")


def _too_large(url: str, policy: FetchPolicy) -> str:
    return f"{url} sent more than {policy.max_bytes // 1024} KiB, the response size cap."
