"""Helpers shared by the test modules: fixed instants, fresh rows, a job's runs, due slots,
the web process as the Procfile starts it, a database the test can cut off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from feeds import wait_until
from sqlalchemy import insert, select, update
from sqlalchemy.engine import make_url

from webapp.ids import new_public_id
from webapp.launcher import free_port
from webapp.models import Job, Record, Run
from webapp.timeutil import now

# A fixed instant for time-machine: a Friday in May, between two hourly slots.
T0 = datetime(2026, 5, 1, 3, 17, tzinfo=UTC)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fresh(db, model, row_id):
    """The row as the database has it now (nothing from the session's cache)."""
    db.session.expire_all()
    return db.session.get(model, row_id)


def runs_of(db, job, status: str | None = None, slot: datetime | None = None) -> list[Run]:
    """A job's runs, oldest first, optionally of one status or one slot. Holds no read
    transaction afterwards (fault tests lock tables meanwhile)."""
    db.session.expire_all()
    query = select(Run).where(Run.job_id == job.id).order_by(Run.id)
    if status:
        query = query.where(Run.status == status)
    if slot is not None:
        query = query.where(Run.scheduled_for == slot)
    runs = db.session.scalars(query).all()
    db.session.rollback()
    return runs


def set_next_run(db, job, slot: datetime) -> datetime:
    """Move a job's next slot in SQL; the scheduler's reconcile pass picks it up."""
    db.session.execute(update(Job).where(Job.id == job.id).values(next_run_at=slot))
    db.session.commit()
    return slot


def due_in(db, job, seconds: float) -> datetime:
    """Make a job's next slot fall due in `seconds` (a whole second); returns the slot."""
    return set_next_run(db, job, (now() + timedelta(seconds=seconds)).replace(microsecond=0))


def stored_run(
    db, project, job, records, finished_at: datetime, status: str = "completed",
    record_defaults=None,
) -> Run:
    """A run of `job` (a one-off query without one) that ended at `finished_at` with
    `records`, each a dict of overrides of `record_defaults(run, position)` and of a plain rss
    record; stored as the ingest does, in one Core bulk INSERT."""
    run = Run(
        public_id=new_public_id("run" if job else "qry"),
        project_id=project.id,
        job_id=job.id if job else None,
        trigger="schedule" if job else "query",
        scheduled_for=finished_at - timedelta(minutes=1),
        status=status,
        started_at=finished_at - timedelta(seconds=30),
        finished_at=finished_at if status in ("completed", "failed") else None,
        record_count=len(records),
        new_count=sum(1 for r in records if r.get("is_new", True)),
        params=None if job else {"prompt": "acme", "sources": [], "limit": 100},
    )
    db.session.add(run)
    db.session.flush()
    if records:
        db.session.execute(
            insert(Record),
            [
                {
                    "source": "rss",
                    "fingerprint": f"fp-{run.id}-{position}",
                    "url": f"https://news.example.com/{run.id}/{position}",
                    "published_at": finished_at - timedelta(hours=1),
                    "is_new": True,
                    **(record_defaults(run, position) if record_defaults else {}),
                    **overrides,
                    "run_id": run.id,
                    "job_id": run.job_id,
                    "project_id": project.id,
                    "position": position,
                }
                for position, overrides in enumerate(records)
            ],
        )
    db.session.commit()
    return run


# The web process as the Procfile and `make run` start it (its settings module included).
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "python:webapp.gunicorn_conf"]


ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def web_process(
    env: dict, host: str, log_path: Path, *options: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn as the Procfile starts it (two workers, and `options`, e.g. the launcher's
    "--threads", "4"), bound to `host` on a free port: its loopback URL and its process once
    /healthz answers (200, or 503 without a scheduler); stopped with SIGTERM at the end."""
    port = free_port()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [*GUNICORN, "--bind", f"{host}:{port}", "--workers", "2", *options,
             "webapp:create_app()"],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{log_path.read_text(errors='replace')}")
        try:
            return httpx.get(base + "/healthz", timeout=2).status_code in (200, 503)
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, 30, message="gunicorn answering /healthz")
        yield base, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def platform_env(test_env: dict, **changes: str) -> dict:
    """The tests' environment as a platform would give it: no BYTESTACK_ENV, so each process
    has its entry point's default."""
    env = {**os.environ, **test_env, **changes}
    env.pop("BYTESTACK_ENV", None)
    return env


class DatabaseProxy:
    """A TCP proxy process between the app's processes and PostgreSQL (tests/faults/
    tcp_proxy.py). SIGKILLing it makes the database unreachable as a restart or a network
    cut does: every open connection drops and every new one is refused, until it is started
    again on the same port."""

    def __init__(self, database_url: str, logdir):
        self.target = make_url(database_url)
        self.port = free_port()
        self.url = self.target.set(host="127.0.0.1", port=self.port).render_as_string(
            hide_password=False
        )
        self.logdir = logdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.logdir / "tcp-proxy.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).parent / "faults" / "tcp_proxy.py"), str(self.port),
             self.target.host or "127.0.0.1", str(self.target.port or 5432)],
            stdout=subprocess.PIPE, stderr=log,
        )
        assert self.process.stdout.readline().strip() == b"ready"

    def cut(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.cut()
