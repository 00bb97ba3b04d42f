"""The project's Analytics numbers come from per-day rollups kept in the completion and
deletion transactions; each must equal what the raw records say, after runs complete, after
a job is deleted, after runs are pruned, and when runs of the same day finish at once."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta

from conftest import make_job
from sqlalchemy import case, delete, func, select

from webapp.analytics import service as analytics
from webapp.extensions import db as _db
from webapp.jobs import service as jobs_service
from webapp.models import Record, Run
from webapp.runs import rollups
from webapp.runs.lifecycle import complete_run
from webapp.timeutil import as_date

DAY1 = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
RANGE = analytics.DateRange(date(2026, 4, 30), date(2026, 5, 6))
SOURCES = ("rss", "hackernews", "reddit")


def records(rnd: random.Random, count: int, authors: int = 12) -> list[dict]:
    out = []
    for _ in range(count):
        domain = rnd.choice(["a.example", "b.example", "c.example", None, ""])
        out.append(
            {
                "source": rnd.choice(SOURCES),
                # A small pool, so that the same record comes back and is not new.
                "fingerprint": f"fp-{rnd.randint(1, 60)}",
                "url": f"https://{domain}/x" if domain else None,
                "domain": domain,
                "title": "t",
                "author": rnd.choice([f"author{rnd.randint(1, authors)}", None, ""]),
            }
        )
    # A run stores each fingerprint once.
    return list({record["fingerprint"]: record for record in out}.values())


def running_run(db, job, at: datetime) -> Run:
    run = Run(project_id=job.project_id, job_id=job.id if job.id else None, trigger="schedule",
              scheduled_for=at, status="running", started_at=at)
    db.session.add(run)
    db.session.commit()
    return run


def complete(db, job, at: datetime, rows: list[dict]) -> Run:
    run = running_run(db, job, at)
    assert complete_run(run.id, rows, [])
    return run


def raw(db, project_id: int) -> dict:
    """The project page's numbers counted from the raw records of job runs."""
    moment = func.coalesce(Run.started_at, Run.scheduled_for, type_=analytics.UTCDateTime)
    day = analytics.utc_day(moment)
    base = (
        select()
        .select_from(Record)
        .join(Run, Run.id == Record.run_id)
        .where(Run.project_id == project_id, Run.job_id.is_not(None),
               moment >= RANGE.start_at, moment < RANGE.end_at)
    )
    sources = sorted(
        (source, n)
        for source, n in db.session.execute(
            base.add_columns(Record.source, func.count()).group_by(Record.source)
        )
    )
    domains = sorted(
        (domain, n)
        for domain, n in db.session.execute(
            base.add_columns(Record.domain, func.count())
            .where(Record.domain.is_not(None), Record.domain != "")
            .group_by(Record.domain)
        )
    )
    authors = {
        as_date(d): n
        for d, n in db.session.execute(
            base.add_columns(day, func.count(func.distinct(Record.author)))
            .where(Record.author.is_not(None), Record.author != "")
            .group_by(day)
        )
    }
    days = {
        as_date(d): (n, new)
        for d, n, new in db.session.execute(
            base.add_columns(day, func.count(), func.sum(case((Record.is_new, 1), else_=0)))
            .group_by(day)
        )
    }
    return {
        "sources": sources,
        "domains": domains,
        "authors": [(d, authors.get(d, 0)) for d in RANGE.days()],
        "days": days,
    }


def rolled(db, project_id: int) -> dict:
    scope = analytics.Scope(project_id)
    db.session.expire_all()
    return {
        "sources": sorted(analytics.records_by_source(scope, RANGE)),
        "domains": sorted(analytics.top_domains(scope, RANGE, limit=1000)),
        "authors": analytics.unique_authors_per_day(scope, RANGE),
        "days": {
            as_date(row.day): (row.records, row.new_records)
            for row in db.session.scalars(
                select(rollups.DayRollup).where(rollups.DayRollup.project_id == project_id)
            )
        },
    }


