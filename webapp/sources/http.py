"""The one HTTP client every source fetches through, and every webhook delivery posts through.

One deadline for the whole fetch, a size cap, redirects followed by hand (each hop checked
again) and no requests to private, loopback, link-local or metadata addresses unless the
operator allows them.
The address check runs on the resolved addresses before any socket is opened, and the
connection goes to the address that was checked: the host is never resolved a second time,
so a DNS answer that changes in between (DNS rebinding) cannot reach an internal address.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

USER_AGENT = "ByteStackJobs/0.1 (+self-hosted scheduled queries)"
MAX_REDIRECTS = 5
# Content codings decoded here, each a bounded stream; "identity" is no coding at all.
ACCEPT_ENCODING = "gzip, deflate"
MAX_ENCODINGS = 4
CHUNK = 64 * 1024


class FetchError(Exception):
    """A fetch that failed, with a sentence a person can act on."""


class RefusedURL(FetchError):
    """A URL the policy refuses whatever the moment: a scheme other than http(s), no host, or
    an address that is private, loopback or link-local. Asking again would not help."""


@dataclass
class FetchPolicy:
    # Seconds the whole fetch may take: connecting, every read, every redirect hop, every
    # retry and its wait. (Waits for the politeness interval below are not counted.)
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


# IPv6 ranges whose addresses carry an IPv4 address in their last 32 bits, and whose packets
# a translator or relay delivers to that IPv4 address: NAT64's well-known prefix (RFC 6052),
# IPv4-translated (RFC 2765) and the deprecated IPv4-compatible addresses (RFC 4291).
_LAST_32_BITS = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("::ffff:0:0:0/96"),
    ipaddress.ip_network("::/96"),
)
# The local-use NAT64 prefix (RFC 8215) may embed the IPv4 address anywhere: a network's own
# translator, never public.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.split("%", 1)[0])


def _reached(address: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a connection to `address` ends up at: for an IPv6 address that embeds an
    IPv4 one (mapped, NAT64, 6to4, Teredo's server and client, IPv4-compatible), the IPv4
    addresses, which a translator or relay on the path delivers to; else the address itself.
    Judging the IPv6 address alone would let 64:ff9b::a9fe:a9fe reach 169.254.169.254."""
    ip = _ip(address)
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        server, client = ip.teredo
        return [server, client]
    if any(ip in network for network in _LAST_32_BITS):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return [ip]


def _is_public(address: str) -> bool:
    if _ip(address) in _LOCAL_NAT64:
        return False
    return all(ip.is_global and not ip.is_multicast for ip in _reached(address))


def _is_allowed(address: str, policy: FetchPolicy) -> bool:
    networks = [ipaddress.ip_network(network) for network in policy.allowed_networks]
    # An operator may name the IPv6 range itself, or the IPv4 network it leads to.
    return any(_ip(address) in network for network in networks) or all(
        any(ip in network for network in networks) for ip in _reached(address)
    )


# At most this many name lookups in flight per process: a lookup that outlives its fetch's
# deadline is left to finish on its own, and a resolver that never answers must not pile up
# threads without end.
_LOOKUPS = threading.BoundedSemaphore(16)


def _resolve_within(host: str, port: int, seconds: float) -> list[str]:
    """resolve(), given up on after `seconds` (TimeoutError): getaddrinfo takes no timeout and
    the system resolver's own (attempts × timeout of resolv.conf) can be far longer than a
    fetch's, so the lookup runs in a daemon thread, waited for only as long as allowed.
    An IP literal is parsed, never looked up: no thread for it."""
    try:
        _ip(host)
    except ValueError:
        pass
    else:
        return resolve(host, port)
    started = time.monotonic()
    if seconds <= 0 or not _LOOKUPS.acquire(timeout=seconds):
        raise TimeoutError(host)
    answer: list[list[str]] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            answer.append(resolve(host, port))
        except BaseException as exc:  # raised again in the thread that waits
            failure.append(exc)
        finally:
            _LOOKUPS.release()
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(max(0.0, seconds - (time.monotonic() - started))):
        raise TimeoutError(host)
    if failure:
        raise failure[0]
    return answer[0]


