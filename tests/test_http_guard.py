"""The one HTTP client (webapp.sources.http): the private-address guard, redirects, the size cap
and timeouts.

No test sends traffic anywhere but loopback: name resolution is stubbed where a test needs a
non-loopback answer, and every socket connect to a non-loopback address is recorded and
refused by the `connections` fixture before a packet leaves, so even a broken guard cannot
reach the network.
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import threading
import time
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from feeds import rss_document, trickle

from webapp.sources import http
from webapp.sources.http import FetchError, FetchPolicy, check_url, fetch

LOOPBACK = {"127.0.0.1", "::1"}
FEED = rss_document([{"title": "Acme", "link": "https://news.example.com/1"}])


class Connections:
    """Every outgoing connect and name lookup made during a test."""

    def __init__(self):
        self.refused: list[tuple] = []
        self.loopback: list[tuple] = []
        self.lookups: list[str] = []


@pytest.fixture
def connections(monkeypatch) -> Connections:
    """Let connects to loopback through; record and refuse every other one, and every lookup
    of a name that is not an IP literal (a lookup would send a DNS query)."""
    seen = Connections()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def is_loopback(address) -> bool:
        return isinstance(address, tuple) and address[0] in LOOPBACK

    def connect(sock, address):
        if not is_loopback(address):
            seen.refused.append(address)
            raise ConnectionRefusedError(f"test refused a connect to {address}")
        seen.loopback.append(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not is_loopback(address):
            seen.refused.append(address)
            raise ConnectionRefusedError(f"test refused a connect to {address}")
        return real_connect_ex(sock, address)

    def create_connection(address, *args, **kwargs):
        if not is_loopback(address):
            seen.refused.append(address)
            raise ConnectionRefusedError(f"test refused a connection to {address}")
        seen.loopback.append(address)
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if not is_ip_literal(host):
            seen.lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"test refused a lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return seen


def is_ip_literal(host: str) -> bool:
    """An IP literal is parsed locally; only a name would make getaddrinfo ask DNS."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def resolve_to(monkeypatch, table: dict[str, list[str]]) -> list[str]:
    """Replace the client's resolver with a fixed table; return the list of names asked."""
    asked: list[str] = []

    def fake_resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    monkeypatch.setattr(http, "resolve", fake_resolve)
    return asked


class LocalServer:
    """A loopback server for what FeedServer does not do: record request headers, stream a
    body without Content-Length, redirect without a Location."""

    def __init__(self):
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                if self.path.startswith("/stream/"):
                    size = int(self.path.rsplit("/", 1)[1])
                    self.send_response(200)
                    self.send_header("Content-Type", "application/rss+xml")
                    self.end_headers()  # HTTP/1.0, no length: the body ends when we close
                    try:
                        for _ in range(size // 4096):
                            self.wfile.write(b"x" * 4096)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if self.path == "/no-location":
                    self.send_response(302)
                    self.end_headers()
                    return
                if self.path.startswith("/to/"):  # /to/<host[:port]>/<path>: a redirect there
                    target = self.path[len("/to/") :]
                    self.send_response(302)
                    self.send_header("Location", f"http://{target}")
                    self.end_headers()
                    return
                if self.path.startswith("/elsewhere/"):  # any path below: to another host
                    self.send_response(302)
                    self.send_header("Location", f"http://elsewhere.test:{server.port}/json")
                    self.end_headers()
                    return
                if self.path == "/json":
                    body = b'{"items": []}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(FEED)))
                self.end_headers()
                self.wfile.write(FEED)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_server():
    server = LocalServer()
    yield server
    server.stop()


# --- the private-address guard ---------------------------------------------------------------

PRIVATE = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "127.0.0.1",
    "127.8.9.10",
    "0.0.0.0",
    "100.64.0.1",  # carrier-grade NAT
    "198.18.0.1",  # benchmarking
    "224.0.0.1",  # multicast
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1%eth0",
    "::ffff:10.0.0.1",  # IPv4-mapped IPv6
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    # IPv6 transition addresses: a translator or relay delivers them to the IPv4 address they
    # embed, so that address is the one judged.
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::5db8:d822",  # local-use NAT64 (RFC 8215): a network's own translator
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    "::a00:1",  # IPv4-compatible 10.0.0.1
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::ffff:0:a9fe:a9fe",  # IPv4-translated 169.254.169.254
]


