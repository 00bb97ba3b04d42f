"""Benchmark: storing a 10,000-record run through complete_run, against a raw executemany.

The baseline is what the issue measured against: the same rows written by one SQLAlchemy
Core `executemany` INSERT into the same table, in the same run, with nothing else. The
measured path is the real completion transaction: the "seen before" lookup (batched) over
the job's earlier records, the CAS on the run, the bulk INSERT, the Analytics rollups and
the job's resting state, then the commit. Both are timed on a database that already holds
earlier runs of the job, alternately, and the medians compared.

    .venv/bin/python bench/ingest.py [--records N] [--repeat N]
    .venv/bin/python bench/ingest.py --database-url postgresql://…/bench   (emptied)

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

from sqlalchemy import delete, insert, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rows_for(n: int, serial: int) -> list[dict]:
    """Records as the executor hands them to complete_run (half of them seen before)."""
    now = datetime.now(UTC)
    return [
        {
            "source": ("rss", "hackernews", "reddit")[i % 3],
            # Every other fingerprint repeats an earlier run's, so the lookup finds some.
            "fingerprint": f"{(i if i % 2 else serial * n + i):064x}",
            "url": f"https://site{i % 200}.example/p/{serial}/{i}",
            "domain": f"site{i % 200}.example",
            "title": f"Acme story {serial}-{i}",
            "text": "Acme corp shipped something people talk about. " * 4,
            "author": f"author{i % 3000}",
            "published_at": now,
            "metrics": {"score": i},
            "raw": {"id": i},
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database-url", help="a PostgreSQL database to use (emptied)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="bytestack-ingest-")
    os.environ.update(
        DATABASE_URL=args.database_url or f"sqlite:///{workdir}/bench.sqlite3",
        SECRET_KEY="bench",
        BYTESTACK_INSTANCE_PATH=f"{workdir}/instance",
        REDIS_URL="redis://127.0.0.1:1/0",  # announce() is best effort: no Redis here
    )
    from webapp import create_app
    from webapp.extensions import db
    from webapp.ids import new_public_id
    from webapp.models import Job, Project, Record, Run
    from webapp.runs.lifecycle import complete_run

    app = create_app({"TESTING": True})
    logging.disable(logging.WARNING)
    with app.app_context():
        db.drop_all()
        db.create_all()
        project = Project(name="Bench")
        db.session.add(project)
        db.session.commit()
        job = Job(project_id=project.id, name="Bench", prompt="acme", sources=[{"type": "rss"}],
                  limit=100, schedule_type="interval", schedule_value="every_6_hours", timezone="UTC",
                  state="running", enabled=True)
        db.session.add(job)
        db.session.commit()

        def new_run(status: str) -> Run:
            moment = datetime.now(UTC) - timedelta(seconds=1)
            run = Run(project_id=project.id, job_id=job.id, trigger="schedule",
                      scheduled_for=moment, status=status, started_at=moment)
            db.session.add(run)
            db.session.commit()
            return run

        # Earlier runs of the job, so the "seen before" lookup has an index to search.
        for serial in range(3):
            assert complete_run(new_run("running").id, rows_for(args.records, 1000 + serial), [])
            db.session.execute(text("UPDATE jobs SET state = 'running'"))
            db.session.commit()

        def raw_executemany(serial: int) -> float:
            run = new_run("completed")
            batch = [
                {**row, "public_id": new_public_id("rec"), "run_id": run.id, "job_id": job.id,
                 "project_id": project.id, "position": position, "is_new": True}
                for position, row in enumerate(rows_for(args.records, serial))
            ]
            started = time.perf_counter()
            db.session.execute(insert(Record), batch)
            db.session.commit()
            return time.perf_counter() - started

        def through_complete_run(serial: int) -> float:
            run = new_run("running")
            rows = rows_for(args.records, serial)
            started = time.perf_counter()
            assert complete_run(run.id, rows, [])
            elapsed = time.perf_counter() - started
            db.session.execute(text("UPDATE jobs SET state = 'running'"))
            db.session.commit()
            return elapsed

        raw_times, ours = [], []
        for serial in range(args.repeat):
            raw_times.append(raw_executemany(10 + 2 * serial))
            ours.append(through_complete_run(11 + 2 * serial))
        dialect = db.engine.dialect.name
        version = db.session.execute(
            text("SELECT version()" if dialect == "postgresql"
                 else "SELECT 'SQLite ' || sqlite_version()")
        ).scalar()
        print(f"{version.split(' on ')[0]}, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs; {args.records:,} records per run, {args.repeat} runs each")
        raw_median, our_median = statistics.median(raw_times), statistics.median(ours)
        print(f"baseline: Core executemany of the rows       {raw_median * 1000:8.0f} ms")
        print(f"complete_run (lookup, insert, rollups, job)  {our_median * 1000:8.0f} ms"
              f"   {our_median / raw_median:.2f}× the baseline (target ≤ 1.5×)")
        db.session.execute(delete(Record))
        db.session.commit()
        if args.database_url:
            db.drop_all()
        db.session.remove()
        db.engine.dispose()
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
