"""Alerts: a job's rules (API.md "alerts") turned into messages to its channels, through
Apprise, sent by the outbox from the notifications worker.

A run's end plans at most one message per channel now: new records (the count, the first
titles with their links, a link to the run), a failure once its streak reaches
`after_failures` (once per streak: the streak is counted from the job's run history, and an
alert already planned for an earlier run of the streak means it was alerted), or a recovery
(the first completed run after an alerted streak). A run without new records sends nothing
about records.

With an hourly or daily digest, new records wait: each run plans a delivery due at the end
of its period (the next hour, or the next midnight in the job's timezone), targeted at
"chn_…@<end>", so the deliveries of one (job, channel, period) share a target. The first of
them (the lowest id still pending) sends one message for all and marks the others delivered;
another one claimed meanwhile gives its turn back without sending. Failures and recoveries
are never digested: they go at once.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import apprise
from flask import current_app
from sqlalchemy import func, select, update

from .. import channel_urls
from ..crypto import DecryptionError
from ..extensions import db
from ..models import Job, Record, Run
from ..settings.models import Channel
from ..sources.http import FetchError, FetchPolicy, check_url, resolve
from ..timeutil import isoformat, now, parse_timestamp
from .models import Delivery
from .outbox import LEASE, Kind, Outcome, Planned, register

log = logging.getLogger("bytestack.alerts")

KIND = "alert"
MAX_ATTEMPTS = 5
DIGESTS = ("immediate", "hourly", "daily")
TITLES_SHOWN = 5
TITLE_MAX = 200  # characters of one record's title in a message
ERROR_MAX = 500
RUNS_SHOWN = 10  # runs listed by name in a digest
NOTIFY_TYPES = {
    "failure": apprise.NotifyType.FAILURE,
    "recovery": apprise.NotifyType.SUCCESS,
    "new_records": apprise.NotifyType.INFO,
    "test": apprise.NotifyType.INFO,
}


def backoff(attempt: int) -> float:
    """Seconds after failed attempt n: BYTESTACK_ALERT_BACKOFF_SECONDS × 3^(n−1), so with the
    default 60 s five attempts span 1 + 3 + 9 + 27 = 40 minutes of a service's outage."""
    return current_app.config["ALERT_BACKOFF_SECONDS"] * 3 ** (attempt - 1)


# --- sending one message -----------------------------------------------------------------------


def _policy() -> FetchPolicy:
    return FetchPolicy(allow_private=current_app.config["ALLOW_PRIVATE_NETWORKS"])


def guard(service, unresolvable_ok: bool = False) -> None:
    """FetchError when a server the URL names resolves to an address the private-address
    guard refuses (or, unless `unresolvable_ok`, does not resolve at all)."""
    policy = _policy()
    for host, port in channel_urls.hosts_of(service):
        bare = host.strip("[]")
        try:
            resolve(bare, port)
        except (socket.gaierror, UnicodeError, OSError):
            if unresolvable_ok:
                continue
            raise FetchError(f"Could not resolve {bare}.") from None
        netloc = f"[{bare}]:{port}" if ":" in bare else f"{bare}:{port}"
        check_url(f"http://{netloc}/", policy)


def send_message(url: str, title: str, body: str, event: str = "new_records") -> Outcome:
    """Send one message to an Apprise URL now, after the guard has checked the servers it
    names; the outcome carries Apprise's reason when it was not sent."""
    try:
        service = channel_urls.load(url)
    except channel_urls.ChannelUrlError as exc:
        return Outcome(False, error=exc.message, retry=False)
    try:
        guard(service)
    except FetchError as exc:
        return Outcome(False, error=str(exc))
    sender = apprise.Apprise(asset=channel_urls._asset())
    sender.add(service)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        sent = sender.notify(
            body=body,
            title=title,
            notify_type=NOTIFY_TYPES.get(event, apprise.NotifyType.INFO),
            # Plain text: whatever a source returned reaches each service as text (Apprise
            # escapes it for the ones that take HTML or Markdown).
            body_format=apprise.NotifyFormat.TEXT,
        )
    if sent:
        return Outcome(True)
    reasons = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    reason = reasons[-1] if reasons else "the service did not accept the message"
    return Outcome(False, error=f"{service.service_name}: {reason}"[:ERROR_MAX])


