"""`make run`'s launcher (python -m webapp.launcher) as a real process tree: it supervises
its children and stops all of them on Ctrl-C, with an external Redis or its embedded one.

DESIGN.md: "the launcher restarts a child that exits"; "One command starts web, worker and
scheduler together. An embedded Redis lives only as long as the process that started it,
so the launcher owns it ... and stops them all on Ctrl-C."
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from feeds import rss_document, wait_until
from sqlalchemy import select, update

from webapp.jobs.service import create_job
from webapp.launcher import free_port
from webapp.models import Job, Run
from webapp.timeutil import now

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ITEMS = [{"title": "Acme launches a rocket", "link": "https://news.example.com/a/1"}]
STOP_WITHIN = 40  # seconds from Ctrl-C until the launcher and all its descendants are gone


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *descendants(child)]
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def role(pid: int) -> str | None:
    args = cmdline(pid)
    # redis-server rewrites its title: "<path>/redis-server 127.0.0.1:<port>", one string
    if args and "redis-server" in args[0]:
        return "redis"
    if "gunicorn" in args:
        return "web"
    if any(a.endswith("/worker.py") for a in args):
        return "notifier" if "notifications" in args else "worker"
    if any(a.endswith("/scheduler.py") for a in args):
        return "scheduler"
    return None


def roles(launcher: subprocess.Popen) -> dict[str, list[int]]:
    """The launcher's direct children by role."""
    found: dict[str, list[int]] = {}
    for pid in children(launcher.pid):
        found.setdefault(role(pid) or "other", []).append(pid)
    return found


def completed_run(db, job, slot) -> Run | None:
    db.session.expire_all()
    return db.session.scalar(
        select(Run).where(Run.job_id == job.id, Run.scheduled_for == slot,
                          Run.status == "completed")
    )


class Launcher:
    def __init__(self, env: dict, log: Path):
        self.env, self.log = env, log
        self.port = int(env["PORT"])
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webapp.launcher"], env=env, cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def until(self, predicate, timeout: float, what: str):
        """wait_until, failing with the launcher's output (and its children) as they are then."""
        try:
            return wait_until(predicate, timeout, message=what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; children {roles(self.process)}\n{self.output()}"
            ) from None

    def wait_children(self, expected: dict[str, int], timeout: float = 30) -> dict[str, list[int]]:
        def complete():
            assert self.process.poll() is None, f"the launcher exited:\n{self.output()}"
            found = roles(self.process)
            return found if all(len(found.get(k, [])) == n for k, n in expected.items()) else None

        return self.until(complete, timeout, f"children {expected}")

    def healthz(self) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=3)
        except httpx.TransportError:
            return None

    def ctrl_c_and_wait(self) -> list[int]:
        """SIGINT as Ctrl-C sends it; wait for the launcher to exit; the pids it had."""
        tree = descendants(self.process.pid)
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the launcher still runs {STOP_WITHIN} s after SIGINT\n{self.output()}"
            ) from None
        return tree

    def kill_all(self) -> None:
        for pid in [self.process.pid, *descendants(self.process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)


@pytest.fixture
def launch(app, tmp_path):
    """Start launchers; any still running at teardown is killed with all its descendants.
    (It depends on `app` so the tables exist, and are dropped only after it stopped.)"""
    started: list[Launcher] = []

    def start(env: dict) -> Launcher:
        launcher = Launcher(env, tmp_path / f"launcher-{len(started)}.log")
        started.append(launcher)
        return launcher

    yield start
    for launcher in started:
        if launcher.process.poll() is None:
            launcher.kill_all()


def launcher_env(test_env: dict, **changes) -> dict:
    env = {**os.environ, **test_env, "PORT": str(free_port()), "BYTESTACK_WORKERS": "2"}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def test_the_launcher_restarts_a_killed_scheduler_and_stops_every_child_on_ctrl_c(
    db, project, feed_server, test_env, launch
):
    """DESIGN.md: the launcher starts web, the workers and the scheduler, restarts a child
    that exits (a SIGKILLed scheduler comes back with a new pid and fires slots again, the
    others untouched, the launcher itself keeps running), and on Ctrl-C stops them all:
    within 40 s it has exited and none of its descendants remain."""
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    # A yearly slot never falls due by itself here: the only slot is the one made due below
    # (with `* * * * *` a new minute could fire first and move next_run_at under the test).
    job = create_job(project, {"name": "Acme", "prompt": "acme", "sources": [url],
                               "schedule": "0 0 1 1 *"})
    launcher = launch(launcher_env(test_env))
    before = launcher.wait_children({"web": 1, "worker": 2, "notifier": 1, "scheduler": 1})
    launcher.until(launcher.healthz, 30, "/healthz answering")
    old = before["scheduler"][0]
    os.kill(old, signal.SIGKILL)
    after = launcher.until(
        lambda: (found := roles(launcher.process)).get("scheduler") not in (None, [old])
        and found,
        20, "a new scheduler",
    )
    assert len(after["scheduler"]) == 1 and after["scheduler"] != [old]
    assert not alive(old)
    assert after["web"] == before["web"] and sorted(after["worker"]) == sorted(before["worker"])
    assert launcher.process.poll() is None
    assert "scheduler exited" in launcher.output()
    # The new scheduler works: a slot made due now fires and a worker completes its run.
    slot = (now() + timedelta(seconds=1)).replace(microsecond=0)
    db.session.execute(update(Job).where(Job.id == job.id).values(next_run_at=slot))
    db.session.commit()
    launcher.until(lambda: completed_run(db, job, slot), 25, "the slot's run completed")

    started = time.monotonic()
    tree = launcher.ctrl_c_and_wait()
    assert set(tree) >= {*after["web"], *after["worker"], *after["scheduler"]}
    wait_until(lambda: not any(alive(p) for p in tree), 5,
               message=f"descendants gone: {[p for p in tree if alive(p)]}")
    assert time.monotonic() - started < STOP_WITHIN
    assert launcher.process.returncode == 0, launcher.output()


def test_without_redis_url_the_launcher_runs_an_embedded_redis_and_stops_it_on_ctrl_c(
    test_env, launch, tmp_path
):
    """DESIGN.md: with no REDIS_URL (the default `make run`), the launcher starts an
    embedded Redis, waits until it answers and hands its URL to web, workers and scheduler
    (/healthz reports every component ok); on Ctrl-C the redis-server goes too."""
    # A temp instance folder (the embedded Redis keeps its file there); the database is the
    # test's own (a temp SQLite file, or DATABASE_URL as given on PostgreSQL CI).
    env = launcher_env(test_env, REDIS_URL=None,
                       BYTESTACK_INSTANCE_PATH=str(tmp_path / "launcher-instance"))
    launcher = launch(env)
    found = launcher.wait_children(
        {"redis": 1, "web": 1, "worker": 2, "notifier": 1, "scheduler": 1}
    )
    redis_pid = found["redis"][0]

    def healthy():
        answer = launcher.healthz()
        return answer is not None and answer.status_code == 200 and answer

    answer = launcher.until(healthy, 40, "/healthz 200")
    checks = answer.json()["checks"]
    assert checks == {"database": "ok", "redis": "ok", "scheduler": "ok", "workers": "ok"}
    assert "embedded Redis on redis://127.0.0.1:" in launcher.output()

    tree = launcher.ctrl_c_and_wait()
    assert redis_pid in tree
    wait_until(lambda: not any(alive(p) for p in tree), 5,
               message=f"descendants gone: {[p for p in tree if alive(p)]}")
    assert not alive(redis_pid)
    assert launcher.process.returncode == 0, launcher.output()