@pytest.mark.parametrize("address", PRIVATE)
def test_a_host_resolving_to_a_private_address_is_refused_before_any_connect(
    monkeypatch, connections, address
):
    asked = resolve_to(monkeypatch, {"feeds.internal.test": [address]})
    with pytest.raises(FetchError) as caught:
        fetch("http://feeds.internal.test/feed.xml", FetchPolicy())
    message = str(caught.value)
    assert message.startswith("Refused to fetch feeds.internal.test")
    assert address in message
    assert "BYTESTACK_ALLOW_PRIVATE_NETWORKS" in message
    assert asked == ["feeds.internal.test"]
    assert (connections.refused, connections.loopback, connections.lookups) == ([], [], [])


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254", "192.168.1.1", "127.0.0.1"])
def test_a_private_ip_literal_in_the_url_is_refused_before_any_connect(
    monkeypatch, connections, address
):
    resolve_to(monkeypatch, {address: [address]})
    with pytest.raises(FetchError, match="Refused to fetch"):
        fetch(f"http://{address}/latest/meta-data/", FetchPolicy())
    assert connections.refused == [] and connections.loopback == []


def test_one_private_address_among_public_ones_is_enough_to_refuse(monkeypatch, connections):
    resolve_to(monkeypatch, {"mixed.test": ["93.184.216.34", "10.0.0.1"]})
    with pytest.raises(FetchError, match="10.0.0.1"):
        fetch("http://mixed.test/", FetchPolicy())
    assert connections.refused == []


def test_a_public_address_passes_the_check_and_is_the_one_to_connect_to(monkeypatch, connections):
    resolve_to(monkeypatch, {"news.example.com": ["93.184.216.34"]})
    assert check_url("https://news.example.com/feed", FetchPolicy()) == "93.184.216.34"
    assert connections.refused == []  # checking opens no socket


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "2002:5db8:d822::1",  # 6to4 of it
        "2001:0:4136:e378:8000:63bf:a247:27dd",  # Teredo: public server, client 93.184.216.34
        "2606:2800:220:1:248:1893:25c8:1946",  # plain global IPv6
    ],
)
def test_a_transition_address_embedding_a_public_ipv4_address_passes(
    monkeypatch, connections, address
):
    resolve_to(monkeypatch, {"news.example.com": [address]})
    assert check_url("https://news.example.com/feed", FetchPolicy()) == address
    assert connections.refused == []


def test_an_allowed_network_admits_a_transition_address_by_its_range_or_its_ipv4_network(
    monkeypatch, connections
):
    resolve_to(monkeypatch, {"mirror.test": ["64:ff9b::a01:203"]})  # NAT64 of 10.1.2.3
    for allowed in ("10.1.0.0/16", "64:ff9b::/96"):
        assert check_url("http://mirror.test/", FetchPolicy(allowed_networks=(allowed,)))
    with pytest.raises(FetchError, match="Refused"):
        check_url("http://mirror.test/", FetchPolicy(allowed_networks=("10.2.0.0/16",)))
    assert connections.refused == []


def test_the_real_loopback_server_is_refused_by_default(connections, feed_server):
    url = feed_server.serve("/feed.xml", FEED)
    with pytest.raises(FetchError, match="127.0.0.1"):
        fetch(url, FetchPolicy())
    assert feed_server.hits == {}
    assert connections.loopback == []


def test_with_allow_private_a_real_loopback_fetch_works(connections, feed_server):
    url = feed_server.serve("/feed.xml", FEED)
    response = fetch(url, FetchPolicy(allow_private=True))
    assert (response.status_code, response.url, response.content) == (200, url, FEED)
    assert response.headers["content-type"] == "application/rss+xml"
    assert feed_server.hits == {"/feed.xml": 1}
    assert connections.refused == []


def test_an_allowed_network_is_reachable_while_other_private_ones_stay_refused(
    connections, feed_server
):
    url = feed_server.serve("/feed.xml", FEED)
    assert fetch(url, FetchPolicy(allowed_networks=("127.0.0.0/8",))).content == FEED
    with pytest.raises(FetchError, match="Refused"):
        fetch(url, FetchPolicy(allowed_networks=("127.0.0.2/32", "10.0.0.0/8")))
    assert feed_server.hits == {"/feed.xml": 1}