# --- planning ------------------------------------------------------------------------------


def period_end(moment: datetime, digest: str, zone: str) -> datetime:
    """When the digest period holding `moment` ends: the next full hour, or the next midnight
    in the job's timezone (so a daily digest arrives at the start of the job's own day)."""
    tz = ZoneInfo(zone)
    local = moment.astimezone(tz)
    if digest == "hourly":
        # UTC arithmetic from the local top of the hour: a repeated DST hour is two periods.
        start = local.replace(minute=0, second=0, microsecond=0)
        return start.astimezone(UTC) + timedelta(hours=1)
    following = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)
    return following.astimezone(UTC)


def _link(endpoint: str, **values: str) -> str:
    """A dashboard URL under BYTESTACK_BASE_URL (a worker has no request to take it from)."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return adapter.build(endpoint, values, force_external=True)


def _streak(job_id: int, run_id: int) -> tuple[int, int]:
    """(the id of the job's last completed run before `run_id`, or 0; how many runs failed
    after it, up to and including `run_id`)."""
    last_ok = (
        db.session.scalar(
            select(func.max(Run.id)).where(
                Run.job_id == job_id, Run.status == "completed", Run.id < run_id
            )
        )
        or 0
    )
    failed = db.session.scalar(
        select(func.count(Run.id)).where(
            Run.job_id == job_id, Run.status == "failed", Run.id > last_ok, Run.id <= run_id
        )
    )
    return last_ok, failed


def _alerted(job_id: int, after: int, before: int) -> bool:
    """Whether a failure alert was planned for a run of the job between the two run ids."""
    return (
        db.session.scalar(
            select(Delivery.id)
            .where(
                Delivery.kind == KIND,
                Delivery.job_id == job_id,
                Delivery.event == "failure",
                Delivery.run_id > after,
                Delivery.run_id < before,
            )
            .limit(1)
        )
        is not None
    )


def _channels_of(job: Job, wanted: list[str]) -> list[str]:
    """The job's channels that still exist in its project, in the rules' order."""
    found = set(
        db.session.scalars(
            select(Channel.public_id).where(
                Channel.project_id == job.project_id, Channel.public_id.in_(wanted)
            )
        )
    )
    return [public_id for public_id in wanted if public_id in found]


def _payload(run: Run, job: Job, events: list[str], failures: int) -> dict[str, Any]:
    records = db.session.execute(
        select(Record.title, Record.url)
        .where(Record.run_id == run.id, Record.is_new.is_(True))
        .order_by(Record.position)
        .limit(TITLES_SHOWN)
    ).all()
    return {
        "events": events,
        "job_id": job.public_id,
        "job_name": job.name,
        "job_url": _link("jobs.job_page", job_id=job.public_id),
        "timezone": job.timezone,
        "run_id": run.public_id,
        "run_url": _link("jobs.run_page", run_id=run.public_id),
        "finished_at": isoformat(run.finished_at or now()),
        "record_count": run.record_count,
        "new_count": run.new_count,
        "records": [{"title": title, "url": url} for title, url in records],
        "error": (run.error or "")[:ERROR_MAX] or None,
        "failures": failures,
    }


def plan(run: Run, job: Job | None) -> list[Planned]:
    """What the job's alert rules send about this run: one delivery per channel now, and one
    per channel in the run's digest period."""
    rules = job.alerts if job is not None else None
    if not rules or not rules.get("channels"):
        return []
    urgent: list[str] = []
    failures = 0
    if run.status == "failed" and rules.get("on_failure"):
        last_ok, failures = _streak(job.id, run.id)
        if failures >= rules.get("after_failures", 1) and not _alerted(job.id, last_ok, run.id):
            urgent.append("failure")
    news = run.status == "completed" and rules.get("on_new_records") and run.new_count > 0
    if run.status == "completed" and rules.get("on_recovery"):
        last_ok, failures = _streak(job.id, run.id)
        if failures and _alerted(job.id, last_ok, run.id):
            urgent.append("recovery")
    if not urgent and not news:
        return []
    channels = _channels_of(job, rules["channels"])
    digest = rules.get("digest", "immediate")
    planned: list[Planned] = []
    if digest == "immediate":
        events = urgent + (["new_records"] if news else [])
        payload = _payload(run, job, events, failures)
        planned += [Planned(channel, events[0], payload) for channel in channels]
        return planned
    if urgent:
        payload = _payload(run, job, urgent, failures)
        planned += [Planned(channel, urgent[0], payload) for channel in channels]
    if news:
        due = period_end(run.finished_at or now(), digest, job.timezone)
        payload = {
            **_payload(run, job, ["new_records"], failures),
            "digest": digest,
            "period_end": isoformat(due),
        }
        key = due.strftime("%Y-%m-%dT%H:%MZ")
        planned += [Planned(f"{channel}@{key}", "digest", payload, due) for channel in channels]
    return planned


