"""Analytics aggregates: every number is a GROUP BY in SQL, scoped to a project (and a job)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Date, and_, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from ..extensions import db
from ..models import Job, Record, Run
from ..runs.rollups import DayRollup, DomainRollup, SourceRollup
from ..timeutil import UTCDateTime, as_date

PRESETS = (7, 30, 90)
DEFAULT_PRESET = 30
MAX_DAYS = 366
# A per-run chart of thousands of bars says nothing; the latest runs of the range do.
RUN_CHART_LIMIT = 50
TOP_DOMAINS = 10


# --- date range -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """Whole UTC days, both ends included; `preset` is 7, 30 or 90, or None for custom dates."""

    start: date
    end: date
    preset: int | None = None

    @classmethod
    def last(cls, days: int, today: date) -> DateRange:
        return cls(today - timedelta(days=days - 1), today, days)

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, UTC)

    @property
    def end_at(self) -> datetime:
        """The first instant after the range (exclusive)."""
        return datetime.combine(self.end + timedelta(days=1), time.min, UTC)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def query_args(self) -> dict[str, str]:
        """The query-string form that reproduces this range (links, chart URLs)."""
        if self.preset is not None:
            return {"range": str(self.preset)}
        return {"range": "custom", "from": self.start.isoformat(), "to": self.end.isoformat()}

    def describe(self) -> str:
        if self.preset is not None:
            return f"last {self.preset} days"
        return f"{self.start:%d %b %Y} – {self.end:%d %b %Y}"


class RangeError(ValueError):
    """A date range from the query string that cannot be used; the message is for people."""


def parse_range(args: Mapping[str, str], today: date) -> DateRange:
    """`range=7|30|90`, or `range=custom&from=YYYY-MM-DD&to=YYYY-MM-DD` (UTC days)."""
    choice = (args.get("range") or "").strip()
    start_text = (args.get("from") or "").strip()
    end_text = (args.get("to") or "").strip()
    if not choice:
        # Hand-written URLs with only dates mean custom dates.
        choice = "custom" if start_text or end_text else str(DEFAULT_PRESET)
    if choice != "custom":
        if choice not in {str(days) for days in PRESETS}:
            raise RangeError("Choose a range of the last 7, 30 or 90 days, or custom dates.")
        return DateRange.last(int(choice), today)
    if not start_text or not end_text:
        raise RangeError("Custom dates need both a From and a To date.")
    try:
        start, end = date.fromisoformat(start_text), date.fromisoformat(end_text)
    except ValueError:
        raise RangeError("Dates must look like 2026-05-01.") from None
    if start > end:
        raise RangeError("The From date must not be after the To date.")
    if (end - start).days + 1 > MAX_DAYS:
        raise RangeError(f"A range can span at most {MAX_DAYS} days.")
    return DateRange(start, end)


# --- SQL helpers --------------------------------------------------------------------------------


class utc_day(FunctionElement):
    """The UTC calendar day of a stored (naive UTC) timestamp, on SQLite and PostgreSQL alike."""

    type = Date()
    inherit_cache = True


@compiles(utc_day)
def _utc_day_default(element, compiler, **kw) -> str:
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" text: date() keeps the day; MySQL has DATE() too.
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element, compiler, **kw) -> str:
    # Columns are `timestamp without time zone` holding UTC, so a plain cast needs no zone.
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


def run_time() -> ColumnElement:
    """When a run happened: its start, or its slot for runs that never started (skipped)."""
    return func.coalesce(Run.started_at, Run.scheduled_for, type_=UTCDateTime)


@dataclass(frozen=True)
class Scope:
    """What a page counts: one project's job runs, or one job's."""

    project_id: int
    job_id: int | None = None


def _run_filter(scope: Scope, rng: DateRange) -> ColumnElement:
    moment = run_time()
    # One-off queries (job_id NULL) are not part of any job's analytics.
    job = Run.job_id.is_not(None) if scope.job_id is None else Run.job_id == scope.job_id
    return and_(
        Run.project_id == scope.project_id, job, moment >= rng.start_at, moment < rng.end_at
    )


def _record_filter(scope: Scope, rng: DateRange) -> ColumnElement:
    # Records are reached only through the scope's runs (a record's project and job are its
    # run's, written in one transaction), so the database reads just the records of the runs
    # in range: a job's page reads that job's records, not the project's million. A second,
    # constant test on records.project_id would look harmless but lets SQLite's planner walk
    # every record of the project through its project indexes instead (see bench/).
    return _run_filter(scope, rng)


# --- aggregates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayTotals:
    day: date
    runs: int = 0
    completed: int = 0
    records: int = 0
    new: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class RunPoint:
    public_id: str
    job_name: str
    at: datetime
    status: str
    record_count: int
    new_count: int
    duration_ms: int | None


@dataclass(frozen=True)
class Summary:
    runs: int
    completed: int
    failed: int
    skipped: int
    records: int
    new: int


def daily_totals(scope: Scope, rng: DateRange) -> list[DayTotals]:
    """Runs, records, new records, failures and skips per UTC day, every day of the range."""
    day = utc_day(run_time())
    rows = db.session.execute(
        select(
            day,
            func.count(Run.id),
            func.sum(case((Run.status == "completed", 1), else_=0)),
            func.coalesce(func.sum(Run.record_count), 0),
            func.coalesce(func.sum(Run.new_count), 0),
            func.sum(case((Run.status == "failed", 1), else_=0)),
            func.sum(case((Run.status == "skipped", 1), else_=0)),
        )
        .where(_run_filter(scope, rng))
        .group_by(day)
    ).all()
    found = {
        as_date(d): DayTotals(as_date(d), int(n), int(c), int(r), int(w), int(f), int(s))
        for d, n, c, r, w, f, s in rows
    }
    return [found.get(d, DayTotals(d)) for d in rng.days()]


def recent_runs(
    scope: Scope, rng: DateRange, statuses: tuple[str, ...], limit: int = RUN_CHART_LIMIT
) -> list[RunPoint]:
    """The latest runs of the range with these statuses, oldest first (for per-run charts)."""
    moment = run_time().label("at")
    rows = db.session.execute(
        select(
            Run.public_id,
            Job.name,
            moment,
            Run.status,
            Run.record_count,
            Run.new_count,
            Run.started_at,
            Run.finished_at,
        )
        .join(Job, Job.id == Run.job_id)
        .where(_run_filter(scope, rng), Run.status.in_(statuses))
        .order_by(moment.desc(), Run.id.desc())
        .limit(limit)
    ).all()
    points = [
        RunPoint(
            public_id=public_id,
            job_name=job_name,
            at=at,
            status=status,
            record_count=record_count,
            new_count=new_count,
            duration_ms=_duration_ms(started, finished),
        )
        for public_id, job_name, at, status, record_count, new_count, started, finished in rows
    ]
    return points[::-1]


def _duration_ms(started: datetime | None, finished: datetime | None) -> int | None:
    # Subtracting timestamps in SQL differs per dialect; per-run rows are few, so Python does it.
    if started is None or finished is None:
        return None
    return int((finished - started).total_seconds() * 1000)


def run_count(scope: Scope, rng: DateRange, statuses: tuple[str, ...]) -> int:
    return db.session.scalar(
        select(func.count(Run.id)).where(_run_filter(scope, rng), Run.status.in_(statuses))
    )


def _in_rollups(model, scope: Scope, rng: DateRange) -> ColumnElement:
    return and_(model.project_id == scope.project_id, model.day >= rng.start,
                model.day <= rng.end)


def records_by_source(scope: Scope, rng: DateRange) -> list[tuple[str, int]]:
    """Stored records per source, most first."""
    if scope.job_id is None:
        # A project's page reads the per-day rollups: a job's reads its own records.
        total = func.sum(SourceRollup.records)
        rows = db.session.execute(
            select(SourceRollup.source, total)
            .where(_in_rollups(SourceRollup, scope, rng))
            .group_by(SourceRollup.source)
            .order_by(total.desc(), SourceRollup.source)
        ).all()
        return [(source, int(n)) for source, n in rows]
    count = func.count()
    rows = db.session.execute(
        select(Record.source, count)
        .join(Run, Run.id == Record.run_id)
        .where(_record_filter(scope, rng))
        .group_by(Record.source)
        .order_by(count.desc(), Record.source)
    ).all()
    return [(source, int(n)) for source, n in rows]


def top_domains(scope: Scope, rng: DateRange, limit: int = TOP_DOMAINS) -> list[tuple[str, int]]:
    """The domains with most stored records, most first (ties by name)."""
    if scope.job_id is None:
        total = func.sum(DomainRollup.records)
        rows = db.session.execute(
            select(DomainRollup.domain, total)
            .where(_in_rollups(DomainRollup, scope, rng))
            .group_by(DomainRollup.domain)
            .order_by(total.desc(), DomainRollup.domain)
            .limit(limit)
        ).all()
        return [(domain, int(n)) for domain, n in rows]
    count = func.count()
    rows = db.session.execute(
        select(Record.domain, count)
        .join(Run, Run.id == Record.run_id)
        .where(_record_filter(scope, rng), Record.domain.is_not(None), Record.domain != "")
        .group_by(Record.domain)
        .order_by(count.desc(), Record.domain)
        .limit(limit)
    ).all()
    return [(domain, int(n)) for domain, n in rows]


def unique_authors_per_day(scope: Scope, rng: DateRange) -> list[tuple[date, int]]:
    """Distinct authors among the records each UTC day's runs stored, every day of the range."""
    if scope.job_id is None:
        rows = db.session.execute(
            select(DayRollup.day, DayRollup.authors).where(_in_rollups(DayRollup, scope, rng))
        ).all()
        found = {as_date(d): int(n) for d, n in rows}
        return [(d, found.get(d, 0)) for d in rng.days()]
    day = utc_day(run_time())
    rows = db.session.execute(
        select(day, func.count(func.distinct(Record.author)))
        .join(Run, Run.id == Record.run_id)
        .where(_record_filter(scope, rng), Record.author.is_not(None), Record.author != "")
        .group_by(day)
    ).all()
    found = {as_date(d): int(n) for d, n in rows}
    return [(d, found.get(d, 0)) for d in rng.days()]


def summarize(days: list[DayTotals]) -> Summary:
    return Summary(
        runs=sum(d.runs for d in days),
        completed=sum(d.completed for d in days),
        failed=sum(d.failed for d in days),
        skipped=sum(d.skipped for d in days),
        records=sum(d.records for d in days),
        new=sum(d.new for d in days),
    )