def test_the_connection_goes_to_the_checked_address_without_a_second_lookup(
    monkeypatch, connections, local_server
):
    # The checked answer is loopback; any later lookup of the name (which a rebinding DNS
    # server could answer with an internal address) is refused by the fixture.
    resolve_to(monkeypatch, {"feeds.test": ["127.0.0.1"]})
    url = f"http://feeds.test:{local_server.port}/feed.xml"
    response = fetch(url, FetchPolicy(allow_private=True))
    assert response.content == FEED
    assert response.url == url
    assert connections.lookups == []
    assert connections.loopback and all(a[0] == "127.0.0.1" for a in connections.loopback)
    # The server still sees the name the URL asked for.
    assert local_server.requests[0]["headers"]["Host"] == f"feeds.test:{local_server.port}"


# --- redirects -------------------------------------------------------------------------------


def test_a_redirect_to_a_host_resolving_to_a_private_address_is_refused_on_that_hop(
    monkeypatch, connections, feed_server
):
    resolve_to(monkeypatch, {"127.0.0.1": ["127.0.0.1"], "internal.example": ["10.0.0.1"]})
    feed_server.serve("/internal", FEED)
    start = feed_server.serve("/hop", b"", redirect="http://internal.example/latest/meta-data")
    # Loopback is allowed for the first hop only; 10.0.0.0/8 is not.
    with pytest.raises(FetchError) as caught:
        fetch(start, FetchPolicy(allowed_networks=("127.0.0.0/8",)))
    assert "internal.example" in str(caught.value) and "10.0.0.1" in str(caught.value)
    assert feed_server.hits == {"/hop": 1}  # the first hop was really fetched
    assert connections.refused == []  # and no connect was tried for the second


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[::1]:9/", "http://10.1.2.3:8080/x"],
)
def test_a_redirect_to_a_private_ip_literal_is_refused(connections, feed_server, location):
    start = feed_server.serve("/hop", b"", redirect=location)
    with pytest.raises(FetchError, match="Refused to fetch"):
        fetch(start, FetchPolicy(allowed_networks=("127.0.0.1/32",)))
    assert connections.refused == []


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/"]
)
def test_a_redirect_to_another_scheme_is_refused(connections, feed_server, location):
    start = feed_server.serve("/hop", b"", redirect=location)
    with pytest.raises(FetchError, match="Only http and https"):
        fetch(start, FetchPolicy(allow_private=True))


def test_redirects_are_followed_up_to_five_hops(connections, feed_server):
    for hop in range(5):
        feed_server.serve(f"/r{hop}", b"", redirect=f"/r{hop + 1}")
    feed_server.serve("/r5", FEED)
    response = fetch(feed_server.url("/r0"), FetchPolicy(allow_private=True))
    assert response.content == FEED
    assert response.url == feed_server.url("/r5")


def test_a_sixth_redirect_is_refused(connections, feed_server):
    for hop in range(6):
        feed_server.serve(f"/r{hop}", b"", redirect=f"/r{hop + 1}")
    feed_server.serve("/r6", FEED)
    with pytest.raises(FetchError, match="redirected more than 5 times"):
        fetch(feed_server.url("/r0"), FetchPolicy(allow_private=True))
    assert "/r6" not in feed_server.hits


def test_a_redirect_without_a_location_is_an_error(connections, local_server):
    url = f"http://127.0.0.1:{local_server.port}/no-location"
    with pytest.raises(FetchError, match="redirected without a Location"):
        fetch(url, FetchPolicy(allow_private=True))


# --- credentials stay with the host they were meant for --------------------------------------

SECRET_HEADERS = {
    "Authorization": "Bearer ghp_not-for-other-hosts",
    "X-Api-Key": "key-not-for-other-hosts",
    "Cookie": "session=not-for-other-hosts",
}


def secrets_sent(request: dict) -> set[str]:
    return {name for name in SECRET_HEADERS if name in request["headers"]}


