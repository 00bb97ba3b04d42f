"""Webhooks and their delivery attempts, alert channels, the project's bucket, and source
credentials: what a project stores in Settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..crypto import decrypt, encrypt
from ..extensions import db
from ..ids import new_public_id
from ..models import Project
from ..timeutil import UTCDateTime, now

# A job's run ends (completed or failed); a one-off query ends (its status says how).
WEBHOOK_EVENTS = ("job.completed", "job.failed", "query.completed")


class Webhook(db.Model):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("wh")
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    # Encrypted, not hashed: every delivery signs its body with HMAC using the plain secret.
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    project: Mapped[Project] = relationship()
    deliveries: Mapped[list[WebhookDelivery]] = relationship(
        back_populates="webhook", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def secret(self) -> str:
        return decrypt(self.secret_encrypted)

    @secret.setter
    def secret(self, plain: str) -> None:
        self.secret_encrypted = encrypt(plain)


class WebhookDelivery(db.Model):
    """One attempt to deliver one event to one webhook, or to a job's own webhook_url (then
    `webhook_id` is None and `job_id` names the job)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    # Kept when the job or run is deleted, so the webhook's history stays whole.
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # Indexed for the ON DELETE SET NULL of every pruned run, which looks its attempts up.
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    event: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    # The outbox row this attempt belongs to (Settings → Webhooks resends through it).
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )

    webhook: Mapped[Webhook | None] = relationship(back_populates="deliveries")


class SourceCredential(db.Model):
    """A source credential (e.g. youtube_api_key) set for one project in Settings → Sources."""

    __tablename__ = "source_credentials"
    __table_args__ = (
        UniqueConstraint("project_id", "name", name="uq_source_credentials_project_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    value_encrypted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)

    @property
    def value(self) -> str:
        return decrypt(self.value_encrypted)

    @value.setter
    def value(self, plain: str) -> None:
        self.value_encrypted = encrypt(plain)


class Channel(db.Model):
    """Where alerts go: an Apprise URL (slack://, mailto://, json://…), encrypted at rest."""

    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("chn")
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))  # the URL's scheme, e.g. "slack"
    url_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    project: Mapped[Project] = relationship()

    @property
    def url(self) -> str:
        return decrypt(self.url_encrypted)

    @url.setter
    def url(self, plain: str) -> None:
        self.url_encrypted = encrypt(plain)


class Bucket(db.Model):
    """A project's own S3-compatible bucket, where each completed run's result JSON is pushed."""

    __tablename__ = "buckets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), unique=True
    )
    endpoint: Mapped[str | None] = mapped_column(String(2000))
    region: Mapped[str | None] = mapped_column(String(64))
    bucket: Mapped[str] = mapped_column(String(255))
    prefix: Mapped[str] = mapped_column(String(500), default="")
    access_key: Mapped[str] = mapped_column(String(255))
    secret_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_push_key: Mapped[str | None] = mapped_column(String(1000))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    project: Mapped[Project] = relationship()

    @property
    def secret_key(self) -> str:
        return decrypt(self.secret_key_encrypted)

    @secret_key.setter
    def secret_key(self, plain: str) -> None:
        self.secret_key_encrypted = encrypt(plain)