def test_rollups_equal_the_raw_records_through_completion_deletion_and_pruning(db, project):
    rnd = random.Random(7)
    first = make_job(project, name="First")
    second = make_job(project, name="Second")
    runs = []
    for n in range(12):
        job = first if n % 2 else second
        at = DAY1 + timedelta(days=n % 4, hours=n)
        runs.append(complete(db, job, at, records(rnd, rnd.randint(0, 30))))
    # A one-off query's records count in no job's analytics.
    query_run = Run(project_id=project.id, job_id=None, trigger="query", scheduled_for=DAY1,
                    status="running", started_at=DAY1)
    db.session.add(query_run)
    db.session.commit()
    assert complete_run(query_run.id, records(rnd, 20), [])

    counted = raw(db, project.id)
    assert sum(n for _, n in counted["sources"]) > 100  # the fixture has something to count
    assert any(new < n for n, new in counted["days"].values())  # and records seen before
    assert rolled(db, project.id) == counted

    # Pruning: take some runs out with their records, in one transaction.
    pruned = [run.id for run in runs[:5]]
    rollups.subtract_runs(pruned)
    db.session.execute(delete(Record).where(Record.run_id.in_(pruned)))
    db.session.execute(delete(Run).where(Run.id.in_(pruned)))
    db.session.commit()
    assert rolled(db, project.id) == raw(db, project.id)

    jobs_service.delete_job(second)
    after = raw(db, project.id)
    assert rolled(db, project.id) == after

    rollups.rebuild(project.id)
    db.session.commit()
    assert rolled(db, project.id) == after

    jobs_service.delete_job(first)
    assert rolled(db, project.id)["sources"] == []
    assert db.session.scalar(select(func.count()).select_from(rollups.AuthorRollup)) == 0
    assert db.session.scalar(select(func.count()).select_from(rollups.DayRollup)) == 0


def test_an_authors_last_record_leaving_a_day_takes_it_out_of_the_days_count(db, project):
    job = make_job(project)
    shared = {"source": "rss", "domain": None, "author": "ann"}
    keep = complete(db, job, DAY1, [{**shared, "fingerprint": "1"},
                                    {**shared, "author": "bob", "fingerprint": "2"}])
    gone = complete(db, job, DAY1 + timedelta(hours=2), [{**shared, "fingerprint": "3"}])
    authors = dict(analytics.unique_authors_per_day(analytics.Scope(project.id), RANGE))
    assert authors[DAY1.date()] == 2
    rollups.subtract_runs([keep.id])
    db.session.execute(delete(Record).where(Record.run_id == keep.id))
    db.session.commit()
    authors = dict(analytics.unique_authors_per_day(analytics.Scope(project.id), RANGE))
    assert authors[DAY1.date()] == 1  # ann still has a record that day; bob has none
    rollups.subtract_runs([gone.id])
    db.session.execute(delete(Record).where(Record.run_id == gone.id))
    db.session.commit()
    authors = dict(analytics.unique_authors_per_day(analytics.Scope(project.id), RANGE))
    assert authors[DAY1.date()] == 0


def test_runs_of_one_day_completing_at_once_count_each_author_once(app, db, project):
    """Two workers finish runs of the same day with the same new authors at the same moment:
    the day's distinct authors are still counted once each."""
    jobs = [make_job(project, name=f"Job {n}") for n in range(4)]
    pending = [running_run(db, job, DAY1 + timedelta(minutes=n)) for n, job in enumerate(jobs)]
    rows = [
        [{"source": "rss", "fingerprint": f"{n}-{a}", "domain": "a.example",
          "author": f"author{a}"} for a in range(40)]
        for n in range(len(jobs))
    ]
    start = threading.Barrier(len(jobs))
    results: list = []

    def finish(run_id: int, mine: list[dict]) -> None:
        with app.app_context():
            start.wait()
            try:
                results.append(complete_run(run_id, mine, []))
            except Exception as exc:  # shown by the assertion below
                results.append(exc)
            finally:
                _db.session.remove()

    threads = [threading.Thread(target=finish, args=(run.id, mine))
               for run, mine in zip(pending, rows, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [True] * len(jobs)
    authors = dict(analytics.unique_authors_per_day(analytics.Scope(project.id), RANGE))
    assert authors[DAY1.date()] == 40
    assert rolled(db, project.id) == raw(db, project.id)
    assert Counter(n for _, n in rolled(db, project.id)["sources"]) == Counter([160])