@pytest.fixture
def two_hosts(monkeypatch, local_server):
    """api.test and elsewhere.test, two names for the one loopback server."""
    resolve_to(monkeypatch, {"api.test": ["127.0.0.1"], "elsewhere.test": ["127.0.0.1"]})
    return local_server


def test_credentials_are_not_sent_on_a_redirect_to_another_host(connections, two_hosts):
    port = two_hosts.port
    response = fetch(
        f"http://api.test:{port}/to/elsewhere.test:{port}/json",
        FetchPolicy(allow_private=True),
        {**SECRET_HEADERS, "Accept": "application/json"},
    )
    assert response.url == f"http://elsewhere.test:{port}/json"
    first, second = two_hosts.requests
    assert secrets_sent(first) == set(SECRET_HEADERS)
    assert second["headers"]["Host"] == f"elsewhere.test:{port}"
    assert secrets_sent(second) == set()
    assert second["headers"]["Accept"] == "application/json"  # what is no secret still goes


def test_credentials_follow_a_redirect_on_the_same_host_only_until_one_leaves_it(
    connections, two_hosts
):
    port = two_hosts.port
    back_home = f"api.test:{port}/json"
    fetch(
        f"http://api.test:{port}/to/api.test:{port}/to/elsewhere.test:{port}/to/{back_home}",
        FetchPolicy(allow_private=True),
        SECRET_HEADERS,
    )
    sent = [secrets_sent(request) for request in two_hosts.requests]
    assert sent == [set(SECRET_HEADERS), set(SECRET_HEADERS), set(), set()]


def test_a_redirect_to_another_port_of_the_same_host_drops_credentials(connections, two_hosts):
    other = LocalServer()
    try:
        fetch(
            f"http://api.test:{two_hosts.port}/to/api.test:{other.port}/json",
            FetchPolicy(allow_private=True),
            SECRET_HEADERS,
        )
        assert secrets_sent(other.requests[0]) == set()
    finally:
        other.stop()


@pytest.mark.parametrize(
    "current, following, same",
    [
        ("https://api.github.com/a", "https://api.github.com/b", True),
        ("https://API.github.com/a", "https://api.github.com:443/b", True),
        ("http://example.com/a", "https://example.com/b", True),  # an upgrade, default ports
        ("https://api.github.com/a", "http://api.github.com/b", False),  # a downgrade
        ("https://api.github.com/a", "https://codeload.github.com/b", False),
        ("https://api.x.com/a", "https://api.x.com:8443/b", False),
        ("http://example.com:8080/a", "https://example.com/b", False),
    ],
)
def test_what_counts_as_the_same_origin_for_credentials(current, following, same):
    assert http._same_origin(current, following) is same


@pytest.mark.parametrize(
    "source_id, credentials",
    [("github", {"github_token": "ghp_source-token"}), ("x", {"x_bearer_token": "x-token"})],
)
def test_a_source_token_is_not_sent_to_the_host_its_api_redirects_to(
    monkeypatch, connections, two_hosts, source_id, credentials
):
    from webapp.sources import FetchContext, fetch_source, normalise_sources

    monkeypatch.setenv(
        f"BYTESTACK_SOURCE_{source_id.upper()}_URL", f"http://api.test:{two_hosts.port}/elsewhere"
    )
    context = FetchContext(
        FetchPolicy(allow_private=True), None, None, None, 10, "acme", credentials
    )
    [config] = normalise_sources([source_id])
    assert fetch_source(config, context) == []
    first, second = two_hosts.requests
    token = next(iter(credentials.values()))
    assert first["headers"]["Authorization"] == f"Bearer {token}"
    assert second["path"] == "/json" and "Authorization" not in second["headers"]
    assert token not in str(second["headers"])


# --- schemes, names, statuses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1/feed",
        "gopher://127.0.0.1:70/",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "//news.example.com/feed",
        "news.example.com/feed",
        "",
    ],
)
def test_only_http_and_https_urls_are_fetched(monkeypatch, connections, url):
    asked = resolve_to(monkeypatch, {})
    with pytest.raises(FetchError, match="Only http and https"):
        fetch(url, FetchPolicy(allow_private=True))
    assert asked == [] and connections.refused == [] and connections.loopback == []


