"""Storage: result files (one per completed run or query) and the records browser's queries.

Everything pages by keyset on integer ids, newest first, and never counts a whole table:
one more row than the page holds says whether an older page exists. Exports stream rows in
partitions, so a million records cost one partition of memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, false, func, select
from sqlalchemy.orm import defer

from .. import schemas
from ..errors import NotFoundError, ValidationError
from ..extensions import db
from ..models import Job, Project, Record, Run, get_in_project
from ..paging import keyset
from ..timeutil import isoformat, parse_timestamp
from . import search
from .search_syntax import SearchQuery

FILES_PER_PAGE = 25
RECORDS_PER_PAGE = 50
PREVIEW_RECORDS = 20
# Rows fetched per round trip while streaming: big enough to be fast, small enough to stay flat.
STREAM_BATCH = 1000
MAX_ID = 2**63 - 1
EXPORT_COLUMNS = (
    "id",
    "run_id",
    "query_id",
    "job_id",
    "source",
    "url",
    "title",
    "text",
    "author",
    "published_at",
    "metrics",
    "is_new",
)
_KEY = re.compile(r"^((?:run|qry)_[0-9A-HJKMNP-TV-Z]{26})_(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)\.json$")
_KEY_TIME = "%Y-%m-%dT%H-%M-%SZ"
_PUBLIC_ID = re.compile(r"^[a-z]{3}_[0-9A-HJKMNP-TV-Z]{26}$")
# Spreadsheets run a cell that starts with one of these as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- result files ---------------------------------------------------------------------------


def result_key(run: Run) -> str:
    """The file name of a run's results: its public id and the instant it finished."""
    finished = run.finished_at or run.created_at
    return f"{run.public_id}_{finished.astimezone(UTC):{_KEY_TIME}}.json"


def find_result_file(project: Project, key: str) -> Run:
    """The completed run (or query) behind a key of this project; NotFoundError otherwise."""
    match = _KEY.match(key)
    run = None
    if match:
        run = db.session.scalar(
            select(Run).where(
                Run.public_id == match.group(1),
                Run.project_id == project.id,
                Run.status == "completed",
            )
        )
    # The whole key must match, time included: a key names one file, not "any file of a run".
    if run is None or result_key(run) != key:
        raise NotFoundError("No result file with this key in this project.")
    return run


@dataclass
class ResultFile:
    run: Run
    job: Job | None

    @property
    def key(self) -> str:
        return result_key(self.run)

    @property
    def is_query(self) -> bool:
        return self.run.job_id is None

    @property
    def created_at(self) -> datetime:
        return self.run.finished_at or self.run.created_at

    def to_api(self) -> dict:
        body: dict[str, Any] = {
            "key": self.key,
            "job_id": self.job.public_id if self.job else None,
        }
        body["query_id" if self.is_query else "run_id"] = self.run.public_id
        body["created_at"] = isoformat(self.created_at)
        body["record_count"] = self.run.record_count
        return body


@dataclass
class KeysetPage:
    """One page, newest first, with the ids that continue it in either direction."""

    items: list
    has_older: bool
    has_newer: bool
    older_cursor: int | None = None
    newer_cursor: int | None = None


def _keyset_page(
    stmt: Select, column, before: int | None, after: int | None, limit: int
) -> KeysetPage:
    """Run `stmt` (whose first entity has `column` as id) for one page: ids below `before`,
    or above `after` (read upwards, then turned around)."""
    if after is not None:
        rows, has_newer = keyset(stmt, column, after, limit, descending=False, scalars=False)
        rows = rows[::-1]
        # "Newer" is followed from an older page, so that page is still there.
        has_older = bool(rows)
    else:
        rows, has_older = keyset(stmt, column, before, limit, scalars=False)
        has_newer = before is not None and bool(rows)
    return KeysetPage(
        items=rows,
        has_older=has_older,
        has_newer=has_newer,
        older_cursor=rows[-1][0].id if rows else None,
        newer_cursor=rows[0][0].id if rows else None,
    )


def list_result_files(
    project: Project,
    job: Job | None = None,
    before: int | None = None,
    after: int | None = None,
    limit: int = FILES_PER_PAGE,
) -> KeysetPage:
    """Completed runs and queries of the project, newest first; items are ResultFile."""
    stmt = (
        select(Run, Job)
        .outerjoin(Job, Run.job_id == Job.id)
        .where(Run.project_id == project.id, Run.status == "completed")
    )
    if job is not None:
        stmt = stmt.where(Run.job_id == job.id)
    page = _keyset_page(stmt, Run.id, before, after, limit)
    page.items = [ResultFile(run, run_job) for run, run_job in page.items]
    return page


