"""A real local HTTP server that serves feeds shaped like live ones, for tests."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

REALWORLD = Path(__file__).resolve().parent.parent.parent / "shared" / "realworld"


def rss_document(items: list[dict], title: str = "Example News") -> bytes:
    """An RSS 2.0 feed; each item has title, link, description and `age` (a timedelta)."""
    now = datetime.now(UTC)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>',
        f"<title>{escape(title)}</title><link>https://news.example.com/</link>",
        "<description>Test feed</description>",
    ]
    for item in items:
        published = now - item.get("age", timedelta(minutes=5))
        parts.append(
            "<item>"
            f"<title>{escape(item['title'])}</title>"
            f"<link>{escape(item['link'])}</link>"
            f"<guid>{escape(item.get('guid', item['link']))}</guid>"
            f"<description>{escape(item.get('description', ''))}</description>"
            f"<dc:creator>{escape(item.get('author', 'Reporter'))}</dc:creator>"
            f"<pubDate>{format_datetime(published)}</pubDate>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def trickle(interval: float = 0.5, byte: bytes = b" "):
    """A body that never ends: one byte every `interval` seconds (serve it as `lambda: trickle()`)."""
    while True:
        yield byte
        time.sleep(interval)


def repeated(total: int, block: bytes = b"x" * 65536):
    """A body of `total` bytes made on the fly, never held in memory whole."""
    whole, rest = divmod(total, len(block))
    for _ in range(whole):
        yield block
    if rest:
        yield block[:rest]


class FeedServer:
    """Serves routes set by the test: bytes, a delay, a hang or a redirect per path.

    `serve(path, body, status=, delay=, type=, redirect=)`; `body` is bytes, or a callable
    called per request that returns bytes or an iterable of byte chunks, which is streamed
    (without a Content-Length unless `length=` declares one). `encoding=` sends that
    Content-Encoding header as it is (the body must already be encoded), `headers=` any more.
    """

    def __init__(self):
        self.routes: dict[str, dict] = {}
        self.hits: dict[str, int] = {}
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.split("?", 1)[0]
                server.hits[path] = server.hits.get(path, 0) + 1
                route = server.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                if route.get("delay"):
                    server._release.wait(route["delay"])
                if route.get("redirect"):
                    self.send_response(302)
                    self.send_header("Location", route["redirect"])
                    self.end_headers()
                    return
                body = route["body"]() if callable(route["body"]) else route["body"]
                streamed = not isinstance(body, (bytes, bytearray))
                length = route.get("length", None if streamed else len(body))
                self.send_response(route.get("status", 200))
                self.send_header("Content-Type", route.get("type", "application/rss+xml"))
                if length is not None:
                    self.send_header("Content-Length", str(length))
                if route.get("encoding"):
                    self.send_header("Content-Encoding", route["encoding"])
                for name, value in route.get("headers", {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    # HTTP/1.0: without a Content-Length the body ends when the connection does.
                    for chunk in body if streamed else (body,):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout or a size cap under test)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, body, **options) -> str:
        self.routes[path] = {"body": body, **options}
        return self.url(path)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = ""):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        time.sleep(interval)