# --- the message ------------------------------------------------------------------------------


def _one_line(text: str | None, limit: int = TITLE_MAX) -> str:
    flat = " ".join("".join(c if c.isprintable() else " " for c in (text or "")).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _when(stamp: str, zone: str) -> str:
    return parse_timestamp(stamp).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def _titles(records: list[dict], total: int) -> list[str]:
    lines = []
    for item in records[:TITLES_SHOWN]:
        lines.append(f"• {_one_line(item.get('title')) or '(untitled)'}")
        if item.get("url"):
            lines.append(f"  {_one_line(item['url'], 2000)}")
    shown = min(len(records), TITLES_SHOWN)
    if total > shown:
        lines.append(f"…and {total - shown} more.")
    return lines


def compose(payloads: list[dict]) -> tuple[str, str, str]:
    """(title, body, event) of the message carrying these deliveries' payloads: one run's, or
    a digest's runs."""
    if len(payloads) > 1 or payloads[0].get("digest"):
        return _digest(payloads)
    payload = payloads[0]
    job, events = _one_line(payload["job_name"]), payload["events"]
    new_count, failures = payload["new_count"], payload["failures"]
    lines: list[str] = []
    if "failure" in events:
        title = f"{job} failed" + (f" {failures} times in a row" if failures > 1 else "")
        lines += [
            f"The latest run of {job} failed: {_one_line(payload['error'], ERROR_MAX)}",
            (
                "The job waits until someone resumes it; no further failure alerts are sent "
                "until it completes again."
            ),
            "",
            f"Run: {payload['run_url']}",
            f"Job: {payload['job_url']}",
        ]
        return title, "\n".join(lines), "failure"
    if "recovery" in events:
        title = f"{job} recovered"
        lines.append(f"{job} completed again after {_plural(failures, 'failed run')}.")
    else:
        title = f"{job}: {_plural(new_count, 'new record')}"
    if "new_records" in events:
        if lines:
            lines.append("")
        lines.append(
            f"{job} found {_plural(new_count, 'new record')} "
            f"({payload['record_count']} in all) in its run of "
            f"{_when(payload['finished_at'], payload['timezone'])} ({payload['timezone']}):"
        )
        lines += _titles(payload["records"], new_count)
    lines += ["", f"Run: {payload['run_url']}"]
    return title, "\n".join(lines), events[0]


def _digest(payloads: list[dict]) -> tuple[str, str, str]:
    runs = sorted(payloads, key=lambda p: p["finished_at"], reverse=True)
    newest = runs[0]
    job, zone, digest = _one_line(newest["job_name"]), newest["timezone"], newest["digest"]
    total = sum(p["new_count"] for p in runs)
    end = parse_timestamp(newest["period_end"])
    start = end - (timedelta(hours=1) if digest == "hourly" else timedelta(days=1))
    title = (
        f"{job}: {_plural(total, 'new record')} in {_plural(len(runs), 'run')} ({digest} digest)"
    )
    records = [item for p in runs for item in p["records"]]
    lines = [
        (
            f"{job} found {_plural(total, 'new record')} in {_plural(len(runs), 'run')} from "
            f"{_when(isoformat(start), zone)} to {_when(isoformat(end), zone)} ({zone}):"
        ),
        *_titles(records, total),
        "",
        "Runs:",
    ]
    for p in runs[:RUNS_SHOWN]:
        lines.append(
            f"• {_when(p['finished_at'], zone)}: {_plural(p['new_count'], 'new record')} — "
            f"{p['run_url']}"
        )
    if len(runs) > RUNS_SHOWN:
        lines.append(f"…and {len(runs) - RUNS_SHOWN} earlier runs.")
    lines += ["", f"Job: {newest['job_url']}"]
    return title, "\n".join(lines), "new_records"


# --- the outbox's send ---------------------------------------------------------------------------


def _digest_group(delivery: Delivery) -> list[Delivery]:
    """The deliveries of this one's (job, channel, period) not yet delivered or failed, oldest
    first (this one among them)."""
    return list(
        db.session.scalars(
            select(Delivery)
            .where(
                Delivery.kind == KIND,
                Delivery.job_id == delivery.job_id,
                Delivery.target == delivery.target,
                Delivery.status.in_(("pending", "sending")),
            )
            .order_by(Delivery.id)
        )
    )


def _give_way(delivery: Delivery, first: Delivery) -> Outcome:
    """Hand a claimed digest delivery back, its attempt uncounted, to wait for the group's
    first: that one's message carries it (and marks it delivered)."""
    moment = now()
    db.session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.status == "sending",
            Delivery.attempt == delivery.attempt,
        )
        .values(
            status="pending",
            attempt=delivery.attempt - 1,
            next_attempt_at=max(first.next_attempt_at or moment, moment + LEASE),
        )
    )
    db.session.commit()
    # The outbox's record of this attempt finds it no longer "sending" and changes nothing.
    return Outcome(False, error=f"Goes with its digest's first delivery, {first.public_id}.")