def check_url(url: str, policy: FetchPolicy, seconds: float | None = None) -> str:
    """Refuse a URL the policy does not allow; return the checked address to connect to.

    The name lookup is given `seconds` (what is left of a fetch's deadline), or the policy's
    whole timeout."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RefusedURL(f"Only http and https URLs can be fetched, not {parts.scheme or 'none'}.")
    host = parts.hostname
    if not host:
        raise RefusedURL(f"The URL {url!r} has no host.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = _resolve_within(host, port, policy.timeout if seconds is None else seconds)
    except TimeoutError:
        raise FetchError(
            f"Could not resolve {host} within the {policy.timeout:g} s allowed for the fetch."
        ) from None
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"Could not resolve {host}: {exc}.") from None
    if not addresses:
        raise FetchError(f"Could not resolve {host}.")
    for address in addresses:
        if not (policy.allow_private or _is_public(address) or _is_allowed(address, policy)):
            raise RefusedURL(
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

    def wait(self, host: str, interval: float) -> float:
        """Sleep until this host may be asked again; return the seconds slept."""
        if interval <= 0:
            return 0.0
        with self._lock:
            moment = time.monotonic()
            start = max(moment, self._next.get(host, 0.0))
            self._next[host] = start + interval
        if start > moment:
            time.sleep(start - moment)
        return max(0.0, start - moment)


_pacer = _HostPacer()


class _Deadline:
    """The instant by which a whole fetch must be done, and the socket timeouts it allows."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return self._end - time.monotonic()

    def extend(self, seconds: float) -> None:
        self._end += seconds

    def bound(self, timeout: float | None, error: type[Exception]) -> float:
        """The smaller of a socket operation's own timeout and the time left; none left is
        the timeout `error` at once (a socket timeout of 0 would mean non-blocking)."""
        left = self.left()
        if left <= 0:
            raise error("the fetch's deadline has passed")
        return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline.

    httpcore takes a request's read timeout once per response and applies it to each read,
    so a body sent a byte at a time within that timeout would never time out; here each
    socket operation gets only the time left of the whole fetch.
    """

    def __init__(self, stream: httpcore.NetworkStream, deadline: _Deadline):
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.bound(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.bound(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        timeout = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(
            self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline
        )

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _BoundedBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline):
        self._backend = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = self._deadline.bound(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _BoundedStream(stream, self._deadline)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@functools.cache
def _ssl_context():
    """One verifying TLS context per process: building one (loading the CA bundle) costs more
    than a small fetch, and a context is safe to share between threads."""
    return httpx.create_ssl_context(trust_env=False)


class _BoundedTransport(httpx.HTTPTransport):
    """httpx's own transport on a network backend bounded by the fetch's deadline.

    httpx offers no argument for the network backend, so the connection pool it built is
    replaced by the same pool on the bounded backend (tests of the deadline fail if a newer
    httpx stops using it).
    """

    def __init__(self, deadline: _Deadline):
        super().__init__(verify=_ssl_context(), trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise TypeError("httpx.HTTPTransport no longer keeps its pool as _pool")
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(),
            # No kept-alive connections: a connection is pinned to one host's address and TLS name.
            max_keepalive_connections=0,
            network_backend=_BoundedBackend(deadline),
        )


def fetch(url: str, policy: FetchPolicy, headers: dict | None = None) -> Response:
    """GET a URL under the policy, politely and with safe retries, all of it within the
    policy's timeout; raise a readable FetchError."""
    deadline = _Deadline(policy.timeout)
    attempt = 0
    while True:
        try:
            return _fetch_once(url, policy, headers, deadline)
        except _Retryable as exc:
            if attempt >= policy.retries:
                raise FetchError(str(exc)) from None
            wait = exc.wait if exc.wait is not None else 0.5 * 2**attempt
            if wait > MAX_RETRY_WAIT:
                raise FetchError(str(exc)) from None
            if wait >= deadline.left():
                raise FetchError(
                    f"{exc} No retry: the {policy.timeout:g} s allowed for the fetch would "
                    "pass first."
                ) from None
            time.sleep(wait)
            attempt += 1


