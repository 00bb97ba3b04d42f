"""Retention: a project's policy, the prune that applies it, and what the project stores.

A project keeps every run until its policy says otherwise: `days` deletes runs whose run time
is older (a job's runs, skipped ones included, and one-off queries); `runs_per_job` deletes a
job's finished runs beyond its newest N. A run's result file is made from its records when it
is downloaded, so deleting the records deletes the file.

A prune goes in small batches, each its own short transaction, so no table is locked for
long and a prune cut off anywhere (a killed worker, a timeout) has lost nothing: the next one
carries on. A batch first claims its runs with a conditional write on their status, in one
statement, so a run queued or running is never touched, and a run that completed after the
batch was chosen is claimed whole, since it completed in one transaction with its records.
That write also takes the locks (PostgreSQL's row locks, SQLite's write lock) before anything
is read, so two prunes at once claim disjoint runs and no run leaves the Analytics rollups
twice. Then, in the same transaction, the runs leave the rollups, their records are deleted,
then the runs.

Disk space comes back: on SQLite (created with incremental auto-vacuum) each batch's freed
pages are returned to the file system after it commits; PostgreSQL's autovacuum makes them
reusable.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce

from sqlalchemy import Integer, Row, delete, func, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from ..errors import ValidationError
from ..extensions import db
from ..models import Job, Project, Record, Run
from ..queueing import enqueue_notifications, get_redis
from ..runs import rollups
from ..schemas import ProjectUpdate, RetentionUpdate, validate
from ..timeutil import now

log = logging.getLogger("bytestack.retention")
FINISHED = ("completed", "failed", "skipped")
# A batch: at most this many runs, and no more records than this (but always one run), so a
# transaction stays short whatever the runs hold.
BATCH_RUNS = 100
BATCH_RECORDS = 5000


@dataclass(frozen=True)
class Usage:
    record_count: int
    storage_bytes: int


@dataclass
class PruneResult:
    runs: int = 0
    records: int = 0


# --- the policy -------------------------------------------------------------------------------


def set_retention(project: Project, values: dict) -> Project:
    """Change the policy's given fields (null keeps everything), then queue a prune so the
    policy applies now rather than at the next hourly pass."""
    change = validate(RetentionUpdate, values)
    for name, value in change.given().items():
        setattr(project, f"retention_{name}", value)
    db.session.commit()
    try:
        enqueue_notifications(get_redis(), [("prune", project.id)])
    except Exception as exc:
        log.warning("project %s: prune left to the hourly pass (%s)", project.public_id, exc)
    return project


def update_project(project: Project, body: dict) -> Project:
    """PATCH /v1/project: the policy's fields, each refusal named `retention.<field>`."""
    change = validate(ProjectUpdate, body)
    try:
        return set_retention(project, change.retention)
    except ValidationError as exc:
        raise ValidationError(
            {f"retention.{name}" if name else "retention": message
             for name, message in exc.errors.items()}
        ) from None


def projects_with_a_policy() -> list[int]:
    return list(
        db.session.scalars(
            select(Project.id).where(
                or_(Project.retention_days.is_not(None),
                    Project.retention_runs_per_job.is_not(None))
            )
        )
    )


# --- what a project stores --------------------------------------------------------------------


class octet_length(FunctionElement):
    """A value's size in bytes as stored text; SQLite has octet_length() only from 3.43."""

    type = Integer()
    inherit_cache = True


@compiles(octet_length)
def _octet_length(element, compiler, **kw) -> str:
    return f"octet_length(CAST({compiler.process(element.clauses, **kw)} AS TEXT))"


@compiles(octet_length, "sqlite")
def _octet_length_sqlite(element, compiler, **kw) -> str:
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


RECORD_COLUMNS = (
    Record.source, Record.url, Record.title, Record.text, Record.author, Record.metrics,
    Record.raw,
)


def _bytes_of_records():
    each = reduce(
        operator.add, (func.coalesce(octet_length(column), 0) for column in RECORD_COLUMNS)
    )
    return func.coalesce(func.sum(each), 0)


def usage(project: Project) -> Usage:
    """The project's records and their bytes (see schemas.Project.storage_bytes): measured runs
    are summed; runs completed since the last prune measured them are counted from records."""
    completed = (Run.project_id == project.id, Run.status == "completed")
    records, measured = db.session.execute(
        select(func.coalesce(func.sum(Run.record_count), 0),
               func.coalesce(func.sum(Run.stored_bytes), 0)).where(*completed)
    ).one()
    unmeasured = db.session.scalar(
        select(_bytes_of_records()).where(
            Record.run_id.in_(select(Run.id).where(*completed, Run.stored_bytes.is_(None)))
        )
    )
    return Usage(int(records), int(measured) + int(unmeasured))