def _settle(others: list[Delivery], attempt: int, outcome: Outcome) -> None:
    """The outcome of a digest's message for the group's other deliveries: delivered with it,
    failed with it when it is out of attempts, else left to go with its next attempt."""
    moment = now()
    if outcome.delivered:
        values: dict[str, Any] = {
            "status": "delivered",
            "delivered_at": moment,
            "next_attempt_at": None,
            "last_error": None,
        }
    elif not outcome.retry or attempt >= MAX_ATTEMPTS:
        values = {"status": "failed", "next_attempt_at": None, "last_error": outcome.error}
    else:
        return
    db.session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_([other.id for other in others]),
            Delivery.status.in_(("pending", "sending")),
        )
        .values(**values)
    )


def send(delivery: Delivery) -> Outcome:
    """Send one planned alert (for a digest: the whole period's, once) to its channel."""
    channel_id, _, period = delivery.target.partition("@")
    channel = db.session.scalar(
        select(Channel).where(
            Channel.public_id == channel_id, Channel.project_id == delivery.project_id
        )
    )
    if channel is None:
        return Outcome(False, error="The channel was deleted.", retry=False)
    if delivery.job_id is None:
        return Outcome(False, error="The job was deleted.", retry=False)
    members = [delivery]
    if period:
        group = _digest_group(delivery)
        if group and group[0].id != delivery.id:
            return _give_way(delivery, group[0])
        members = group or [delivery]
    title, body, event = compose([member.payload for member in members])
    try:
        url = channel.url
    except DecryptionError as exc:  # the key changed since: the channel must be saved again
        return Outcome(False, error=str(exc), retry=False)
    outcome = send_message(url, title, body, event)
    if period:
        _settle(members[1:], delivery.attempt, outcome)
    channel.last_sent_at = now() if outcome.delivered else channel.last_sent_at
    channel.last_error = None if outcome.delivered else outcome.error
    db.session.commit()
    return outcome


register(Kind(name=KIND, plan=plan, send=send, backoff=backoff, max_attempts=MAX_ATTEMPTS))