# What may go to whatever host a redirect leads to: nothing a caller could put a secret in.
_ANY_HOST_HEADERS = frozenset(("user-agent", "accept", "accept-encoding", "accept-language"))
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(current: str, following: str) -> bool:
    """Whether a redirect stays on the same scheme, host and port (an upgrade from http to
    https on the default ports included): anything else may be someone else's server."""
    a, b = urlsplit(current), urlsplit(following)
    if (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    try:
        ports = (a.port or _DEFAULT_PORTS.get(a.scheme), b.port or _DEFAULT_PORTS.get(b.scheme))
    except ValueError:
        return False
    if a.scheme == b.scheme:
        return ports[0] == ports[1]
    return (a.scheme, b.scheme) == ("http", "https") and ports == (80, 443)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _fetch_once(
    url: str, policy: FetchPolicy, headers: dict | None, deadline: _Deadline
) -> Response:
    request_headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    request_headers.update(headers or {})
    # Only what _decoded() reads, whatever the caller asked for.
    request_headers["Accept-Encoding"] = ACCEPT_ENCODING
    timeout = httpx.Timeout(policy.timeout, connect=min(policy.timeout, 10.0))
    current = url
    answered = False  # whether any hop sent its status line and headers
    with httpx.Client(
        timeout=timeout, transport=_BoundedTransport(deadline), follow_redirects=False
    ) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, host_header, extensions = _pinned(
                current, check_url(current, policy, deadline.left())
            )
            # Our own politeness is no time the server took: it does not count.
            deadline.extend(_pacer.wait(urlsplit(current).hostname or "", policy.min_interval))
            try:
                if deadline.left() <= 0:
                    raise httpx.TimeoutException("the fetch's deadline has passed")
                with client.stream(
                    "GET",
                    target,
                    headers={**request_headers, **host_header},
                    extensions=extensions,
                ) as response:
                    answered = True
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(f"{current} redirected without a Location.")
                        following = urljoin(current, location)
                        if not _same_origin(current, following):
                            # The caller's headers (a token, a key) were meant for the host
                            # it named; once a hop leaves it they are not sent again.
                            request_headers = {
                                name: value
                                for name, value in request_headers.items()
                                if name.lower() in _ANY_HOST_HEADERS
                            }
                        current = following
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
                    body = _read_body(response, current, policy, deadline)
                    return Response(current, response.status_code, response.headers, body)
            except httpx.TimeoutException:
                if answered:
                    raise FetchError(_too_slow(current, policy)) from None
                raise FetchError(
                    f"{current} did not answer within {policy.timeout:g} s."
                ) from None
            except httpx.ConnectError as exc:
                raise _Retryable(
                    f"Could not fetch {current}: {exc or 'connection refused'}."
                ) from None
            except httpx.HTTPError as exc:
                raise FetchError(
                    f"Could not fetch {current}: {exc or type(exc).__name__}."
                ) from None
        raise FetchError(f"{url} redirected more than {MAX_REDIRECTS} times.")


def post(url: str, body: bytes, policy: FetchPolicy, headers: dict | None = None) -> Response:
    """POST `body` once, under the policy's guard, pinned address and deadline; raise a readable
    FetchError (RefusedURL when the URL itself is refused) if no answer came.

    Any answer is returned, whatever its status: the caller judges it. A redirect is not
    followed (a delivery must reach the URL it was given, and a POST is not repeated). The
    answer's body is read up to the size cap, undecoded, and the rest left unread: it is
    information only, so an endless or slow body never holds the sender past the deadline.
    """
    deadline = _Deadline(policy.timeout)
    request_headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    request_headers.update(headers or {})
    request_headers["Accept-Encoding"] = "identity"
    target, host_header, extensions = _pinned(url, check_url(url, policy, deadline.left()))
    timeout = httpx.Timeout(policy.timeout, connect=min(policy.timeout, 10.0))
    with httpx.Client(
        timeout=timeout, transport=_BoundedTransport(deadline), follow_redirects=False
    ) as client:
        try:
            with client.stream(
                "POST",
                target,
                content=body,
                headers={**request_headers, **host_header},
                extensions=extensions,
            ) as response:
                return Response(
                    url, response.status_code, response.headers, _read_some(response, policy)
                )
        except httpx.TimeoutException:
            raise FetchError(f"{url} did not answer within {policy.timeout:g} s.") from None
        except httpx.ConnectError as exc:
            raise FetchError(f"Could not reach {url}: {exc or 'connection refused'}.") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"Could not reach {url}: {exc or type(exc).__name__}.") from None


