"""A loopback TCP proxy, run as its own process: `python tcp_proxy.py PORT HOST TARGET_PORT`.

Fault tests put it between the app's processes and PostgreSQL: SIGKILL makes the database
unreachable (every open connection dropped, every new one refused) until the test starts
the proxy again on the same port. It prints "ready" once it listens.
"""

from __future__ import annotations

import socket
import sys
import threading


def pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(port: int, host: str, target_port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, target_port), timeout=5)
        except OSError:
            client.close()
            continue
        upstream.settimeout(None)
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(source, target), daemon=True).start()


if __name__ == "__main__":
    if sys.argv[2] not in ("127.0.0.1", "::1", "localhost"):
        raise SystemExit("tcp_proxy forwards to loopback only")
    serve(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