def test_a_url_without_a_host_is_refused(connections):
    with pytest.raises(FetchError, match="has no host"):
        fetch("http:///feed.xml", FetchPolicy(allow_private=True))


def test_a_name_that_does_not_resolve_gives_a_readable_error(monkeypatch, connections):
    resolve_to(monkeypatch, {})
    with pytest.raises(FetchError, match="Could not resolve nowhere.test"):
        fetch("https://nowhere.test/feed", FetchPolicy())
    assert connections.refused == []


def test_an_http_error_status_is_reported_with_its_code(connections, feed_server):
    url = feed_server.url("/missing.xml")
    with pytest.raises(FetchError, match="answered HTTP 404 Not Found"):
        fetch(url, FetchPolicy(allow_private=True))
    gone = feed_server.serve("/gone.xml", b"no", status=500)
    with pytest.raises(FetchError, match="HTTP 500"):
        fetch(gone, FetchPolicy(allow_private=True))


def test_a_closed_port_gives_a_readable_error(connections):
    from webapp.launcher import free_port

    with pytest.raises(FetchError, match="Could not fetch"):
        fetch(f"http://127.0.0.1:{free_port()}/feed.xml", FetchPolicy(allow_private=True))


# --- size cap and timeout --------------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused(connections, feed_server):
    url = feed_server.serve("/big.xml", b"x" * 5000)
    with pytest.raises(FetchError) as caught:
        fetch(url, FetchPolicy(allow_private=True, max_bytes=4096))
    assert "more than 4 KiB, the response size cap" in str(caught.value)


def test_a_body_of_exactly_the_cap_is_accepted(connections, feed_server):
    url = feed_server.serve("/exact.xml", b"x" * 4096)
    assert len(fetch(url, FetchPolicy(allow_private=True, max_bytes=4096)).content) == 4096


def test_a_streamed_body_without_length_is_cut_at_the_cap(connections, local_server):
    url = f"http://127.0.0.1:{local_server.port}/stream/{4 * 1024 * 1024}"
    started = time.perf_counter()
    with pytest.raises(FetchError, match="more than 64 KiB"):
        fetch(url, FetchPolicy(allow_private=True, max_bytes=64 * 1024))
    assert time.perf_counter() - started < 5
    small = f"http://127.0.0.1:{local_server.port}/stream/{32 * 1024}"
    assert len(fetch(small, FetchPolicy(allow_private=True, max_bytes=64 * 1024)).content) == 32768


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zlib_deflated(data: bytes) -> bytes:
    return zlib.compress(data)