def measure_runs(project_id: int) -> int:
    """Note the bytes of the project's completed runs not measured yet, a batch at a time;
    returns how many runs were measured."""
    measured = 0
    while True:
        rows = db.session.execute(
            select(Run.id, Run.record_count)
            .where(Run.project_id == project_id, Run.status == "completed",
                   Run.stored_bytes.is_(None))
            .order_by(Run.id)
            .limit(BATCH_RUNS)
        ).all()
        batch = [row.id for row in _within_budget(rows)]
        if not batch:
            db.session.rollback()
            return measured
        size = select(_bytes_of_records()).where(Record.run_id == Run.id).correlate(Run)
        db.session.execute(
            update(Run)
            .where(Run.id.in_(batch), Run.stored_bytes.is_(None))
            .values(stored_bytes=size.scalar_subquery())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        measured += len(batch)


def _within_budget(rows: Sequence[Row]) -> list[Row]:
    """The first rows (of runs: id, record_count, …) whose records fit in BATCH_RECORDS; at
    least one."""
    batch, records = [], 0
    for row in rows:
        if batch and records + row.record_count > BATCH_RECORDS:
            break
        batch.append(row)
        records += row.record_count
    return batch


# --- pruning ----------------------------------------------------------------------------------


def prune_project(project_id: int) -> PruneResult:
    """Delete the runs the project's policy no longer keeps, with their records, batch by
    batch; then measure the runs completed since the last prune. Idempotent."""
    result = PruneResult()
    policy = db.session.execute(
        select(Project.retention_days, Project.retention_runs_per_job).where(
            Project.id == project_id
        )
    ).first()
    db.session.rollback()  # no read transaction is held between batches
    if policy is None:
        return result
    days, keep = policy
    if days is not None:
        # The run time as the run history and Analytics show it.
        run_time = func.coalesce(Run.started_at, Run.scheduled_for)
        cutoff = now() - timedelta(days=days)
        _prune_where(result, Run.id, Run.project_id == project_id, run_time < cutoff)
    if keep is not None:
        jobs = db.session.scalars(select(Job.id).where(Job.project_id == project_id)).all()
        for job_id in jobs:
            # A job's runs in slot order, newest first, along its (job_id, scheduled_for) index.
            oldest_kept = db.session.scalar(
                select(Run.scheduled_for)
                .where(Run.job_id == job_id, Run.status.in_(FINISHED))
                .order_by(Run.scheduled_for.desc())
                .offset(keep - 1)
                .limit(1)
            )
            db.session.rollback()
            if oldest_kept is not None:
                _prune_where(result, Run.scheduled_for, Run.job_id == job_id,
                             Run.scheduled_for < oldest_kept)
    measure_runs(project_id)
    if result.runs:
        log.info("pruned project %s: %d runs, %d records", project_id, result.runs,
                 result.records)
    return result


def _prune_where(result: PruneResult, order, *conditions) -> None:
    """Delete the finished runs matching `conditions` a batch at a time, oldest first by
    `order` (unique among them, and walked along an index). The walk goes on past runs it
    could not claim (another prune has them), so it always ends, and two prunes at once share
    the work instead of waiting on each other."""
    after = None
    while True:
        query = select(Run.id, Run.record_count, order).where(Run.status.in_(FINISHED),
                                                              *conditions)
        if after is not None:
            query = query.where(order > after)
        rows = db.session.execute(query.order_by(order).limit(BATCH_RUNS)).all()
        db.session.rollback()
        batch = _within_budget(rows)
        if not batch:
            return
        after = batch[-1][2]
        runs, records = delete_runs([row.id for row in batch])
        if runs:
            result.runs += runs
            result.records += records
            _give_back_space()


def delete_runs(run_ids: list[int]) -> tuple[int, int]:
    """One batch in one transaction: claim the runs still finished, take them out of the
    rollups, delete their records, then them. Returns (runs, records) deleted."""
    # SET status = status writes nothing new: the statement is there to claim. It re-reads each
    # run's status as it locks it; SKIP LOCKED (PostgreSQL; SQLite has one writer at a time)
    # leaves runs another prune has claimed to that prune.
    claimable = (
        select(Run.id)
        .where(Run.id.in_(run_ids), Run.status.in_(FINISHED))
        .with_for_update(skip_locked=True)
    )
    claimed = list(
        db.session.scalars(
            update(Run)
            .where(Run.id.in_(claimable))
            .values(status=Run.status)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        db.session.rollback()
        return 0, 0
    rollups.subtract_runs(claimed)
    # Explicitly rather than by ON DELETE CASCADE, which on SQLite depends on each connection's
    # foreign_keys pragma; and the count is the statement's own.
    records = db.session.execute(
        delete(Record)
        .where(Record.run_id.in_(claimed))
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.execute(
        delete(Run).where(Run.id.in_(claimed)).execution_options(synchronize_session=False)
    )
    db.session.commit()
    return len(claimed), records


def _give_back_space() -> None:
    """SQLite: hand the pages the batch freed back to the file system. The pragma frees one
    page per step of its statement; executescript steps it to the end."""
    if db.engine.dialect.name != "sqlite":
        return
    with db.engine.connect() as connection:
        connection.connection.driver_connection.executescript("PRAGMA incremental_vacuum")


# --- the RQ task (it runs in the app context RunWorker opens) ---------------------------------


def prune_task(project_id: int) -> str:
    """Queued after each run of the project, by the scheduler's hourly pass and when the policy
    changes; a failure here never touches a run."""
    try:
        result = prune_project(project_id)
        return f"pruned {result.runs} runs, {result.records} records"
    finally:
        db.session.remove()