def preview_records(run: Run, limit: int = PREVIEW_RECORDS) -> list[Record]:
    """The first records of a result file, in result order."""
    return db.session.scalars(
        select(Record).where(Record.run_id == run.id).order_by(Record.position).limit(limit)
    ).all()


def result_metadata(run: Run) -> dict:
    """The head of a result file: what ran, when, and how much it found."""
    job = db.session.get(Job, run.job_id) if run.job_id is not None else None
    file = ResultFile(run, job)
    body = file.to_api()
    body.update(
        {
            "job_name": job.name if job else None,
            "prompt": job.prompt if job else (run.params or {}).get("prompt"),
            "trigger": run.trigger,
            "status": run.status,
            "scheduled_for": isoformat(run.scheduled_for),
            "started_at": isoformat(run.started_at),
            "finished_at": isoformat(run.finished_at),
            "new_count": run.new_count,
            "error": run.error,
        }
    )
    return body


def _run_records_rows(run: Run) -> Iterator[list]:
    stmt = _export_select().where(Record.run_id == run.id).order_by(Record.position)
    return _stream_rows(stmt)


def stream_result_file(run: Run, fmt: str = "json") -> Iterator[str]:
    """A result file as text chunks: JSON (metadata and "records"), CSV or NDJSON records."""
    if fmt == "csv":
        return csv_chunks(_run_records_rows(run))
    if fmt == "ndjson":
        return ndjson_chunks(_run_records_rows(run))
    return _result_json_chunks(result_metadata(run), _run_records_rows(run))


def _result_json_chunks(metadata: dict, partitions: Iterable[list]) -> Iterator[str]:
    head = json.dumps(metadata, ensure_ascii=False)
    # The metadata object is opened, not closed, so the records can follow it as they stream.
    yield head[:-1] + ', "records": ['
    first = True
    for rows in partitions:
        encoded = ", ".join(_dumps(export_record(row, with_run=False)) for row in rows)
        yield encoded if first else ", " + encoded
        first = False
    yield "]}\n"


def export_filename(stem: str, fmt: str, at: datetime) -> str:
    return f"{stem}_{at.astimezone(UTC):{_KEY_TIME}}.{fmt}"


# --- records browser ------------------------------------------------------------------------


@dataclass
class RecordFilters:
    """The browser's filters as parsed from a query string; `args` rebuilds that string."""

    job: Job | None = None
    run: Run | None = None
    source: str = ""
    is_new: bool | None = None
    search: SearchQuery | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None  # exclusive: the day after the chosen "to" day
    args: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.args)


def looks_like_public_id(value: str, prefix: str) -> bool:
    """A well-formed `<prefix>_<ULID>`: anything else cannot exist, so it never reaches SQL
    (PostgreSQL refuses text with NUL bytes with an error, not an empty result)."""
    return value.startswith(prefix + "_") and _PUBLIC_ID.match(value) is not None


def _parse_day(text: str, field_name: str, errors: dict[str, str], end: bool = False):
    """A date (a whole day; `end` gives the instant after it) or a full timestamp."""
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
            return day + timedelta(days=1) if end else day
        return parse_timestamp(text)
    except (ValueError, OverflowError):  # overflow: the day after 9999-12-31
        errors[field_name] = f"{text!r} is not a date; use one like 2026-04-30."
        return None


NO_JOB = "No job with this id in this project."
NO_RUN = "No run or query with this id in this project."


def _in_project(model, project: Project, public_id: str, missing: str, *prefixes: str):
    """models.get_in_project for an id that must first look like one of `prefixes`: an id of
    another shape never reaches SQL."""
    if not any(looks_like_public_id(public_id, prefix) for prefix in prefixes):
        raise NotFoundError(missing)
    return get_in_project(model, project.id, public_id, missing)


def _project_job(project: Project, public_id: str) -> Job:
    return _in_project(Job, project, public_id, NO_JOB, "job")


def _project_run(project: Project, public_id: str) -> Run:
    """A run or a one-off query of the project."""
    return _in_project(Run, project, public_id, NO_RUN, "run", "qry")


