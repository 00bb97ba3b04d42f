"""The Procfile as a platform runs it, against PostgreSQL and a real Redis server.

    DATABASE_URL=postgresql://… REDIS_URL=redis://… .venv/bin/python tests/smoke/procfile_smoke.py

honcho runs the Procfile's own commands: `release` first (the migrations), then `web`,
`notifier` and two `scheduler`s under one honcho, and three `worker`s under a honcho each
(honcho stops all of its processes when one exits, so a worker that is restarted has its
own). Nothing sets BYTESTACK_ENV: every process runs as production, as on a platform.

A job created through the API fires every minute. While the second slot's run is going, the
worker running it is stopped (SIGTERM, as a deploy does) and started again. The smoke test
passes when three consecutive minutes each have exactly one run, every one completed with
all its records, with two schedulers firing and no process lost on the way.

The database and Redis must be empty (CI makes new ones); --reset empties them first. It
takes about four minutes and is not collected by `make test`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psycopg
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from feeds import FeedServer, rss_document  # noqa: E402  (tests/ is not a package)

from webapp.launcher import free_port  # noqa: E402

SLOTS = 3
ITEMS = [{"title": f"Acme news {n}", "link": f"https://news.example.com/{n}"} for n in range(5)]
FEED_DELAY = 8.0  # seconds each fetch of the feed takes: a run lasts long enough to interrupt
# honcho sends SIGKILL 5 s after SIGTERM; a worker's grace must end before that.
WORKER_GRACE = 2
DEADLINE = 8 * 60  # the whole smoke test, start to stop


def say(message: str) -> None:
    print(f"[smoke {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Failed(Exception):
    pass


def wait_for(what: str, predicate, timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Honcho:
    """One `honcho start` of some of the Procfile's processes, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, logdir: Path):
        self.name, self.args, self.env = name, args, env
        self.log_path = logdir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("honcho")), "--no-colour", "start", *self.args],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, as a platform stops a dyno: honcho passes it to its processes' groups
        and kills what is left 5 s later."""
        if not self.running():
            return self.process.returncode if self.process else None
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def pids(self) -> set[int]:
        return set(descendants(self.process.pid)) if self.running() else set()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _pings(redis: Redis) -> bool:
    try:
        return bool(redis.ping())
    except RedisError:
        return False


def empty_or_reset(database_url: str, redis: Redis, reset: bool) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()[0]
        if tables and not reset:
            raise Failed(f"the database has {tables} tables: give an empty one or --reset")
        if tables:
            connection.execute("DROP SCHEMA public CASCADE")
            connection.execute("CREATE SCHEMA public")
    if redis.dbsize() and not reset:
        raise Failed("Redis holds keys: give an empty one or --reset")
    redis.flushdb()


def process_env(database_url: str, redis_url: str) -> dict:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_hex(32),
        "BYTESTACK_WORKER_GRACE_SECONDS": str(WORKER_GRACE),
        "BYTESTACK_FETCH_TIMEOUT": "30",
        "BYTESTACK_FETCH_MIN_INTERVAL": "0",
        # The smoke test's feed is on loopback, which production refuses by default.
        "BYTESTACK_ALLOW_PRIVATE_NETWORKS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("BYTESTACK_ENV", None)  # as on a platform: each process's default, production
    return env


def schedule_runs(database_url: str, job_id: str) -> list[tuple]:
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT r.public_id, r.scheduled_for, r.status, r.record_count, r.attempts, r.error"
            " FROM runs r JOIN jobs j ON j.id = r.job_id"
            " WHERE j.public_id = %s AND r.trigger = 'schedule' ORDER BY r.scheduled_for",
            (job_id,),
        ).fetchall()


def worker_running(redis: Redis) -> tuple[int, str] | None:
    """The pid of the worker whose work horse is running a run, and the RQ job id."""
    for worker in Worker.all(connection=redis, queue=Queue("runs", connection=redis)):
        job_id = worker.get_current_job_id()
        if job_id:
            return (worker.pid or int(worker.name.rsplit(".", 1)[1])), job_id
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reset", action="store_true", help="empty the database and Redis")
    parser.add_argument("--logs", default=None, help="folder for the processes' logs")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        print("Set DATABASE_URL (PostgreSQL) and REDIS_URL.", file=sys.stderr)
        return 2
    logdir = Path(args.logs or f"/tmp/procfile-smoke-{os.getpid()}")
    logdir.mkdir(parents=True, exist_ok=True)
    redis = Redis.from_url(redis_url)
    try:
        wait_for(f"Redis at {redis_url}", lambda: _pings(redis), 15, 0.2)
        empty_or_reset(database_url, redis, args.reset)
    except (Failed, psycopg.Error) as exc:
        say(f"FAILED before starting anything: {exc}")
        return 1
    env = process_env(database_url, redis_url)
    feeds = FeedServer()
    # Items published a second before each answer: a job's run reads what is newer than its
    # previous run, and each run must have all of them.
    feeds.serve(
        "/feed.xml",
        lambda: rss_document([{**item, "age": timedelta(seconds=1)} for item in ITEMS]),
        delay=FEED_DELAY,
    )
    feeds.start()
    port = free_port()
    services = Honcho("web-notifier-schedulers",
                      ["-p", str(port), "-c", "scheduler=2", "web", "notifier", "scheduler"],
                      env, logdir)
    workers = [Honcho(f"worker-{n}", ["worker"], env, logdir) for n in (1, 2, 3)]
    started = time.monotonic()
    try:
        return smoke(database_url, redis, env, logdir, port, feeds, services, workers, started)
    except Failed as exc:
        say(f"FAILED: {exc}")
        for honcho in (services, *workers):
            say(f"--- last lines of {honcho.log_path}")
            print("\n".join(honcho.output().splitlines()[-40:]), flush=True)
        return 1
    finally:
        for honcho in (*workers, services):
            honcho.stop()
        feeds.stop()


def smoke(database_url, redis, env, logdir, port, feeds, services, workers, started) -> int:
    say(f"logs in {logdir}")
    release = Honcho("release", ["release"], env, logdir)
    release.start()
    code = release.process.wait(timeout=180)
    if code != 0:
        raise Failed(f"release exited with {code}:\n{release.output()}")
    say("release: migrations applied")

    services.start()
    for worker in workers:
        worker.start()
    base = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            answer = httpx.get(base + "/healthz", timeout=3)
        except httpx.TransportError:
            return None
        return answer.json() if answer.status_code == 200 else None

    health = wait_for("/healthz to answer 200", healthy, 90)
    say(f"web, notifier, 2 schedulers, 3 workers up: /healthz {health}")
    setup = httpx.get(base + "/setup", timeout=5)
    if 'name="setup_token"' not in setup.text:
        raise Failed("/setup on 0.0.0.0 does not ask for the setup token")
    if "Strict-Transport-Security" not in setup.headers:
        raise Failed("the web process does not run as production (no HSTS)")
    say("production by default: HSTS sent, /setup asks for the setup token")

    key = subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app",
         'webapp:create_app_or_exit("production")', "create-api-key", "--scope", "write"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip().splitlines()[-1]
    api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10)
    created = api.post("/v1/jobs", json={
        "name": "Procfile smoke", "prompt": "acme", "schedule": "* * * * *", "timezone": "UTC",
        "sources": [{"type": "rss", "url": feeds.url("/feed.xml")}],
    })
    if created.status_code != 201:
        raise Failed(f"POST /v1/jobs answered {created.status_code}: {created.text}")
    job = created.json()
    say(f"job {job['id']} created through the API, every minute, next {job['next_run_at']}")

    restarted = None
    while True:
        if time.monotonic() - started > DEADLINE:
            raise Failed(f"{SLOTS} slots did not complete within {DEADLINE} s")
        for honcho in (services, *workers):
            if not honcho.running():
                raise Failed(f"{honcho.name} stopped (a process of it exited)")
        runs = schedule_runs(database_url, job["id"])
        completed = [run for run in runs if run[2] == "completed"]
        if restarted is None and len(runs) >= 2 and runs[1][2] == "running":
            # The second slot's run has started fetching: stop the worker that runs it.
            holder = worker_running(redis)
            if holder is not None:
                restarted = restart_holder(workers, holder, runs[1][0])
        if len(completed) >= SLOTS and restarted is not None:
            break
        time.sleep(1)

    runs = schedule_runs(database_url, job["id"])[:SLOTS]
    say("runs of the job's first slots:")
    for public_id, slot, status, count, attempts, error in runs:
        say(f"  {slot:%H:%M:%S} {public_id} {status} records={count} attempts={attempts}"
            f"{' error=' + error if error else ''}")
    check(runs, restarted)
    check_processes(services, workers)
    records = api.get(f"/v1/runs/{runs[-1][0]}/records").json()["data"]
    if sorted(r["title"] for r in records) != sorted(item["title"] for item in ITEMS):
        raise Failed(f"the last run's records are not the feed's: {records}")
    say(f"PASSED in {time.monotonic() - started:.0f} s: {SLOTS} consecutive minutes, one "
        "completed run each, no duplicates, with a worker restarted during a run")
    return 0


def restart_holder(workers, holder: tuple[int, str], run_id: str) -> dict:
    pid, rq_job = holder
    for worker in workers:
        if pid in worker.pids():
            say(f"{worker.name} (pid {pid}) is running {rq_job}: stopping it with SIGTERM")
            code = worker.stop()
            say(f"{worker.name} stopped (honcho exit {code}); starting it again")
            worker.start()
            return {"worker": worker.name, "rq_job": rq_job, "run": run_id}
    raise Failed(f"no worker's honcho holds pid {pid}, which runs {rq_job}")


def check(runs: list[tuple], restarted: dict) -> None:
    if len(runs) < SLOTS:
        raise Failed(f"{len(runs)} scheduled runs, {SLOTS} expected")
    slots = [run[1] for run in runs]
    if len(set(slots)) != len(slots):
        raise Failed(f"a slot has more than one run: {slots}")
    steps = {b - a for a, b in zip(slots, slots[1:], strict=False)}
    if steps != {timedelta(minutes=1)}:
        raise Failed(f"the slots are not consecutive minutes: {slots}")
    if any(isinstance(slot, datetime) and slot.second for slot in slots):
        raise Failed(f"a slot is not on a minute: {slots}")
    bad = [run for run in runs if run[2] != "completed" or run[3] != len(ITEMS)]
    if bad:
        raise Failed(f"runs not completed with every record: {bad}")
    say(f"{restarted['worker']} was restarted during {restarted['run']}"
        f" ({restarted['rq_job']}); that run completed once")


def check_processes(services, workers) -> None:
    lines = services.output().splitlines()
    for name in ("scheduler.1", "scheduler.2"):
        mine = [line for line in lines if f" {name} " in line]
        if not any("started, polling" in line for line in mine):
            raise Failed(f"{name} did not start")
        fired = sum(1 for line in mine if "fired " in line and " slots (" in line)
        say(f"{name}: running, fired {fired} batch(es) of slots")
    handed = [w.name for w in workers if "handed back to the queue" in w.output()]
    say(f"workers that handed a run back: {', '.join(handed) or 'none (finished in its grace)'}")


if __name__ == "__main__":
    sys.exit(main())
