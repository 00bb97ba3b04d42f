"""Real local servers that alerts are sent to in tests: an HTTP receiver for Apprise's json://
(a thread on 127.0.0.1 that records each POST and can refuse on purpose, stop and come back on
the same port) and an SMTP server (aiosmtpd) for mailto://."""

from __future__ import annotations

import email
import json
import threading
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from webapp.launcher import free_port


class JsonReceiver:
    """Records what Apprise's json:// POSTs: `messages` holds each body, parsed ({"title",
    "message", "type", …}). `status` is what it answers (set 500 to refuse)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[dict] = []
        self.status = 200
        self.httpd: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver.status
                    if status < 300:
                        receiver.messages.append({"path": self.path, **json.loads(body)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def start(self) -> JsonReceiver:
        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def url(self, path: str = "/alerts") -> str:
        return f"json://127.0.0.1:{self.port}{path}"


class SmtpServer:
    """A real SMTP server on 127.0.0.1; `messages` holds each mail as an email.message."""

    def __init__(self):
        self.port = free_port()
        self.messages: list[email.message.EmailMessage] = []
        server = self

        class Handler:
            async def handle_DATA(self, smtp, session, envelope):
                server.messages.append(
                    email.message_from_bytes(envelope.original_content, policy=policy.default)
                )
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def url(self, to: str = "team@example.com") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=alerts@example.com&to={to}"