def raw_deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def gzip_of_zeros(size: int) -> bytes:
    """gzip of `size` zero bytes, made a MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, compressor.flush()])


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzipped),
        ("x-gzip", gzipped),
        ("GZip", gzipped),
        ("deflate", zlib_deflated),
        ("deflate", raw_deflated),
        ("identity", lambda data: data),
        ("gzip, gzip", lambda data: gzipped(gzipped(data))),
        ("gzip,deflate", lambda data: zlib_deflated(gzipped(data))),
        ("deflate, identity, gzip", lambda data: gzipped(raw_deflated(data))),
    ],
)
def test_a_body_in_gzip_deflate_or_a_chain_of_them_is_decoded(
    connections, feed_server, encoding, encode
):
    url = feed_server.serve("/feed.xml", encode(FEED), encoding=encoding)
    response = fetch(url, FetchPolicy(allow_private=True))
    assert response.content == FEED


def test_the_client_asks_only_for_the_encodings_it_decodes(connections, local_server):
    fetch(f"http://127.0.0.1:{local_server.port}/feed.xml", FetchPolicy(allow_private=True))
    assert local_server.requests[0]["headers"]["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, compress"])
def test_an_encoding_the_client_cannot_decode_is_a_readable_error(
    connections, feed_server, encoding
):
    url = feed_server.serve("/feed.br", b"\x0b\x02\x80not really", encoding=encoding)
    with pytest.raises(FetchError) as caught:
        fetch(url, FetchPolicy(allow_private=True))
    unknown = encoding.rsplit(", ", 1)[-1]
    assert str(caught.value) == (
        f"{url} sent its body with Content-Encoding {unknown}, which this client cannot decode "
        "(it asks for gzip or deflate)."
    )


def test_a_body_that_is_not_valid_gzip_is_a_readable_error(connections, feed_server):
    url = feed_server.serve("/bad.gz", b"not gzip at all", encoding="gzip")
    with pytest.raises(FetchError, match="is not valid gzip"):
        fetch(url, FetchPolicy(allow_private=True))


def test_the_size_cap_counts_decoded_bytes(connections, feed_server):
    url = feed_server.serve("/big.gz", gzipped(b"x" * 5000), encoding="gzip")
    with pytest.raises(FetchError, match="more than 4 KiB, the response size cap"):
        fetch(url, FetchPolicy(allow_private=True, max_bytes=4096))
    exact = feed_server.serve("/exact.gz", gzipped(b"x" * 4096), encoding="gzip")
    assert len(fetch(exact, FetchPolicy(allow_private=True, max_bytes=4096)).content) == 4096


@pytest.mark.parametrize("layers", [1, 2])
def test_a_gzip_bomb_is_cut_at_the_cap_without_expanding_it(connections, feed_server, layers):
    bomb = gzip_of_zeros(64 * 1024 * 1024)
    if layers == 2:
        bomb = gzipped(bomb)
    url = feed_server.serve("/bomb.gz", bomb, encoding=", ".join(["gzip"] * layers))
    started = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(FetchError, match="more than 64 KiB, the response size cap"):
            fetch(url, FetchPolicy(allow_private=True, max_bytes=64 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    # The cap and a chunk or two per decoding stage, never the 64 MiB the bomb expands to.
    assert peak < 2 * 1024 * 1024, f"{peak / 2**20:.1f} MiB allocated at the peak"


def test_a_long_chain_of_encodings_is_refused(connections, feed_server):
    body = FEED
    for _ in range(6):
        body = gzipped(body)
    url = feed_server.serve("/deep.gz", body, encoding=", ".join(["gzip"] * 6))
    with pytest.raises(FetchError, match="6 content encodings"):
        fetch(url, FetchPolicy(allow_private=True))


def test_a_server_slower_than_the_timeout_is_given_up_on(connections, feed_server):
    url = feed_server.serve("/slow.xml", FEED, delay=10)
    started = time.perf_counter()
    with pytest.raises(FetchError) as caught:
        fetch(url, FetchPolicy(allow_private=True, timeout=0.5))
    assert time.perf_counter() - started < 5
    assert "did not answer within 0.5 s" in str(caught.value)
    assert url in str(caught.value)


def test_a_server_trickling_its_body_is_given_up_on_at_the_total_deadline(
    connections, feed_server
):
    # Each byte comes well within the timeout, so only a deadline for the whole fetch stops it.
    url = feed_server.serve("/trickle.xml", lambda: trickle(0.2))
    started = time.perf_counter()
    with pytest.raises(FetchError) as caught:
        fetch(url, FetchPolicy(allow_private=True, timeout=1.5))
    elapsed = time.perf_counter() - started
    assert 1.4 < elapsed < 2.5
    assert str(caught.value) == f"{url} did not finish within 1.5 s."


def test_the_deadline_covers_every_redirect_hop(connections, feed_server):
    # Three hops of 0.6 s each, every one within the 1.5 s timeout, the three together not.
    for hop in range(3):
        feed_server.serve(f"/slow{hop}", b"", redirect=f"/slow{hop + 1}", delay=0.6)
    feed_server.serve("/slow3", FEED)
    started = time.perf_counter()
    with pytest.raises(FetchError, match="within 1.5 s"):
        fetch(feed_server.url("/slow0"), FetchPolicy(allow_private=True, timeout=1.5))
    assert time.perf_counter() - started < 2.5


@pytest.fixture
def hanging_lookups(monkeypatch):
    """A resolver that answers loopback for 'feeds.test' at once and never answers for any
    other name (as a DNS server that drops queries), until the test ends."""
    release = threading.Event()
    asked: list[str] = []

    def hanging_resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        if host == "feeds.test":
            return ["127.0.0.1"]
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(http, "resolve", hanging_resolve)
    yield asked
    release.set()


def test_a_name_lookup_that_never_answers_is_given_up_on_at_the_deadline(
    connections, hanging_lookups
):
    started = time.perf_counter()
    with pytest.raises(FetchError) as caught:
        fetch("https://silent-dns.test/feed.xml", FetchPolicy(timeout=0.5))
    assert time.perf_counter() - started < 1.5
    assert str(caught.value) == (
        "Could not resolve silent-dns.test within the 0.5 s allowed for the fetch."
    )
    assert hanging_lookups == ["silent-dns.test"]
    assert connections.refused == [] and connections.loopback == []


def test_a_redirect_hop_lookup_gets_only_what_is_left_of_the_deadline(
    connections, feed_server, hanging_lookups
):
    # The first hop takes 0.6 s of the 1.2 s; the next name never resolves: the fetch ends at
    # the 1.2 s deadline, not 1.2 s after the redirect.
    port = feed_server.url("/").split(":")[2].split("/")[0]
    feed_server.serve("/moved", b"", redirect="http://silent-dns.test/feed.xml", delay=0.6)
    policy = FetchPolicy(timeout=1.2, allowed_networks=("127.0.0.0/8",))
    started = time.perf_counter()
    with pytest.raises(FetchError, match="Could not resolve silent-dns.test within the 1.2 s"):
        fetch(f"http://feeds.test:{port}/moved", policy)
    assert 0.9 < time.perf_counter() - started < 1.9
    assert hanging_lookups == ["feeds.test", "silent-dns.test"]


def test_an_ip_literal_is_never_looked_up_in_a_thread(connections, feed_server, monkeypatch):
    # A literal is parsed at once, whatever the time left; only names pay for a lookup thread.
    started = threading.Thread.start
    threads: list[str] = []

    def record(thread):
        threads.append(thread.name)
        return started(thread)

    monkeypatch.setattr(threading.Thread, "start", record)
    assert http.check_url(feed_server.url("/feed.xml"), FetchPolicy(allow_private=True), 0.001)
    assert not [name for name in threads if name.startswith("resolve ")]


def test_a_retry_after_longer_than_the_time_left_is_not_waited_for(connections, feed_server):
    url = feed_server.serve("/busy", b"busy", status=503, headers={"Retry-After": "3"})
    started = time.perf_counter()
    with pytest.raises(FetchError, match="HTTP 503"):
        fetch(url, FetchPolicy(allow_private=True, timeout=1, retries=2))
    assert time.perf_counter() - started < 1
    assert feed_server.hits["/busy"] == 1


# Politeness and safe retries


def test_a_503_is_retried_and_the_second_answer_is_used(feed_server):
    from webapp.sources.http import FetchPolicy, fetch

    answers = iter([503, 200])
    feed_server.routes["/flaky"] = {"body": b"ok", "status": 503}

    def body():
        feed_server.routes["/flaky"]["status"] = next(answers, 200)
        return b"fine"

    feed_server.routes["/flaky"] = {"body": body, "status": 503}
    policy = FetchPolicy(timeout=5, allow_private=True, retries=2)
    response = fetch(feed_server.url("/flaky"), policy)
    assert response.content == b"fine"
    assert feed_server.hits["/flaky"] >= 2


def test_retries_stop_after_the_policy_allows_and_say_why(feed_server):
    from webapp.sources.http import FetchError, FetchPolicy, fetch

    url = feed_server.serve("/down", b"busy", status=503)
    with pytest.raises(FetchError, match="HTTP 503"):
        fetch(url, FetchPolicy(timeout=5, allow_private=True, retries=1))
    assert feed_server.hits["/down"] == 2


def test_a_404_is_never_retried(feed_server):
    from webapp.sources.http import FetchError, FetchPolicy, fetch

    url = feed_server.serve("/gone", b"no", status=404)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch(url, FetchPolicy(timeout=5, allow_private=True, retries=3))
    assert feed_server.hits["/gone"] == 1


def test_requests_to_one_host_are_spaced_by_the_minimum_interval(feed_server):
    import time

    from webapp.sources.http import FetchPolicy, fetch

    url = feed_server.serve("/polite", b"ok")
    policy = FetchPolicy(timeout=5, allow_private=True, min_interval=0.4)
    started = time.monotonic()
    for _ in range(3):
        fetch(url, policy)
    assert time.monotonic() - started >= 0.8  # two waits between three requests