def parse_record_filters(project: Project, args: Mapping[str, str]) -> RecordFilters:
    """Read the browser's filters; unknown ids, bad dates and searches that cannot run become
    messages by their field, never a 500."""
    filters = RecordFilters()
    names = ("job", "run", "source", "q", "from", "to")
    # NUL never belongs in a filter, and PostgreSQL would refuse the whole query over it.
    values = {name: (args.get(name) or "").replace("\x00", "").strip() for name in names}
    if values["job"]:
        try:
            filters.job = _project_job(project, values["job"])
        except NotFoundError as exc:
            filters.errors["job"] = exc.message
    if values["run"]:
        try:
            filters.run = _project_run(project, values["run"])
        except NotFoundError as exc:
            filters.errors["run"] = exc.message
    filters.source = values["source"][:40]
    if values["q"]:
        # The API's rule for q, so the box and GET /v1/records accept the same searches.
        try:
            filters.search = schemas.validate(schemas.SearchParams, {"q": values["q"]}).q
        except ValidationError as exc:
            filters.errors["q"] = exc.errors["q"]
    filters.is_new = True if (args.get("new") or "") in ("1", "on", "true") else None
    if values["from"]:
        filters.date_from = _parse_day(values["from"], "from", filters.errors)
    if values["to"]:
        # A day chosen as "to" is included whole; a full timestamp is taken as it is.
        filters.date_to = _parse_day(values["to"], "to", filters.errors, end=True)
    if filters.date_from and filters.date_to and filters.date_from >= filters.date_to:
        filters.errors["to"] = "The “to” date must not be before the “from” date."
    filters.args = {
        name: value
        for name, value in (
            ("job", values["job"]),
            ("run", values["run"]),
            ("source", filters.source),
            ("new", "1" if filters.is_new else ""),
            ("q", values["q"]),
            ("from", values["from"]),
            ("to", values["to"]),
        )
        if value
    }
    return filters


def record_filters(
    project: Project,
    job_id: str | None = None,
    run_id: str | None = None,
    source: str | None = None,
    query: SearchQuery | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    is_new: bool | None = None,
) -> RecordFilters:
    """Filters named by public ids (the API's); NotFoundError for a job or a run (or query)
    that the project does not have."""
    filters = RecordFilters(
        source=(source or "").replace("\x00", ""),
        search=query,
        date_from=since,
        date_to=until,
        is_new=is_new,
    )
    if job_id is not None:
        filters.job = _project_job(project, job_id)
    if run_id is not None:
        filters.run = _project_run(project, run_id)
    return filters


def _filtered(stmt: Select, project: Project, filters: RecordFilters) -> tuple[Select, Any]:
    """`stmt` narrowed by the filters, and the id column to order it by (with a search on
    SQLite, the index's own: see search.matching)."""
    stmt = stmt.where(Record.project_id == project.id)
    if filters.job is not None:
        stmt = stmt.where(Record.job_id == filters.job.id)
    if filters.run is not None:
        stmt = stmt.where(Record.run_id == filters.run.id)
    if filters.source:
        stmt = stmt.where(Record.source == filters.source)
    if filters.is_new is not None:
        stmt = stmt.where(Record.is_new.is_(filters.is_new))
    if filters.date_from is not None:
        stmt = stmt.where(Record.published_at >= filters.date_from)
    if filters.date_to is not None:
        stmt = stmt.where(Record.published_at < filters.date_to)
    if filters.search is None:
        return stmt, Record.id
    stmt, column = search.matching(stmt, filters.search)
    if filters.run is not None:
        # The search index leads (on SQLite), and on its own it would read every match of a
        # common word to find a run's few: a run's records were stored together, so their ids
        # bound where it has to look.
        low, high = db.session.execute(
            select(func.min(Record.id), func.max(Record.id)).where(
                Record.project_id == filters.run.project_id, Record.run_id == filters.run.id
            )
        ).one()
        stmt = stmt.where(column.between(low, high) if low is not None else false())
    return stmt, column


def records_query(project: Project, filters: RecordFilters) -> tuple[Select, Any]:
    """The filtered records of the project, unordered (callers add keyset or offset), and
    the id column to order them by."""
    return _filtered(select(Record).options(defer(Record.raw)), project, filters)


@dataclass
class BrowsedRecord:
    record: Record
    run_public_id: str
    job_name: str | None
    job_public_id: str | None = None
    highlight: search.Highlight | None = None


def browse_records(
    project: Project,
    filters: RecordFilters,
    before: int | None = None,
    after: int | None = None,
    limit: int = RECORDS_PER_PAGE,
) -> KeysetPage:
    """One page of the browser, newest first; items are BrowsedRecord."""
    if filters.errors:
        return KeysetPage(items=[], has_older=False, has_newer=False)
    stmt, column = records_query(project, filters)
    page = _keyset_page(stmt, column, before, after, limit)
    if not page.items and (before is not None or after is not None):
        # The cursor's neighbours are gone (deleted since): start again from the newest.
        page = _keyset_page(stmt, column, None, None, limit)
    page.items = _browsed([row[0] for row in page.items], filters.search)
    return page