def _read_some(response: httpx.Response, policy: FetchPolicy) -> bytes:
    """Up to the cap of an answer's raw body; what came before a timeout or a dropped
    connection (the status line and headers have arrived: they are the answer)."""
    body = bytearray()
    try:
        for chunk in response.iter_raw():
            body += chunk[: policy.max_bytes - len(body)]
            if len(body) >= policy.max_bytes:
                break
    except httpx.HTTPError:
        pass
    return bytes(body)


def _read_body(
    response: httpx.Response, url: str, policy: FetchPolicy, deadline: _Deadline
) -> bytes:
    """The body, decoded here rather than by httpx, whose decoders expand a whole chunk at
    once (a few hundred bytes of gzip of gzip become hundreds of MiB). The cap holds for the
    bytes on the wire and for the decoded ones; the deadline is checked between chunks."""
    stages = _decoders(response.headers.get("content-encoding", ""), url)

    def received() -> Iterator[bytes]:
        size = 0
        for chunk in response.iter_raw():
            size += len(chunk)
            if size > policy.max_bytes:
                raise FetchError(_too_large(url, policy))
            if deadline.left() <= 0:
                raise FetchError(_too_slow(url, policy))
            yield chunk

    body = bytearray()
    for piece in _decoded(received(), stages, url):
        body += piece
        if len(body) > policy.max_bytes:
            raise FetchError(_too_large(url, policy))
        if deadline.left() <= 0:
            raise FetchError(_too_slow(url, policy))
    return bytes(body)


class _Inflater:
    """One gzip or deflate stage that never makes more than CHUNK bytes of output at a time:
    zlib is asked for at most CHUNK, and what it could not read yet stays its unconsumed_tail."""

    def __init__(self, coding: str, url: str):
        self.coding = coding
        self.url = url
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding == "gzip" else None
        self._head = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            # "deflate" is zlib-wrapped by the standard, raw in some servers: the first two
            # bytes tell (a zlib header is a multiple of 31 with compression method 8).
            self._head += data
            if len(self._head) < 2:
                return
            header = int.from_bytes(self._head[:2], "big")
            wrapped = self._head[0] & 0x0F == 8 and header % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._head = self._head, b""
        while not self._zlib.eof:  # after the end, the rest is ignored (as httpx does)
            try:
                out = self._zlib.decompress(data, CHUNK)
            except zlib.error as exc:
                raise FetchError(
                    f"{self.url} sent a body that is not valid {self.coding} ({exc})."
                ) from None
            data = self._zlib.unconsumed_tail
            if out:
                yield out
            # All input read and room left in the output: zlib holds nothing more for now.
            if not data and len(out) < CHUNK:
                break


def _decoders(header: str, url: str) -> list[str]:
    """The codings to undo, the last one applied first; a readable error for one not read."""
    codings = [token.strip().lower() for token in header.split(",")]
    codings = ["gzip" if c == "x-gzip" else c for c in codings if c and c != "identity"]
    for coding in codings:
        if coding not in ("gzip", "deflate"):
            raise FetchError(
                f"{url} sent its body with Content-Encoding {coding}, which this client "
                f"cannot decode (it asks for {ACCEPT_ENCODING.replace(', ', ' or ')})."
            )
    if len(codings) > MAX_ENCODINGS:
        raise FetchError(
            f"{url} sent its body in {len(codings)} content encodings, one inside the other; "
            f"at most {MAX_ENCODINGS} are read."
        )
    return codings[::-1]


def _decoded(chunks: Iterable[bytes], codings: list[str], url: str) -> Iterator[bytes]:
    """The chunks with every coding undone, stage by stage and lazily: each stage holds one
    input chunk and makes one output chunk at a time, so no stage holds more than CHUNK."""
    for coding in codings:
        chunks = _through(_Inflater(coding, url), chunks)
    return iter(chunks)


def _through(stage: _Inflater, chunks: Iterable[bytes]) -> Iterator[bytes]:
    for data in chunks:
        yield from stage.feed(data)


def _too_slow(url: str, policy: FetchPolicy) -> str:
    return f"{url} did not finish within {policy.timeout:g} s."


def _too_large(url: str, policy: FetchPolicy) -> str:
    return f"{url} sent more than {policy.max_bytes // 1024} KiB, the response size cap."
