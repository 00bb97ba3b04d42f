"""Benchmark: Analytics aggregates on 1,000 jobs, ~20,000 runs and 1,000,000 records.

Seeds a fresh database (SQLite in a temporary folder, or the PostgreSQL database given with
--database-url, whose tables are dropped and created) with Core inserts in batches, counts
the per-day rollups from those records (rollups.rebuild, as after a restore), then times
what the project's Analytics page and a job's page ask of the database, next to baselines
measured in the same run (SELECT COUNT(*) over records, and one full pass over the table).

    .venv/bin/python bench/analytics_aggregate.py [--records N] [--jobs N] [--runs N]
    .venv/bin/python bench/analytics_aggregate.py --database-url postgresql://…/bench

Not a test: it prints figures. Expect a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, event, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCES = ("rss", "hackernews", "reddit", "mastodon", "bluesky", "news", "github", "youtube")
BATCH = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", help="a PostgreSQL database to use (emptied)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bytestack-bench-")
    os.environ.update(
        DATABASE_URL=args.database_url or f"sqlite:///{workdir}/bench.sqlite3",
        SECRET_KEY="bench",
        BYTESTACK_INSTANCE_PATH=f"{workdir}/instance",
    )
    import logging

    from webapp import create_app
    from webapp.extensions import db
    from webapp.runs import rollups

    app = create_app({"TESTING": True})
    logging.getLogger().setLevel(logging.WARNING)
    with app.app_context():
        db.drop_all()
        db.create_all()
        started = time.perf_counter()
        project_id, job_ids = seed(db, args.jobs, args.runs, args.records)
        size = database_size(db, workdir)
        print(
            f"seeded {args.jobs:,} jobs, {args.runs:,} runs, {args.records:,} records "
            f"in {time.perf_counter() - started:.0f} s ({size:,.0f} MiB) on {db.engine.url}"
        )
        started = time.perf_counter()
        rollups.rebuild(project_id)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        print(f"rollups counted from the raw records in {time.perf_counter() - started:.1f} s")
        version = db.session.execute(
            text("SELECT version()" if db.engine.dialect.name == "postgresql"
                 else "SELECT 'SQLite ' || sqlite_version()")
        ).scalar()
        print(f"{version.split(' on ')[0]}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        if db.engine.dialect.name == "sqlite":
            explain(db, project_id)
        measure(app, db, project_id, job_ids[len(job_ids) // 2], args.repeat)
        if args.database_url and not args.keep:
            db.drop_all()
        db.session.remove()
        db.engine.dispose()
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir)


def database_size(db, workdir: str) -> float:
    """The database in MiB (SQLite: the file, with the write-ahead log folded in first)."""
    if db.engine.dialect.name == "postgresql":
        size = text("SELECT pg_database_size(current_database())")
        return db.session.execute(size).scalar() / 2**20
    db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return Path(workdir, "bench.sqlite3").stat().st_size / 2**20


def seed(db, jobs: int, runs: int, records: int) -> tuple[int, list[int]]:
    """One project with every job, plus a small other project that must never be counted."""
    from webapp.models import Job, Project, Record, Run

    rnd = random.Random(20260501)
    now = datetime.now(UTC).replace(microsecond=0)
    # "Default" is the project the dashboard falls back to where no one is signed in.
    project = Project(name="Default")
    other = Project(name="Other")
    db.session.add_all([project, other])
    db.session.commit()
    conn = db.session.connection()

    job_rows = [
        {
            "public_id": f"job_bench{n:08d}",
            "project_id": project.id if n < jobs else other.id,
            "name": f"Job {n}",
            "prompt": "acme",
            "sources": [{"type": "rss"}],
            "limit": 100,
            "schedule_type": "preset",
            "schedule_value": "every_6_hours",
            "timezone": "UTC",
            "state": "active",
            "enabled": True,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(jobs + 10)
    ]
    conn.execute(Job.__table__.insert(), job_rows)
    job_ids = [row.id for row in conn.execute(select(Job.id).order_by(Job.id))]
    ours, theirs = job_ids[:jobs], job_ids[jobs:]

    # Runs spread over the last 90 days; ~3% failed, ~2% skipped, like a real history.
    run_rows = []
    per_job = runs // jobs
    for index, job_id in enumerate(ours + theirs):
        count = per_job if index < jobs else 20
        for slot in range(count):
            at = now - timedelta(days=90) + timedelta(hours=rnd.uniform(0, 90 * 24))
            roll = rnd.random()
            status = "failed" if roll < 0.03 else "skipped" if roll < 0.05 else "completed"
            run_rows.append(
                {
                    "public_id": f"run_bench{len(run_rows):08d}",
                    "project_id": project.id if index < jobs else other.id,
                    "job_id": job_id,
                    "trigger": "schedule",
                    "scheduled_for": at + timedelta(microseconds=slot),
                    "status": status,
                    "created_at": at,
                    "started_at": None if status == "skipped" else at,
                    "finished_at": at + timedelta(seconds=rnd.uniform(0.2, 20)),
                    "record_count": 0,
                    "new_count": 0,
                }
            )
    conn.execute(Run.__table__.insert(), run_rows)
    completed = [
        (row.id, row.job_id, row.project_id)
        for row in conn.execute(
            select(Run.id, Run.job_id, Run.project_id).where(Run.status == "completed")
        )
    ]
    ours_completed = [run for run in completed if run[2] == project.id]
    theirs_completed = [run for run in completed if run[2] != project.id]

    # Spread `records` over our completed runs (and 10,000 over the other project's).
    domains = [f"site{n}.example" for n in range(2_000)]
    weights = [1 / (n + 1) for n in range(len(domains))]
    plan = _spread(records, ours_completed) + _spread(10_000, theirs_completed)
    batch: list[dict] = []
    counts: dict[int, tuple[int, int]] = {}
    serial = 0
    for run_id, job_id, project_id, how_many in plan:
        picked = rnd.choices(domains, weights, k=how_many)
        new = 0
        for position in range(how_many):
            is_new = rnd.random() < 0.3
            new += is_new
            serial += 1
            batch.append(
                {
                    "public_id": f"rec_bench{serial:010d}",
                    "run_id": run_id,
                    "job_id": job_id,
                    "project_id": project_id,
                    "position": position,
                    "source": SOURCES[serial % len(SOURCES)],
                    "fingerprint": f"{serial:064x}",
                    "url": f"https://{picked[position]}/p/{serial}",
                    "domain": picked[position],
                    "title": f"Acme story number {serial}",
                    "text": "Acme corp shipped something people talk about. " * 4,
                    "author": f"author{rnd.randint(1, 50_000)}",
                    "published_at": now,
                    "metrics": {},
                    "raw": {},
                    "is_new": is_new,
                }
            )
            if len(batch) == BATCH:
                conn.execute(Record.__table__.insert(), batch)
                batch = []
        counts[run_id] = (how_many, new)
    if batch:
        conn.execute(Record.__table__.insert(), batch)
    conn.execute(
        Run.__table__.update()
        .where(Run.__table__.c.id == bindparam("rid"))
        .values(record_count=bindparam("rc"), new_count=bindparam("nc")),
        [{"rid": rid, "rc": rc, "nc": nc} for rid, (rc, nc) in counts.items()],
    )
    db.session.commit()
    return project.id, ours


def _spread(total: int, runs: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    share, rest = divmod(total, max(len(runs), 1))
    return [(*run, share + (1 if n < rest else 0)) for n, run in enumerate(runs)]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(first call, median and p95 of the next `repeat`) in milliseconds."""
    started = time.perf_counter()
    fn()
    first = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return first, statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def measure(app, db, project_id: int, job_id: int, repeat: int) -> dict:
    from flask import g

    from webapp.analytics import service
    from webapp.analytics.charts import SPECS, build_figures
    from webapp.analytics.views import _chart_response, _render_page
    from webapp.models import Job, Project

    project = db.session.get(Project, project_id)
    job = db.session.get(Job, job_id)
    today = datetime.now(UTC).date()

    def page_aggregates(scope, rng) -> None:
        build_figures(scope, rng)  # every query the page runs, and its tables

    def render(path: str, view: Callable[[], object]) -> Callable[[], object]:
        def call() -> None:
            with app.test_request_context(path):
                g.project = project  # what the access check sets for a signed-in member
                view()

        return call

    count = text("SELECT COUNT(*) FROM records")
    full_pass = text("SELECT COUNT(DISTINCT author) FROM records")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("baseline: SELECT COUNT(*) FROM records", lambda: db.session.execute(count).scalar()),
        (
            "baseline: COUNT(DISTINCT author) over all records",
            lambda: db.session.execute(full_pass).scalar(),
        ),
    ]
    for days in (30, 90):
        rng = service.DateRange.last(days, today)
        scope = service.Scope(project_id)
        for spec_load in dict.fromkeys(spec.load for spec in SPECS):
            name = getattr(spec_load, "__name__", "load").lstrip("_")
            cases.append((f"project {days}d: {name}", lambda f=spec_load, s=scope, r=rng: f(s, r)))
        cases.append(
            (
                f"project {days}d: ALL of the page's queries",
                lambda s=scope, r=rng: page_aggregates(s, r),
            )
        )
    cases += [
        (
            "project 90d: page rendered (view + template)",
            render("/analytics?range=90", lambda: _render_page(None)),
        ),
        (
            "project 90d: one chart SVG (sources)",
            render(
                "/analytics/chart/sources.svg?range=90", lambda: _chart_response("sources", None)
            ),
        ),
        (
            "job 90d: ALL of the page's queries",
            lambda: page_aggregates(
                service.Scope(project_id, job_id), service.DateRange.last(90, today)
            ),
        ),
        (
            "job 90d: page rendered (view + template)",
            render(f"/analytics/jobs/{job.public_id}?range=90", lambda: _render_page(job)),
        ),
    ]
    for days in (30, 90):
        in_range = sum(
            d.records
            for d in service.daily_totals(
                service.Scope(project_id), service.DateRange.last(days, today)
            )
        )
        print(f"records in the project's last {days} days: {in_range:,}")
    results: dict[str, float] = {}
    baselines: list[float] = []
    print(
        f"\n{'what':58} {'first ms':>9} {'median ms':>9} {'p95 ms':>8} {'×COUNT(*)':>9}"
        f" {'×1 pass':>8}"
    )
    for label, fn in cases:
        first, median, p95 = timed(fn, repeat)
        db.session.rollback()
        if len(baselines) < 2:
            baselines.append(median)
        results[label] = p95
        print(
            f"{label:58} {first:>9.1f} {median:>9.1f} {p95:>8.1f} {p95 / baselines[0]:>9.2f}"
            f" {p95 / baselines[-1]:>8.2f}"
        )
    return results


def explain(db, project_id: int) -> None:
    """How SQLite drives each record aggregate (the expensive part), from the SQL really sent."""
    from webapp.analytics import service

    rng = service.DateRange.last(90, datetime.now(UTC).date())
    scope = service.Scope(project_id)
    for fn in (service.records_by_source, service.top_domains, service.unique_authors_per_day):
        sent: list[tuple[str, tuple]] = []

        def grab(conn, cursor, statement, parameters, context, executemany, sent=sent) -> None:
            sent.append((statement, parameters))

        event.listen(db.engine, "before_cursor_execute", grab)
        try:
            fn(scope, rng)
        finally:
            event.remove(db.engine, "before_cursor_execute", grab)
        statement, parameters = sent[-1]
        plan = (
            db.session.connection()
            .exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            .all()
        )
        print(f"plan of {fn.__name__}: " + " | ".join(row[-1] for row in plan))


if __name__ == "__main__":
    main()
