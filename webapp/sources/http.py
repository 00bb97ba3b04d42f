"""The one HTTP client every source fetches through.

Timeouts, a size cap, redirects followed by hand (each hop checked again) and no requests
to private, loopback, link-local or metadata addresses unless the operator allows them.
The address check runs on the resolved addresses before any socket is opened.
"""

from __future__ import annotations

import ipaddress
import socket
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


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, policy: FetchPolicy) -> None:
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
    if policy.allow_private:
        return
    for address in addresses:
        if not _is_public(address):
            raise FetchError(
                f"Refused to fetch {host}: it resolves to the private or local address "
                f"{address} (set BYTESTACK_ALLOW_PRIVATE_NETWORKS=1 to allow)."
            )


def fetch(url: str, policy: FetchPolicy, headers: dict | None = None) -> Response:
    """GET a URL under the policy; raise FetchError with a readable reason."""
    request_headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    request_headers.update(headers or {})
    timeout = httpx.Timeout(policy.timeout, connect=min(policy.timeout, 10.0))
    current = url
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(current, policy)
            try:
                with client.stream("GET", current, headers=request_headers) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"{current} redirected without a Location.")
                        current = urljoin(current, location)
                        continue
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
            except httpx.HTTPError as exc:
                raise FetchError(f"Could not fetch {current}: {exc or type(exc).__name__}.") from None
        raise FetchError(f"{url} redirected more than {MAX_REDIRECTS} times.")


def _too_large(url: str, policy: FetchPolicy) -> str:
    return f"{url} sent more than {policy.max_bytes // 1024} KiB, the response size cap."
