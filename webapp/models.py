"""The data model: projects, API keys, jobs, runs and their records."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .errors import NotFoundError
from .extensions import db
from .ids import new_public_id
from .schedules import Schedule
from .storage.search_schema import install as install_search_index
from .timeutil import UTCDateTime, now

JOB_STATES = ("active", "running", "paused", "failed")
# States in which a job keeps its due-time entry: a running job's following slot still
# fires (and is recorded as skipped while the run goes on).
SCHEDULABLE_STATES = ("active", "running")
RUN_STATUSES = ("queued", "running", "completed", "failed", "skipped")
IN_PROGRESS = ("queued", "running")
RUN_TRIGGERS = ("schedule", "manual", "api", "query")
KEY_SCOPES = ("read", "write", "admin")


class Project(db.Model):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("prj")
    )
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    # Signs what a job's own webhook_url receives (encrypted: every delivery needs it plain).
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # The retention policy (webapp.storage.retention prunes by it): runs older than this
    # many days, and a job's runs beyond its newest this many; None keeps everything.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    retention_runs_per_job: Mapped[int | None] = mapped_column(Integer)


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("key")
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    scope: Mapped[str] = mapped_column(String(10))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    project: Mapped[Project] = relationship()

    def allows(self, needed: str) -> bool:
        return KEY_SCOPES.index(self.scope) >= KEY_SCOPES.index(needed)


class Job(db.Model):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("job")
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    prompt: Mapped[str] = mapped_column(Text)
    sources: Mapped[list[Any]] = mapped_column(JSON)
    date_range: Mapped[dict | None] = mapped_column(JSON)
    limit: Mapped[int] = mapped_column(Integer, default=100)
    schedule_type: Mapped[str] = mapped_column(String(10))
    schedule_value: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    state: Mapped[str] = mapped_column(String(10), default="active", index=True)
    # Whether a person wants the job scheduled; `state` says what it is doing now.
    # Kept apart so a job paused during its run returns to `paused` when the run ends.
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # The job's alert rules (API.md "alerts"): channels, on_new_records, on_failure,
    # after_failures, on_recovery, digest; None sends nothing.
    alerts: Mapped[dict | None] = mapped_column(JSON)
    # The private token of the job's Atom feed URL (encrypted: the job's page shows it).
    feed_token_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)

    project: Mapped[Project] = relationship()
    runs: Mapped[list[Run]] = relationship(
        back_populates="job",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Run.id.desc()",
        lazy="dynamic",
    )

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.schedule_type, self.schedule_value, self.timezone)

    @property
    def is_schedulable(self) -> bool:
        """Whether the scheduler keeps a due-time entry for this job."""
        return schedulable(self.enabled, self.state)

    def is_overdue(self, moment: datetime, grace: timedelta) -> bool:
        """An active job whose slot passed more than `grace` ago without firing: a silent stop."""
        return (
            self.enabled
            and self.state == "active"
            and self.next_run_at is not None
            and self.next_run_at < moment - grace
        )

    @classmethod
    def schedulable_clause(cls):
        """`is_schedulable` in SQL, for the scheduler's queries."""
        return cls.enabled.is_(True) & cls.state.in_(SCHEDULABLE_STATES)

    def last_run(self) -> Run | None:
        return (
            db.session.query(Run)
            .filter(Run.job_id == self.id, Run.status != "skipped")
            .order_by(Run.id.desc())
            .first()
        )


def schedulable(enabled: bool, state: str) -> bool:
    return bool(enabled) and state in SCHEDULABLE_STATES


class Run(db.Model):
    __tablename__ = "runs"
    __table_args__ = (
        # Exactly one run per (job, slot): a second scheduler or a re-delivered queue
        # message cannot make a duplicate.
        UniqueConstraint("job_id", "scheduled_for", name="uq_runs_job_slot"),
        # At most one queued or running run per job: two "Run now" presses, or one racing a
        # slot, cannot start two runs (one-off queries have no job, and NULLs never clash).
        Index(
            "uq_runs_job_in_progress",
            "job_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'running')"),
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        Index("ix_runs_status_heartbeat", "status", "heartbeat_at"),
        # Storage lists a project's completed runs newest first, one keyset page at a time.
        Index("ix_runs_project_status_id", "project_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("run")
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    trigger: Mapped[str] = mapped_column(String(10))
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    new_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # How many times the run was handed to the queue: the reaper requeues a queued run whose
    # queue message was lost or failed before it started, a bounded number of times.
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # When the run's deliveries were planned (webhooks, alerts, pushes); None until then.
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While the run goes on: {"sources_done", "sources_total", "records"}, written by the worker
    # as each source finishes; None before the first source starts.
    progress: Mapped[dict | None] = mapped_column(JSON)
    # A one-off query's parameters (prompt, sources, date_range, limit); None for job runs.
    params: Mapped[dict | None] = mapped_column(JSON)
    # The bytes of a completed run's records, measured once after it completed (its records
    # never change then), so a project's size is a sum over runs, not over every record.
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger)

    job: Mapped[Job | None] = relationship(back_populates="runs")

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)

    @property
    def is_in_progress(self) -> bool:
        return self.status in IN_PROGRESS


class Record(db.Model):
    __tablename__ = "records"
    __table_args__ = (
        Index("ix_records_job_fingerprint", "job_id", "fingerprint"),
        Index("ix_records_run_position", "run_id", "position"),
        # Storage pages by id, newest first, within each filter: each index ends in `id` so a
        # page is read in order and stops after one page, on a million records as on ten.
        # All start with project_id: with no statistics SQLite prefers the index matching the
        # most equalities, so (project_id, job_id, id) beats walking (project_id, id).
        Index("ix_records_project_id_id", "project_id", "id"),
        Index("ix_records_project_source_id", "project_id", "source", "id"),
        Index("ix_records_project_job_id", "project_id", "job_id", "id"),
        Index("ix_records_project_run_id", "project_id", "run_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("rec")
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(40))
    fingerprint: Mapped[str] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(Text)
    # The URL's host without "www.", kept apart so Analytics can group by it in SQL.
    domain: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(500))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    raw: Mapped[dict] = mapped_column(JSON, default=dict)
    is_new: Mapped[bool] = mapped_column(Boolean, default=True)


# The full-text index over title, text and author (webapp.storage.search_schema).
install_search_index(Record.__table__)


def get_in_project(model, project_id: int, public_id: str, missing: str, *where) -> Any:
    """The row of `model` with this public id in this project (and `where`), or NotFoundError
    with `missing`: the one lookup behind every "no such … in this project"."""
    # PostgreSQL answers text with NUL with an error, not an empty result; no id holds one.
    row = None
    if "\x00" not in public_id:
        row = db.session.scalar(
            select(model).where(
                model.public_id == public_id, model.project_id == project_id, *where
            )
        )
    if row is None:
        raise NotFoundError(missing)
    return row
