"""Per-day rollups of the records that job runs stored, for the project's Analytics page.

A project's page over 90 days of a million records cannot group the records themselves in
time, so the numbers it shows are kept per UTC day (the run's day, as Analytics counts):
records and new records per source, records per domain, records per author, and each day's
count of distinct authors. `add_run` is called in the completion transaction and
`subtract_runs` in the transaction that deletes runs (pruning, deleting a job), so the
rollups always say what the remaining raw records say. One-off queries are not part of any
job's analytics and are not counted.

Distinct authors cannot be summed across runs, so an author's row per day counts its
records, and the day's row counts the authors whose row is above zero: an author's first
record of the day adds one, its last removed record takes one away. The day's row is written
first in every transaction and so is locked first: two runs finishing on the same day take
turns, and the second sees the authors the first added (READ COMMITTED reads what committed
before each statement).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime

from sqlalchemy import (
    Date,
    ForeignKey,
    Integer,
    String,
    case,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db, upsert_insert
from ..models import Record, Run
from ..timeutil import UTCDateTime, as_date

# Keys per IN (...) list: within SQLite's and PostgreSQL's bound-parameter limits.
CHUNK = 500


class _ProjectDay:
    """The key every rollup starts with; rows are clustered by their key on SQLite, so a
    range of days is read in place."""

    __table_args__ = {"sqlite_with_rowid": False}

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)


class DayRollup(_ProjectDay, db.Model):
    """A project's day: its job runs' records, new records and distinct authors."""

    __tablename__ = "rollup_days"
    records: Mapped[int] = mapped_column(Integer, default=0)
    new_records: Mapped[int] = mapped_column(Integer, default=0)
    authors: Mapped[int] = mapped_column(Integer, default=0)


class SourceRollup(_ProjectDay, db.Model):
    __tablename__ = "rollup_sources"
    source: Mapped[str] = mapped_column(String(40), primary_key=True)
    records: Mapped[int] = mapped_column(Integer, default=0)
    new_records: Mapped[int] = mapped_column(Integer, default=0)


class DomainRollup(_ProjectDay, db.Model):
    __tablename__ = "rollup_domains"
    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    records: Mapped[int] = mapped_column(Integer, default=0)


class AuthorRollup(_ProjectDay, db.Model):
    __tablename__ = "rollup_authors"
    author: Mapped[str] = mapped_column(String(500), primary_key=True)
    records: Mapped[int] = mapped_column(Integer, default=0)


def _add(model, keys: tuple[str, ...], rows: list[dict]) -> None:
    """Add each row's counts to the row with its key, creating it; keys in sorted order so
    concurrent transactions lock rows in the same order."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: tuple(row[key] for key in keys))
    statement = upsert_insert(model)
    counts = [name for name in rows[0] if name not in keys]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={name: getattr(model, name) + statement.excluded[name] for name in counts},
    )
    db.session.execute(statement, rows)


def _day_of(moment: datetime) -> date:
    return moment.date()  # stored and read back as UTC


def add_run(project_id: int, moment: datetime, records: Iterable[dict], flags: list[bool]) -> None:
    """Count a job run's records (with their `is_new` flags) in the rollups of its day."""
    day = _day_of(moment)
    sources: Counter[str] = Counter()
    new_by_source: Counter[str] = Counter()
    domains: Counter[str] = Counter()
    authors: Counter[str] = Counter()
    for record, is_new in zip(records, flags, strict=True):
        sources[record["source"]] += 1
        new_by_source[record["source"]] += int(is_new)
        if record.get("domain"):
            domains[record["domain"]] += 1
        if record.get("author"):
            authors[record["author"]] += 1
    if not sources:
        return
    _apply(
        project_id,
        {day: (sum(sources.values()), sum(new_by_source.values()))},
        [(day, source, count, new_by_source[source]) for source, count in sources.items()],
        [(day, domain, count) for domain, count in domains.items()],
        [(day, author, count) for author, count in authors.items()],
    )


def subtract_runs(run_ids: list[int]) -> None:
    """Take these runs' records out of the rollups, in the transaction that deletes them.
    Call it before the records are deleted; runs of one-off queries are ignored."""
    for start in range(0, len(run_ids), CHUNK):
        _apply_counted(run_ids[start : start + CHUNK], sign=-1)


def rebuild(project_id: int) -> None:
    """Count a project's rollups again from its raw records (after a restore, or to check)."""
    for model in (DayRollup, SourceRollup, DomainRollup, AuthorRollup):
        db.session.execute(delete(model).where(model.project_id == project_id))
    run_ids = list(
        db.session.scalars(
            select(Run.id).where(Run.project_id == project_id, Run.job_id.is_not(None))
        )
    )
    for start in range(0, len(run_ids), CHUNK):
        _apply_counted(run_ids[start : start + CHUNK], sign=1)