def list_records(
    project: Project, filters: RecordFilters, cursor: int | None, limit: int
) -> tuple[list[BrowsedRecord], bool]:
    """Up to `limit` records newest first, older than the record id `cursor`; and whether
    more follow. A cursor whose neighbours are gone still pages on from where it was."""
    stmt, column = records_query(project, filters)
    records, more = keyset(stmt, column, cursor, limit)
    return _browsed(records, None), more


def _browsed(records: list[Record], query: SearchQuery | None) -> list[BrowsedRecord]:
    """Records with their runs' labels, highlighted when they were searched for."""
    labels = _run_labels({record.run_id for record in records})
    marks = search.highlights(query, [r.id for r in records]) if query is not None else {}
    return [
        BrowsedRecord(r, *labels.get(r.run_id, ("", None, None)), highlight=marks.get(r.id))
        for r in records
    ]


def _run_labels(run_ids: set[int]) -> dict[int, tuple[str, str | None, str | None]]:
    """Public id, job name and job public id of each run, in one small query kept apart from
    the paged one, so that the page's plan stays a plain index walk over records."""
    if not run_ids:
        return {}
    rows = db.session.execute(
        select(Run.id, Run.public_id, Job.name, Job.public_id)
        .outerjoin(Job, Run.job_id == Job.id)
        .where(Run.id.in_(run_ids))
    )
    return {run_id: (public_id, name, job_id) for run_id, public_id, name, job_id in rows}


def get_record(project: Project, public_id: str) -> Record:
    return _in_project(Record, project, public_id, "No record with this id in this project.", "rec")


def stream_records(project: Project, filters: RecordFilters, fmt: str) -> Iterator[str]:
    """Every record the filters match, newest first, as JSON, CSV or NDJSON text chunks."""
    stmt, column = _filtered(_export_select(), project, filters)
    partitions = _stream_rows(stmt.order_by(column.desc()))
    if fmt == "csv":
        return csv_chunks(partitions)
    if fmt == "ndjson":
        return ndjson_chunks(partitions)
    return json_array_chunks(partitions)


# --- export encoding ------------------------------------------------------------------------


def _export_select() -> Select:
    # Columns, not ORM objects: an export reads every row once, and `raw` stays unread.
    return (
        select(
            Record.public_id.label("id"),
            Record.source,
            Record.url,
            Record.title,
            Record.text,
            Record.author,
            Record.published_at,
            Record.metrics,
            Record.is_new,
            Record.job_id.label("job_pk"),
            Run.public_id.label("run_public_id"),
            Job.public_id.label("job_public_id"),
        )
        .join(Run, Record.run_id == Run.id)
        .outerjoin(Job, Record.job_id == Job.id)
    )


def _stream_rows(stmt: Select) -> Iterator[list]:
    result = db.session.execute(stmt.execution_options(yield_per=STREAM_BATCH))
    try:
        yield from result.partitions()
    finally:
        result.close()


def export_record(row, with_run: bool = True) -> dict:
    """A record as the API shows it; across runs it also names its run (or query) and job."""
    body = {
        "id": row.id,
        "source": row.source,
        "url": row.url,
        "title": row.title,
        "text": row.text,
        "author": row.author,
        "published_at": isoformat(row.published_at),
        "metrics": row.metrics or {},
        "is_new": row.is_new,
    }
    if with_run:
        body["query_id" if row.job_pk is None else "run_id"] = row.run_public_id
        body["job_id"] = row.job_public_id
    return body


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def json_array_chunks(partitions: Iterable[list]) -> Iterator[str]:
    yield "["
    first = True
    for rows in partitions:
        encoded = ",\n".join(_dumps(export_record(row)) for row in rows)
        yield encoded if first else ",\n" + encoded
        first = False
    yield "]\n"


def ndjson_chunks(partitions: Iterable[list]) -> Iterator[str]:
    for rows in partitions:
        yield "".join(_dumps(export_record(row)) + "\n" for row in rows)


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: formulas from a source get a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = _dumps(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(partitions: Iterable[list]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for rows in partitions:
        for row in rows:
            data = export_record(row)
            writer.writerow([csv_cell(data.get(column)) for column in EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()  # the header alone, when nothing matched


def parse_id(value: str | None) -> int | None:
    """A keyset cursor from a query string; anything else means "from the newest"."""
    if value and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
        if 0 < number <= MAX_ID:
            return number
    return None
