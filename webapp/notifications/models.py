"""The outbox: one row per thing to deliver for a run (a webhook call, an alert, a push)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..ids import new_public_id
from ..timeutil import UTCDateTime, now

DELIVERY_STATUSES = ("pending", "sending", "delivered", "failed")


class Delivery(db.Model):
    """One delivery of one run's event to one target, with its attempts.

    `status` is `pending` (due at `next_attempt_at`), `sending` (claimed by a worker until
    `next_attempt_at`, its lease), `delivered` or `failed` (out of attempts). Claiming is a
    compare-and-set on (status, attempt): a re-delivered queue message sends nothing twice.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        # A run's end plans each (kind, target) once, however often it is looked at.
        UniqueConstraint("run_id", "kind", "target", name="uq_deliveries_run_kind_target"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(
        String(40), unique=True, default=lambda: new_public_id("dlv")
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    # Kept when the run or its job is deleted, so a target's history stays whole.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))  # a registered kind: "webhook", "alert", …
    target: Mapped[str] = mapped_column(String(100))  # e.g. "wh_…", "job", "chn_…", "bucket"
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # attempts made so far
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