def _apply_counted(run_ids: list[int], sign: int) -> None:
    """Count these runs' stored records in SQL and add them to the rollups times `sign`."""
    # The run's moment as Analytics counts it (analytics.service.run_time).
    moment = func.coalesce(Run.started_at, Run.scheduled_for, type_=UTCDateTime)
    counted = (
        select(Run.project_id, moment, Record.source, Record.domain, Record.author,
               func.count(), func.sum(case((Record.is_new, 1), else_=0)))
        .join(Record, Record.run_id == Run.id)
        .where(Run.id.in_(run_ids), Run.job_id.is_not(None))
        .group_by(Run.project_id, moment, Record.source, Record.domain, Record.author)
    )
    by_project: dict[int, dict[str, Counter]] = {}
    for project_id, at, source, domain, author, n, new in db.session.execute(counted):
        parts = by_project.setdefault(
            project_id, {name: Counter() for name in ("days", "new", "sources", "sources_new",
                                                       "domains", "authors")}
        )
        day, n, new = _day_of(at), sign * n, sign * (new or 0)
        parts["days"][day] += n
        parts["new"][day] += new
        parts["sources"][day, source] += n
        parts["sources_new"][day, source] += new
        if domain:
            parts["domains"][day, domain] += n
        if author:
            parts["authors"][day, author] += n
    for project_id in sorted(by_project):
        parts = by_project[project_id]
        _apply(
            project_id,
            {day: (n, parts["new"][day]) for day, n in parts["days"].items()},
            [(day, source, n, parts["sources_new"][day, source])
             for (day, source), n in parts["sources"].items()],
            [(day, domain, n) for (day, domain), n in parts["domains"].items()],
            [(day, author, n) for (day, author), n in parts["authors"].items()],
        )


def _apply(
    project_id: int,
    days: dict[date, tuple[int, int]],
    sources: list[tuple[date, str, int, int]],
    domains: list[tuple[date, str, int]],
    authors: list[tuple[date, str, int]],
) -> None:
    """Add signed counts to one project's rollups: the day rows first (the lock that orders
    concurrent writers), then the rest; rows that reach zero are deleted."""
    _add(
        DayRollup,
        ("project_id", "day"),
        [{"project_id": project_id, "day": day, "records": n, "new_records": new, "authors": 0}
         for day, (n, new) in days.items()],
    )
    _add(
        SourceRollup,
        ("project_id", "day", "source"),
        [{"project_id": project_id, "day": day, "source": source, "records": n,
          "new_records": new} for day, source, n, new in sources],
    )
    _add(
        DomainRollup,
        ("project_id", "day", "domain"),
        [{"project_id": project_id, "day": day, "domain": domain, "records": n}
         for day, domain, n in domains],
    )
    _count_authors(project_id, authors)
    if any(n < 0 for n, _ in days.values()):  # only a subtraction empties a row
        for model in (SourceRollup, DomainRollup, DayRollup):
            db.session.execute(
                delete(model).where(model.project_id == project_id,
                                    model.day.in_(list(days)), model.records <= 0)
            )


def _count_authors(project_id: int, authors: list[tuple[date, str, int]]) -> None:
    """Move each author's count of the day, and the day's distinct authors by the number of
    authors whose count leaves or reaches zero (read from the count each upsert returns)."""
    if not authors:
        return
    deltas = {(day, author): n for day, author, n in authors}
    moved: Counter[date] = Counter()
    for day, author, after in _upsert_authors(project_id, sorted(deltas.items())):
        day = as_date(day)
        had, has = after - deltas[day, author] > 0, after > 0
        moved[day] += int(has) - int(had)
    for day in sorted(moved):
        if moved[day]:
            db.session.execute(
                update(DayRollup)
                .where(DayRollup.project_id == project_id, DayRollup.day == day)
                .values(authors=DayRollup.authors + moved[day])
            )
    if any(n < 0 for n in deltas.values()):
        db.session.execute(
            delete(AuthorRollup).where(
                AuthorRollup.project_id == project_id,
                AuthorRollup.day.in_(sorted(moved)),
                AuthorRollup.records <= 0,
            )
        )


def _upsert_authors(project_id: int, deltas: list[tuple[tuple[date, str], int]]):
    """Add each (day, author)'s delta to its row, creating it; the rows' new counts."""
    if db.session.get_bind().dialect.name == "postgresql":
        # Three array parameters and one statement: a run's thousands of authors otherwise
        # cost a bound parameter each, the slowest part of storing a large run.
        return db.session.execute(
            text(
                "INSERT INTO rollup_authors (project_id, day, author, records) "
                "SELECT :project_id, day, author, records FROM unnest("
                "CAST(:days AS date[]), CAST(:authors AS varchar[]), CAST(:counts AS integer[])"
                ") AS delta (day, author, records) "
                "ON CONFLICT (project_id, day, author) "
                "DO UPDATE SET records = rollup_authors.records + excluded.records "
                "RETURNING day, author, records"
            ),
            {
                "project_id": project_id,
                "days": [day for (day, _), _ in deltas],
                "authors": [author for (_, author), _ in deltas],
                "counts": [n for _, n in deltas],
            },
        )
    statement = upsert_insert(AuthorRollup)
    statement = statement.on_conflict_do_update(
        index_elements=["project_id", "day", "author"],
        set_={"records": AuthorRollup.records + statement.excluded.records},
    ).returning(AuthorRollup.day, AuthorRollup.author, AuthorRollup.records)
    rows = [
        {"project_id": project_id, "day": day, "author": author, "records": n}
        for (day, author), n in deltas
    ]
    return db.session.execute(statement, rows)
