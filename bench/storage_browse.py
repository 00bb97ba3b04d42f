"""Benchmark: the Storage records browser on 1,000 jobs and 1,000,000 records (SQLite).

Seeds a fresh SQLite database (built by the migrations) in a temporary folder with batched
executemany inserts, then times the records browser's first page, a page deep in the table
reached by its cursor, a filtered page (source + text), and the same pages read with OFFSET
as the baseline keyset pagination replaces. Each figure is the median of --repeat runs after
one warm-up; the page through the view includes rendering the template.

    .venv/bin/python bench/storage_browse.py [--records N] [--jobs N] [--repeat N] [--keep]

Not a test: it prints figures. About half a minute on 2 cores; the 600 MiB database is
deleted at the end unless --keep.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOURCES = ("rss", "hackernews", "reddit", "mastodon", "bluesky", "news", "github", "youtube")
WORDS = (
    "launch", "market", "cloud", "price", "update", "report", "growth", "review", "team",
    "product", "users", "data", "security", "release", "open", "source", "policy", "deal",
    "chip", "model", "energy", "climate", "vote", "court", "startup", "funding", "hiring",
    "layoffs", "earnings", "outage", "patch", "bug", "feature", "roadmap",
)  # fmt: skip
RUNS_PER_JOB = 10
BATCH = 20_000
# One job in ten belongs to a second project, so every page is scoped, as in production.
OTHER_PROJECT_EVERY = 10
DEEP_OFFSET = 850_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bytestack-storage-bench-")
    os.environ.update(
        DATABASE_URL=f"sqlite:///{workdir}/bench.sqlite3",
        SECRET_KEY="bench",
        BYTESTACK_INSTANCE_PATH=f"{workdir}/instance",
    )
    from webapp import create_app
    from webapp.extensions import db

    app = create_app({"TESTING": True, "SERVER_NAME": "localhost"})
    logging.getLogger().setLevel(logging.WARNING)
    try:
        with app.app_context():
            run(app, db, args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def run(app, db, args: argparse.Namespace, workdir: str) -> None:
    """Seed, check that keyset and OFFSET pages agree, then time them."""
    from flask import g
    from flask_migrate import upgrade

    from webapp.models import Project
    from webapp.storage import service, views

    upgrade()  # the schema and indexes the migrations build, not create_all()'s
    started = time.perf_counter()
    counts = seed(db, args.jobs, args.records)
    size = Path(workdir, "bench.sqlite3").stat().st_size / 2**20
    print(
        f"seeded {args.jobs:,} jobs, {counts['runs']:,} runs, {args.records:,} records "
        f"in {time.perf_counter() - started:.0f} s ({size:,.0f} MiB) at {workdir}"
    )
    print(
        f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs; no ANALYZE (as a fresh deployment runs)"
    )
    project = db.session.get(Project, 1)
    total = counts["project_records"]
    deep_offset = min(DEEP_OFFSET, total - service.RECORDS_PER_PAGE - 1)
    none = service.parse_record_filters(project, {})
    filtered = service.parse_record_filters(project, {"source": "rss", "q": "acme"})
    # A word no record has: the full-text index answers at once (bench/search.py times it).
    unmatched = service.parse_record_filters(project, {"q": "zyzzyva"})

    def offset_page(filters, offset: int) -> list[int]:
        stmt, column = service.records_query(project, filters)
        stmt = stmt.order_by(column.desc())
        rows = db.session.scalars(stmt.offset(offset).limit(service.RECORDS_PER_PAGE + 1))
        return [record.id for record in rows][: service.RECORDS_PER_PAGE]

    # The cursor that reaches the page OFFSET reads at `deep_offset`: the id just above it.
    cursor = offset_page(none, deep_offset - 1)[0]

    def keyset(filters, before=None) -> list[int]:
        page = service.browse_records(project, filters, before=before)
        return [item.record.id for item in page.items]

    assert keyset(none, cursor) == offset_page(none, deep_offset), "pages disagree"
    assert keyset(filtered) == offset_page(filtered, 0), "filtered pages disagree"
    sample = service.browse_records(project, filtered).items
    assert sample and all(i.record.source == "rss" for i in sample)
    assert all("acme" in (i.record.title + i.record.text).lower() for i in sample)

    def view(query: str) -> Callable[[], object]:
        def render():
            with app.test_request_context(f"/storage/records?{query}"):
                g.project = project  # what the access check sets for a signed-in member
                body, status = views.records()
                assert status == 200 and "record-" in body

        return render

    print(
        f"\nproject 1 holds {total:,} records; a page is {service.RECORDS_PER_PAGE} rows;"
        f" the deep page starts {deep_offset:,} rows from the newest\n"
    )
    cases = [
        ("keyset, first page", lambda: keyset(none)),
        ("keyset, deep page (cursor)", lambda: keyset(none, cursor)),
        ("keyset, filtered source=rss q=acme", lambda: keyset(filtered)),
        ("keyset, text matching nothing", lambda: keyset(unmatched)),
        ("OFFSET, first page", lambda: offset_page(none, 0)),
        ("OFFSET, deep page", lambda: offset_page(none, deep_offset)),
        ("view + template, first page", view("")),
        ("view + template, deep page", view(f"before={cursor}")),
        ("view + template, filtered", view("source=rss&q=acme")),
    ]
    timings = {label: timed(fn, args.repeat) for label, fn in cases}
    for label, seconds in timings.items():
        print(f"  {label:<38} {seconds * 1000:9.2f} ms")
    print()
    ratio(
        "deep keyset page / first keyset page",
        timings["keyset, deep page (cursor)"],
        timings["keyset, first page"],
    )
    ratio(
        "OFFSET deep page / keyset deep page",
        timings["OFFSET, deep page"],
        timings["keyset, deep page (cursor)"],
    )
    ratio(
        "OFFSET first page / keyset first page",
        timings["OFFSET, first page"],
        timings["keyset, first page"],
    )
    export_all(service, project, none)
    explain(db, project.id, cursor)


def seed(db, jobs: int, records: int) -> dict[str, int]:
    """Projects, jobs, runs and records through the DB-API, in large batches."""
    random.seed(7)
    connection = db.engine.raw_connection()
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    now = START.replace(tzinfo=None)
    cursor.executemany(
        "INSERT INTO projects (id, public_id, name, created_at) VALUES (?, ?, ?, ?)",
        [(1, "prj_bench1", "Default", now), (2, "prj_bench2", "Other", now)],
    )
    job_project = {job: 2 if job % OTHER_PROJECT_EVERY == 0 else 1 for job in range(1, jobs + 1)}
    cursor.executemany(
        'INSERT INTO jobs (id, public_id, project_id, name, prompt, sources, "limit", '
        "schedule_type, schedule_value, timezone, state, enabled, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'acme', '[{\"type\": \"rss\"}]', 100, 'interval', 'every_hour', "
        "'UTC', 'active', 1, ?, ?)",
        [(job, f"job_{job:026d}", job_project[job], f"Job {job}", now, now) for job in job_project],
    )
    per_run = max(1, records // (jobs * RUNS_PER_JOB))
    runs, run_id, record_id, project_records = [], 0, 0, 0
    batch: list[tuple] = []
    # Runs in time order, every job once per slot: record ids interleave jobs and projects.
    for slot in range(RUNS_PER_JOB):
        for job, project in job_project.items():
            if record_id >= records:
                break
            run_id += 1
            finished = now + timedelta(hours=slot, seconds=job)
            runs.append(
                (
                    run_id,
                    f"run_{run_id:026d}",
                    project,
                    job,
                    "schedule",
                    finished,
                    "completed",
                    finished,
                    finished,
                    finished,
                    per_run,
                    per_run,
                )
            )
            for position in range(min(per_run, records - record_id)):
                record_id += 1
                project_records += project == 1
                batch.append(record_row(record_id, run_id, job, project, position, finished))
                if len(batch) >= BATCH:
                    insert_batch(cursor, runs, batch)
    insert_batch(cursor, runs, batch)
    connection.commit()
    connection.close()
    return {"runs": run_id, "project_records": project_records}


def record_row(record_id, run_id, job, project, position, finished) -> tuple:
    words = random.choices(WORDS, k=6)
    # About one record in fifty mentions "acme", which the filtered page searches for.
    if random.random() < 0.02:
        words[random.randrange(6)] = "Acme"
    title = " ".join(words[:4]).capitalize()
    text = f"{title}. " + " ".join(random.choices(WORDS, k=14)) + " " + " ".join(words[4:])
    return (
        record_id,
        f"rec_{record_id:026d}",
        run_id,
        job,
        project,
        position,
        SOURCES[(record_id * 7) % len(SOURCES)],
        f"{record_id:064x}",
        f"https://news.example.com/{job}/{record_id}",
        "news.example.com",
        title,
        text,
        f"author{record_id % 5000}",
        finished - timedelta(minutes=position),
        '{"score": 1}',
        "{}",
        record_id % 3 != 0,
    )


def insert_batch(cursor, runs: list[tuple], records: list[tuple]) -> None:
    """Insert the pending runs, then their records (the foreign keys are checked)."""
    cursor.executemany(
        'INSERT INTO runs (id, public_id, project_id, job_id, "trigger", scheduled_for, '
        "status, created_at, started_at, finished_at, record_count, new_count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    cursor.executemany(
        "INSERT INTO records (id, public_id, run_id, job_id, project_id, position, source, "
        "fingerprint, url, domain, title, text, author, published_at, metrics, raw, is_new) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        records,
    )
    runs.clear()
    records.clear()


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: page cache and statement cache
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def ratio(label: str, numerator: float, denominator: float) -> None:
    print(f"  {label:<40} {numerator / denominator:9.1f}x")


def export_all(service, project, filters) -> None:
    """Stream the whole project as NDJSON; the process's peak memory must not grow with it."""
    import resource

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    size = rows = 0
    for chunk in service.stream_records(project, filters, "ndjson"):
        size += len(chunk)
        rows += chunk.count("\n")
    seconds = time.perf_counter() - started
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nexport NDJSON of {rows:,} records ({size / 2**20:,.0f} MiB of text) in {seconds:.1f} s;"
        f" peak RSS {peak_before:,.0f} MiB before, {peak_after:,.0f} MiB after"
    )


def explain(db, project_id: int, cursor: int) -> None:
    """The plans SQLite picks for the browser's page queries."""
    from sqlalchemy import text

    queries = {
        "first page": "project_id = :p",
        "deep page": "project_id = :p AND id < :c",
        "job": "project_id = :p AND job_id = 2",
        "job + source": "project_id = :p AND job_id = 2 AND source = 'rss'",
        "run": "project_id = :p AND run_id = 5",
        "new only": "project_id = :p AND is_new = 1",
    }
    print("\nquery plans (EXPLAIN QUERY PLAN):")
    for label, where in queries.items():
        rows = db.session.execute(
            text(
                f"EXPLAIN QUERY PLAN SELECT * FROM records WHERE {where} ORDER BY id DESC LIMIT 51"
            ),
            {"p": project_id, "c": cursor},
        ).all()
        print(f"  {label:<14} " + " | ".join(row[-1] for row in rows))


if __name__ == "__main__":
    main()
