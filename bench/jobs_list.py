"""Benchmark: Dashboard → Jobs and a job's page with 1,000 jobs and 20,000 runs (SQLite).

Seeds a fresh SQLite database (built by the migrations) in a temporary folder, signs in as
the owner through the test client and times the job list (first page, a later page, a
search, a state filter) and a job's page with its timeline, against GET /healthz measured
in the same run as the baseline (a request that only touches the database). Each figure is
the median of --repeat runs after one warm-up.

    .venv/bin/python bench/jobs_list.py [--jobs N] [--runs-per-job N] [--repeat N]

Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(client, path: str, repeat: int) -> float:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        client.get(path)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--runs-per-job", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bytestack-jobs-bench-")
    os.environ.update(
        DATABASE_URL=f"sqlite:///{workdir}/bench.sqlite3",
        SECRET_KEY="bench",
        BYTESTACK_INSTANCE_PATH=workdir,
    )
    os.environ.pop("REDIS_URL", None)
    logging.disable(logging.INFO)
    try:
        run(args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import insert

    from webapp import create_app
    from webapp.accounts.service import create_owner
    from webapp.extensions import db
    from webapp.ids import new_public_id
    from webapp.models import Job, Run
    from webapp.schedules import INTERVALS

    app = create_app({"WTF_CSRF_ENABLED": False})
    with app.app_context():
        upgrade()
        owner = create_owner("bench@example.com", "a long bench password", "Bench")
        project_id = owner.memberships[0].project_id
        started = time.perf_counter()
        now = datetime.now(UTC).replace(microsecond=0)
        presets = list(INTERVALS)
        states = ("active", "active", "active", "paused", "failed")
        db.session.execute(
            insert(Job),
            [
                {
                    "public_id": new_public_id("job"),
                    "project_id": project_id,
                    "name": f"Job {n:04d} {'acme' if n % 7 == 0 else 'globex'}",
                    "prompt": f"brand{n} OR product{n}",
                    "sources": [{"type": "rss", "url": f"https://feeds.example.com/{n}.xml"}],
                    "limit": 100,
                    "schedule_type": "interval" if n % 3 else "cron",
                    "schedule_value": presets[n % 4] if n % 3 else "*/15 9-17 * * 1-5",
                    "timezone": "Europe/Berlin" if n % 2 else "UTC",
                    "state": states[n % 5],
                    "enabled": states[n % 5] == "active",
                    "next_run_at": now + timedelta(minutes=n % 60) if n % 5 < 3 else None,
                    "last_sync_at": now - timedelta(minutes=n % 60),
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(args.jobs)
            ],
        )
        job_ids = [row[0] for row in db.session.execute(db.select(Job.id)).all()]
        rows = []
        for job_id in job_ids:
            for r in range(args.runs_per_job):
                slot = now - timedelta(hours=r)
                rows.append(
                    {
                        "public_id": new_public_id("run"),
                        "project_id": project_id,
                        "job_id": job_id,
                        "trigger": "schedule",
                        "scheduled_for": slot,
                        "status": "completed" if r % 9 else "failed",
                        "created_at": slot,
                        "started_at": slot,
                        "finished_at": slot + timedelta(seconds=3),
                        "record_count": 40,
                        "new_count": 5,
                    }
                )
        for start in range(0, len(rows), 10_000):
            db.session.execute(insert(Run), rows[start : start + 10_000])
        db.session.commit()
        seeded = time.perf_counter() - started
        some_job = db.session.scalar(db.select(Job.public_id).where(Job.state == "active").limit(1))
        user_id = owner.get_id()

    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = user_id
        session["_fresh"] = True
    print(f"seeded {args.jobs:,} jobs and {len(rows):,} runs in {seeded:.1f} s")
    baseline = timed(client, "/healthz", args.repeat)
    figures = {
        "jobs list, first page (50 rows)": timed(client, "/jobs", args.repeat),
        "jobs list, page 15": timed(client, "/jobs?page=15", args.repeat),
        "jobs list, search 'acme'": timed(client, "/jobs?q=acme", args.repeat),
        "jobs list, state=failed": timed(client, "/jobs?state=failed", args.repeat),
        "a job's page (timeline, 25 runs)": timed(client, f"/jobs/{some_job}", args.repeat),
    }
    print(f"  {'baseline GET /healthz':40s} {baseline:8.2f} ms")
    for label, value in figures.items():
        print(f"  {label:40s} {value:8.2f} ms   {value / baseline:6.1f}x baseline")


if __name__ == "__main__":
    main()
