"""Benchmark: full-text search over 1,000,000 records, SQLite FTS5 or PostgreSQL tsvector.

Seeds a fresh database built by the migrations (SQLite: a file in a temporary folder;
PostgreSQL: a schema of its own inside --database-url, dropped at the end) with Core bulk
inserts in batches, through the same triggers or generated column as production. Titles
and texts draw their words from a 20,000-word vocabulary with Zipf frequencies, so the words
timed range from one in almost every record to one in a few hundred; one record in ten
belongs to a second project, so every search is scoped as in production.

It then times a one-word search, newest 100 first, through the service function
GET /v1/records uses (storage.service.list_records), over many words of every frequency,
and reports p50 and p95 next to baselines measured in the same run: the newest 100 records
without a search, and the LIKE '%word%' scan that "contains" filters do. Also: the Storage
page's search (with highlights), searches combined with a filter, and longer queries.

    .venv/bin/python bench/search.py [--records N] [--repeat N] [--keep]
    .venv/bin/python bench/search.py --database-url postgresql://postgres@127.0.0.1:55432/db

Not a test: it prints figures. Seeding 1,000,000 records takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VOCABULARY = 20_000
ZIPF_S = 1.0
BATCH = 10_000
RECORDS_PER_RUN = 100
OTHER_PROJECT_EVERY = 10
PAGE = 100
START = datetime(2026, 1, 1, tzinfo=UTC)
SOURCES = ("rss", "hackernews", "reddit", "mastodon", "bluesky", "news", "github", "youtube")
TARGET_MS = 100
# A word in every record of the other project and in none of the searched one: the search
# index finds 100,000 matches, and each is turned away by the project filter.
ELSEWHERE = "elsewhere"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="timings per word")
    parser.add_argument("--database-url", help="PostgreSQL: a database to make a schema in")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bytestack-search-bench-")
    schema = None
    if args.database_url:
        schema = f"bench_search_{os.getpid()}"
        url = args.database_url
    else:
        url = f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.update(
        DATABASE_URL=url, SECRET_KEY="bench", BYTESTACK_INSTANCE_PATH=f"{workdir}/instance"
    )
    from webapp import create_app
    from webapp.extensions import db

    app = create_app({"TESTING": True, "SERVER_NAME": "localhost"})
    logging.getLogger().setLevel(logging.WARNING)
    try:
        with app.app_context():
            if schema:
                use_schema(db, schema)
            run(app, db, args, workdir)
            db.session.remove()
            if schema and not args.keep:
                with db.engine.begin() as connection:
                    connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            db.engine.dispose()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {schema or workdir}")


def use_schema(db, schema: str) -> None:
    """Every connection of the bench works in its own schema (public stays on the path for
    the unaccent extension)."""
    with db.engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")

    @event.listens_for(db.engine, "connect")
    def _search_path(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET search_path TO {schema}, public")
        cursor.close()
        dbapi_connection.commit()

    db.engine.dispose()


def machine(db) -> str:
    engine = db.engine.dialect.name
    if engine == "sqlite":
        version = f"SQLite {sqlite3.sqlite_version}"
    else:
        version = db.session.scalar(text("SHOW server_version"))
        version = f"PostgreSQL {version}"
        db.session.rollback()
    with open("/proc/meminfo") as meminfo:
        memory = int(meminfo.readline().split()[1]) / 2**20
    return (
        f"{platform.platform()}; {os.cpu_count()} CPUs, {memory:.0f} GiB; "
        f"Python {platform.python_version()}; {version}; load average {os.getloadavg()}"
    )


def run(app, db, args: argparse.Namespace, workdir: str) -> None:
    from flask_migrate import upgrade

    upgrade()  # the schema the migrations build: FTS5 and its triggers, or the tsvector column
    print(f"date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine(db)}")
    started = time.perf_counter()
    words = vocabulary()
    counts = seed(db, words, args.records)
    seconds = time.perf_counter() - started
    prepare(db)
    print(
        f"seeded {args.records:,} records ({counts['project']:,} in the searched project, "
        f"{counts['runs']:,} runs, {counts['jobs']} jobs) in {seconds:.0f} s; {size(db, workdir)}"
    )
    measure(app, db, words, args.repeat)


# --- seeding ---------------------------------------------------------------------------------


def vocabulary() -> list[str]:
    """VOCABULARY distinct pronounceable words, in a fixed order (rank 1 first)."""
    rnd = random.Random(20261201)
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    seen: dict[str, None] = {}
    while len(seen) < VOCABULARY:
        syllables = rnd.choice((2, 2, 3, 3, 4))
        seen["".join(rnd.choice(consonants) + rnd.choice(vowels) for _ in range(syllables))] = None
    return list(seen)


def seed(db, words: list[str], total: int) -> dict[str, int]:
    """Two projects, 200 jobs, runs of RECORDS_PER_RUN records, inserted in Core batches."""
    from sqlalchemy import insert

    from webapp.models import Job, Project

    rnd = random.Random(7)
    weights = [1 / rank**ZIPF_S for rank in range(1, len(words) + 1)]
    cumulative = list(_accumulate(weights))
    connection = db.session.connection()
    if db.engine.dialect.name == "sqlite":
        connection.exec_driver_sql("PRAGMA synchronous=OFF")
    now = START
    connection.execute(
        insert(Project),
        [{"id": 1, "public_id": "prj_bench1", "name": "Searched", "created_at": now},
         {"id": 2, "public_id": "prj_bench2", "name": "Other", "created_at": now}],
    )
    jobs = 200
    connection.execute(
        insert(Job),
        [
            {"id": job, "public_id": f"job_{job:026d}", "name": f"Job {job}",
             "project_id": 2 if job % OTHER_PROJECT_EVERY == 0 else 1, "prompt": "acme",
             "sources": [{"type": "rss"}], "limit": 100, "schedule_type": "interval",
             "schedule_value": "every_hour", "timezone": "UTC", "state": "active",
             "enabled": True, "created_at": now, "updated_at": now}
            for job in range(1, jobs + 1)
        ],
    )
    record_id = run_id = in_project = 0
    runs, records = [], []
    while record_id < total:
        run_id += 1
        job = (run_id - 1) % jobs + 1
        project = 2 if job % OTHER_PROJECT_EVERY == 0 else 1
        finished = now + timedelta(minutes=run_id)
        runs.append({"id": run_id, "public_id": f"run_{run_id:026d}", "project_id": project,
                     "job_id": job, "trigger": "schedule", "scheduled_for": finished,
                     "status": "completed", "created_at": finished, "started_at": finished,
                     "finished_at": finished, "record_count": RECORDS_PER_RUN,
                     "new_count": RECORDS_PER_RUN})
        for position in range(min(RECORDS_PER_RUN, total - record_id)):
            record_id += 1
            in_project += project == 1
            drawn = rnd.choices(words, cum_weights=cumulative, k=rnd.randint(36, 64))
            records.append({
                "id": record_id, "public_id": f"rec_{record_id:026d}", "run_id": run_id,
                "job_id": job, "project_id": project, "position": position,
                "source": SOURCES[record_id % len(SOURCES)],
                "fingerprint": f"{record_id:064x}", "url": f"https://e.example/{record_id}",
                "domain": "e.example", "title": " ".join(drawn[:8]).capitalize(),
                "text": " ".join(drawn[8:]) + (f" {ELSEWHERE}." if project == 2 else "."),
                "author": f"Author {record_id % 5000}",
                "published_at": finished - timedelta(minutes=position), "metrics": {},
                "raw": {}, "is_new": record_id % 3 != 0,
            })
        if len(records) >= BATCH:
            _insert(connection, runs, records)
    _insert(connection, runs, records)
    db.session.commit()
    return {"project": in_project, "runs": run_id, "jobs": jobs}


def _accumulate(weights: list[float]):
    total = 0.0
    for weight in weights:
        total += weight
        yield total


def _insert(connection, runs: list[dict], records: list[dict]) -> None:
    from sqlalchemy import insert

    from webapp.models import Record, Run

    if runs:
        connection.execute(insert(Run), runs)
    if records:
        connection.execute(insert(Record), records)
    runs.clear()
    records.clear()


def prepare(db) -> None:
    """PostgreSQL: what autovacuum does after a bulk load (statistics, and the GIN index's
    pending list merged); SQLite: nothing (a fresh deployment runs no ANALYZE)."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE records")


