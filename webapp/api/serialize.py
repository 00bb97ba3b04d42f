"""Rows as the API contract shows them: each object is built as its response model
(webapp.schemas), whose fields are the only list of what it carries; and keyset pages."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from flask import current_app, jsonify, url_for
from pydantic import BaseModel
from sqlalchemy import Select

from .. import schemas
from ..models import ApiKey, Job, Record, Run
from ..paging import keyset
from ..settings.models import Webhook
from ..storage.service import BrowsedRecord
from ..timeutil import now
from .errors import ApiError


def respond(model: BaseModel, status: int = 200):
    response = jsonify(schemas.json_of(model))
    response.status_code = status
    return response


def _from_row(model: type[schemas.Out], row: Any, **values: Any) -> Any:
    """`model` with each field read from `row`'s attribute of that name, except `values`."""
    read = {name: getattr(row, name) for name in model.model_fields if name not in values}
    return model(**read, **values)


_LOOK_UP = object()


def job_out(job: Job, last: Run | None | object = _LOOK_UP) -> schemas.Job:
    """The job as the API shows it; a list passes each job's last run (one query per page)."""
    if last is _LOOK_UP:
        last = job.last_run()
    grace = timedelta(seconds=current_app.config["OVERDUE_GRACE_SECONDS"])
    return _from_row(
        schemas.Job,
        job,
        id=job.public_id,
        schedule=job.schedule.to_api(),
        last_run=run_out(last, job) if last else None,
        overdue=job.is_overdue(now(), grace),
    )


def run_out(run: Run, job: Job | None = None) -> schemas.Run:
    job = job or run.job
    completed = run.status == "completed"
    return _from_row(
        schemas.Run,
        run,
        id=run.public_id,
        job_id=job.public_id if job else None,
        result_url=url_for("api.run_records", run_id=run.public_id, _external=True)
        if completed
        else None,
    )


def record_out(record: Record) -> schemas.Record:
    return _from_row(schemas.Record, record, id=record.public_id, metrics=record.metrics or {})


def stored_record_out(item: BrowsedRecord) -> schemas.StoredRecord:
    record = item.record
    return _from_row(
        schemas.StoredRecord,
        record,
        id=record.public_id,
        metrics=record.metrics or {},
        job_id=item.job_public_id,
        run_id=item.run_public_id,
    )


def key_out(api_key: ApiKey, model: type[schemas.ApiKey] = schemas.ApiKey, **more) -> Any:
    return _from_row(model, api_key, id=api_key.public_id, **more)


def webhook_out(webhook: Webhook, model: type[schemas.Webhook] = schemas.Webhook, **more) -> Any:
    return _from_row(model, webhook, id=webhook.public_id, events=list(webhook.events), **more)


def encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(text: str | None) -> int | None:
    if not text:
        return None
    try:
        padded = text + "=" * (-len(text) % 4)
        value = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        value = 0
    # Cursors are row ids; a forged one past 64 bits would overflow the database driver.
    if not 0 < value < 2**63:
        raise ApiError(
            400, "The cursor is not valid; use next_cursor from a previous page.", field="cursor"
        )
    return value


def keyset_page(
    query: Select, column, cursor: str | None, limit: int, oldest_first: bool = False
) -> tuple[list, str | None]:
    """One page of `query`'s rows ordered by their id `column` (newest first unless
    `oldest_first`), after `cursor`; and the cursor of the next page, None on the last."""
    rows, more = keyset(query, column, decode_cursor(cursor), limit, descending=not oldest_first)
    return rows, encode_cursor(getattr(rows[-1], column.key)) if more else None
