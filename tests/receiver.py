"""A real webhook receiver for tests: an HTTP server on 127.0.0.1, in a thread, that checks the
X-ByteStack-Signature of every request it gets against the secret of its path."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "hang"  # an answer: keep the request open without answering until released


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answered: int | None  # the status sent back; None for a request left hanging

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """Answers each request with the next of `answers` (a status code, or HANG), then 200.

    `secrets` maps a path to the secret its deliveries must be signed with; a request whose
    signature does not verify is answered 401 and kept in `requests` with signature_ok False.
    `delivered` lists the requests answered 2xx: what the receiver accepted.
    """

    def __init__(self, secrets: dict[str, str] | None = None, port: int = 0):
        self.secrets = dict(secrets or {})
        self.answers: list[int | str] = []
        self.requests: list[Received] = []
        self.body_of_answer = b"ok"
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._port = port
        self.httpd: ThreadingHTTPServer | None = None

    # --- the server ------------------------------------------------------------------------

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                path = self.path.split("?", 1)[0]
                with receiver._lock:
                    answer = receiver.answers.pop(0) if receiver.answers else 200
                ok = receiver.verifies(path, self.headers.get("X-ByteStack-Signature", ""), body)
                if not ok:
                    answer = 401
                received = Received(path, dict(self.headers), body, ok, None)
                with receiver._lock:
                    receiver.requests.append(received)
                if answer == HANG:
                    receiver._release.wait(120)
                    self.close_connection = True
                    return
                received.answered = answer
                content = receiver.body_of_answer
                self.send_response(answer)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self.httpd.daemon_threads = True
        self._port = self.httpd.server_address[1]
        self._release.clear()
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused until start() again, on the same port)."""
        self._release.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._port}{path}"

    # --- what it got -------------------------------------------------------------------------

    def verifies(self, path: str, header: str, body: bytes) -> bool:
        secret = self.secrets.get(path)
        if secret is None or not header.startswith("sha256="):
            return False
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(header.removeprefix("sha256="), expected)

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def delivered(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r for r in self.requests
                if r.answered is not None and 200 <= r.answered < 300
                and (path is None or r.path == path)
            ]

    def bad_signatures(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if not r.signature_ok]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 30.0,
                 delivered: bool = False) -> list[Received]:
        """Until `count` requests (or deliveries) came to `path`; the ones that did."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = [r for r in self.requests if path is None or r.path == path]
            if delivered:
                got = self.delivered(path)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} requests to {path} in {timeout} s")
            time.sleep(0.05)