def size(db, workdir: str) -> str:
    if db.engine.dialect.name == "sqlite":
        db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        total = Path(workdir, "bench.sqlite3").stat().st_size / 2**20
        index = db.session.scalar(
            text("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE 'records_fts%'")
        ) / 2**20
        return f"file {total:,.0f} MiB, of which the FTS5 index {index:,.0f} MiB"
    table, index = db.session.execute(text(
        "SELECT pg_total_relation_size('records'), pg_relation_size('ix_records_search_vector')"
    )).one()
    return (f"records with indexes {table / 2**20:,.0f} MiB, of which the GIN index "
            f"{index / 2**20:,.0f} MiB")


# --- timing ----------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    fn()  # warm-up: page cache and statement cache
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def line(label: str, samples: list[float], note: str = "") -> None:
    print(f"  {label:<46} p50 {p(samples, .5):8.1f} ms   p95 {p(samples, .95):8.1f} ms"
          f"   n={len(samples):<4} {note}")


def timed_words() -> list[int]:
    """Ranks of the words timed: every frequency, from the commonest down (log spacing)."""
    ranks = sorted({max(1, round(1.25**i)) for i in range(0, 45)} | {VOCABULARY})
    return [r for r in ranks if r <= VOCABULARY]


def measure(app, db, words: list[str], repeat: int) -> None:
    from flask import g

    from webapp.models import Project, Record
    from webapp.schemas import SEARCH_WORDS_MAX
    from webapp.storage import service, views
    from webapp.storage.search_syntax import parse_search

    project = db.session.get(Project, 1)
    db.session.expunge(project)  # kept across the session resets below

    def api_page(q: str | None, **filters) -> Callable[[], list]:
        def call():
            search = parse_search(q, SEARCH_WORDS_MAX) if q else None
            chosen = service.record_filters(project, query=search, **filters)
            items, _ = service.list_records(project, chosen, None, PAGE)
            db.session.rollback()
            return items

        return call

    def count_all() -> int:
        total = db.session.scalar(select(func.count()).select_from(Record))
        db.session.rollback()
        return total

    def count(q: str) -> int:
        """Records of both projects with the word, read from the index alone."""
        query = parse_search(q, SEARCH_WORDS_MAX)
        if db.engine.dialect.name == "sqlite":
            statement = text("SELECT count(*) FROM records_fts WHERE records_fts MATCH :q")
            total = db.session.scalar(statement, {"q": query.fts5()})
        else:
            statement = text("SELECT count(*) FROM records "
                             "WHERE search_vector @@ to_tsquery('bytestack_search', :q)")
            total = db.session.scalar(statement, {"q": query.tsquery()})
        db.session.rollback()
        return total

    total = count_all()
    ranks = timed_words()
    print(f"\none-word searches, newest {PAGE} first ({len(ranks)} words x {repeat} timings):")
    print(f"  {'rank':>6} {'word':<12} {'matches':>9}  {'p50 ms':>8} {'max ms':>8}")
    all_samples, by_band = [], {}
    for rank in ranks:
        word = words[rank - 1]
        matches = count(word)
        samples = timed(api_page(word), repeat)
        all_samples += samples
        share = matches / total
        band = ("> 10%" if share > .1 else "1-10%" if share > .01
                else "0.1-1%" if share > .001 else "< 0.1%")
        by_band.setdefault(band, []).extend(samples)
        print(f"  {rank:>6} {word:<12} {matches:>9,}  {p(samples, .5):8.1f} {max(samples):8.1f}")
    absent = timed(api_page("zzzzqqq"), repeat)

    print("\nsummary (each line's samples: its words x timings):")
    newest = timed(api_page(None), repeat * 20)
    line("baseline: newest 100, no search", newest)
    line("one-word search, every word", all_samples, f"target p95 <= {TARGET_MS} ms")
    for band in ("> 10%", "1-10%", "0.1-1%", "< 0.1%"):
        if band in by_band:
            line(f"  words in {band} of the records", by_band[band])
    line("  a word no record has", absent)
    line("  a word only the other project has", timed(api_page(ELSEWHERE), repeat),
         f"{count(ELSEWHERE):,} matches there, none here")
    like_ranks = ranks[:: max(1, len(ranks) // 8)]
    like = [s for rank in like_ranks for s in timed(like_scan(db, project.id, words[rank - 1]), 1)]
    line("baseline: LIKE '%word%' on title or text", like, f"{len(like_ranks)} words x 1")

    sample_words = [words[r - 1] for r in (3, 40, 400, 4000)]
    cases = {
        "two words (AND)": [f"{a} {b}" for a, b in zip(sample_words, sample_words[1:])],
        "a phrase of two words": [f'"{words[0]} {w}"' for w in sample_words],
        "a OR b": [f"{a} OR {b}" for a, b in zip(sample_words, sample_words[1:])],
        "word -exclusion": [f"{w} -{words[1]}" for w in sample_words],
    }
    for label, queries in cases.items():
        line(label, [s for q in queries for s in timed(api_page(q), repeat)])
    job = db.session.scalar(text("SELECT public_id FROM jobs WHERE project_id = 1 LIMIT 1"))
    run = db.session.scalar(text(
        "SELECT public_id FROM runs WHERE project_id = 1 ORDER BY id DESC LIMIT 1"))
    db.session.rollback()
    filtered = {"+ source": {"source": "rss"}, "+ job (1 of 180)": {"job_id": job},
                "+ run (100 records)": {"run_id": run}}
    for label, extra in filtered.items():
        line(f"one word {label}",
             [s for w in sample_words for s in timed(api_page(w, **extra), repeat)])

    def page_view(q: str) -> Callable[[], None]:
        def render():
            with app.test_request_context(f"/storage/records?q={q}"):
                g.project = project  # what the access check sets for a signed-in member
                body, status = views.records()
                assert status == 200
            db.session.rollback()

        return render

    line("Storage page: search + highlights + template",
         [s for w in sample_words for s in timed(page_view(w), repeat)])
    ratio = p(all_samples, .95) / p(newest, .95)
    print(f"\n  one-word search p95 / newest-100 p95: {ratio:.1f}x;"
          f" LIKE p95 / one-word search p95: {p(like, .95) / p(all_samples, .95):.0f}x")
    explain(db, project.id, words)


def like_scan(db, project_id: int, word: str) -> Callable[[], list]:
    """What a "contains" filter did: lower() LIKE on title and text, newest 100."""
    statement = text(
        "SELECT id FROM records WHERE project_id = :p AND (lower(title) LIKE :w OR "
        "lower(text) LIKE :w) ORDER BY id DESC LIMIT :n"
    )

    def call():
        rows = db.session.execute(statement, {"p": project_id, "w": f"%{word}%", "n": PAGE}).all()
        db.session.rollback()
        return rows

    return call


def explain(db, project_id: int, words: list[str]) -> None:
    """The plan each engine picks for the page's query, for a common and a rare word."""
    from sqlalchemy.dialects import postgresql, sqlite

    from webapp.models import Project
    from webapp.schemas import SEARCH_WORDS_MAX
    from webapp.storage import service
    from webapp.storage.search_syntax import parse_search

    project = db.session.get(Project, project_id)
    dialect = sqlite.dialect() if db.engine.dialect.name == "sqlite" else postgresql.dialect()
    prefix = "EXPLAIN QUERY PLAN " if db.engine.dialect.name == "sqlite" else "EXPLAIN "
    print("\nquery plans:")
    for rank in (1, 100, 10_000):
        query = parse_search(words[rank - 1], SEARCH_WORDS_MAX)
        filters = service.record_filters(project, query=query)
        stmt, column = service.records_query(project, filters)
        compiled = stmt.order_by(column.desc()).limit(PAGE + 1).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True})
        rows = db.session.execute(text(prefix + str(compiled))).all()
        print(f"  rank {rank}: " + " | ".join(str(row[-1]).strip() for row in rows))
    db.session.rollback()


if __name__ == "__main__":
    main()
