"""Alert rules per job, sent through Apprise to real local servers: a json:// receiver (an HTTP
server in a thread) and mailto:// to an SMTP server (aiosmtpd). The outbox runs in the test's
process here; tests/faults/test_alert_delivery.py proves the same with real worker processes.

What is promised (API.md "Channels and alerts", issue 10): a message names the job, the count
of new records, the first five titles with their links and a link to the run; nothing is sent
for a run without new records; a failing job alerts once per streak of `after_failures`, and
its first completed run after an alerted streak says it recovered; hourly and daily digests
send one message per (job, channel, period); a failed send is retried with backoff; the
private-address guard applies before anything is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from channel_servers import JsonReceiver, SmtpServer
from conftest import make_job
from sqlalchemy import select, update

from webapp.jobs import service
from webapp.jobs.service import ensure_project
from webapp.models import Job, Run
from webapp.notifications import alerts, outbox
from webapp.notifications.models import Delivery
from webapp.runs.lifecycle import claim_run, complete_run, fail_run
from webapp.settings import channels
from webapp.timeutil import now

T0 = datetime(2026, 5, 1, 3, 10, tzinfo=UTC)  # a Friday, 03:10 UTC


@pytest.fixture
def receiver():
    server = JsonReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


def record(key: str, title: str | None = None) -> dict:
    return {
        "source": "rss",
        "fingerprint": key,
        "url": f"https://news.example.com/{key}",
        "title": title or f"Acme story {key}",
        "text": None,
        "author": None,
        "published_at": now(),
        "metrics": {},
        "raw": {},
    }


def alerting_job(project, channel_ids, **rules):
    return make_job(project, alerts={"channels": list(channel_ids), **rules})


def finish(db, job, records=None, error: str | None = None) -> Run:
    """A run of the job that completed with `records` (or failed with `error`), planned by
    the outbox as a run's end plans it; then everything due is sent."""
    run = service.run_now(db.session.get(Job, job.id))
    assert claim_run(run.id)
    if error is None:
        assert complete_run(run.id, records or [], [])
    else:
        assert fail_run(run.id, error)
    outbox.plan_run(run.id)
    outbox.deliver_due()
    db.session.expire_all()
    return db.session.get(Run, run.id)


def alert_deliveries(db) -> list[Delivery]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(Delivery).where(Delivery.kind == "alert").order_by(Delivery.id))
    )


# --- messages ---------------------------------------------------------------------------------


def test_a_run_with_new_records_sends_one_message_naming_job_count_titles_and_links(
    db, project, receiver
):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    run = finish(db, job, [record(f"r{i}") for i in range(7)])

    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["path"] == "/alerts"
    assert message["title"] == "Acme mentions: 7 new records"
    body = message["message"]
    assert "Acme mentions found 7 new records (7 in all)" in body
    for i in range(5):  # the first five titles, each with its link
        assert f"• Acme story r{i}\n  https://news.example.com/r{i}" in body
    assert "Acme story r5" not in body
    assert "…and 2 more." in body
    assert f"Run: http://localhost:5000/runs/{run.public_id}" in body
    [delivery] = alert_deliveries(db)
    assert (delivery.target, delivery.event, delivery.status) == (
        channel.public_id,
        "new_records",
        "delivered",
    )
    assert db.session.get(type(channel), channel.id).last_sent_at is not None


def test_a_run_without_new_records_sends_nothing(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    finish(db, job, [record("a"), record("b")])
    assert len(receiver.messages) == 1
    finish(db, job, [record("a"), record("b")])  # the same records again: none is new
    finish(db, job, [])
    assert len(receiver.messages) == 1
    assert len(alert_deliveries(db)) == 1


def test_new_records_are_not_sent_when_the_rule_is_off(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], on_new_records=False)
    finish(db, job, [record("a")])
    assert receiver.messages == []


def test_each_channel_of_the_job_gets_the_message_and_other_jobs_send_nothing(
    db, project, receiver
):
    first = channels.create_channel(project, "One", receiver.url("/one"))
    second = channels.create_channel(project, "Two", receiver.url("/two"))
    job = alerting_job(project, [first.public_id, second.public_id])
    quiet = make_job(project, name="No alerts")
    finish(db, job, [record("a")])
    finish(db, quiet, [record("b")])
    assert sorted(m["path"] for m in receiver.messages) == ["/one", "/two"]


def test_mail_to_a_local_smtp_server_names_job_count_titles_and_links_as_plain_text(
    db, project, smtp
):
    channel = channels.create_channel(project, "Team mail", smtp.url())
    job = alerting_job(project, [channel.public_id])
    titles = ["Acme <script>alert(1)</script> launches", "Acme & friends", "Acme hires"]
    run = finish(db, job, [record(f"m{i}", title) for i, title in enumerate(titles)])

    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["Subject"] == "Acme mentions: 3 new records"
    assert mail["To"] == "team@example.com"
    assert mail.get_content_type() == "text/plain"  # a title is text, never markup
    body = mail.get_content().replace("\r\n", "\n")
    assert "Acme mentions found 3 new records" in body
    for i, title in enumerate(titles):
        assert f"• {title}\n  https://news.example.com/m{i}" in body
    assert f"Run: http://localhost:5000/runs/{run.public_id}" in body


def test_titles_are_flattened_to_one_line_and_shortened(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    finish(db, job, [record("x", "Acme\nRun: https://evil.example.com/\x07 " + "y" * 300)])
    body = receiver.messages[0]["message"]
    assert "\nRun: https://evil.example.com" not in body  # a title cannot forge a line
    line = next(line for line in body.splitlines() if line.startswith("• "))
    assert line.startswith("• Acme Run: https://evil.example.com/ yyy")
    assert len(line) == 2 + alerts.TITLE_MAX and line.endswith("…")


# --- failures and recovery ----------------------------------------------------------------------


def test_a_failure_streak_of_three_with_after_failures_two_alerts_once(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], after_failures=2)
    first = finish(db, job, error="Every source failed: HTTP 500.")
    assert receiver.messages == []  # one failure is not yet a streak of two
    second = finish(db, job, error="Every source failed: HTTP 502.")
    assert [m["title"] for m in receiver.messages] == ["Acme mentions failed 2 times in a row"]
    body = receiver.messages[0]["message"]
    assert "The latest run of Acme mentions failed: Every source failed: HTTP 502." in body
    assert f"Run: http://localhost:5000/runs/{second.public_id}" in body
    assert f"Job: http://localhost:5000/jobs/{job.public_id}" in body
    assert receiver.messages[0]["type"] == "failure"
    finish(db, job, error="Every source failed: HTTP 503.")
    assert len(receiver.messages) == 1  # once per streak
    assert [d.run_id for d in alert_deliveries(db)] == [second.id]
    assert first.status == "failed"


def test_the_first_completed_run_after_an_alerted_streak_says_it_recovered(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    finish(db, job, error="Every source failed.")
    finish(db, job, error="Every source failed.")
    recovered = finish(db, job, [record("a"), record("b")])
    titles = [m["title"] for m in receiver.messages]
    assert titles == ["Acme mentions failed", "Acme mentions recovered"]
    body = receiver.messages[1]["message"]
    assert "Acme mentions completed again after 2 failed runs." in body
    assert "found 2 new records" in body  # one message carries both
    assert f"Run: http://localhost:5000/runs/{recovered.public_id}" in body
    assert receiver.messages[1]["type"] == "success"
    finish(db, job, [record("c")])
    assert [m["title"] for m in receiver.messages][2:] == ["Acme mentions: 1 new record"]
    finish(db, job, error="Every source failed.")  # a new streak alerts again
    assert [m["title"] for m in receiver.messages][3:] == ["Acme mentions failed"]


def test_no_recovery_message_when_the_streak_was_never_alerted(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], after_failures=3)
    finish(db, job, error="Every source failed.")
    finish(db, job, error="Every source failed.")
    finish(db, job, [])  # recovered, but the streak of 2 stayed below 3: nobody was told
    assert receiver.messages == []


def test_failures_are_not_sent_when_the_rule_is_off(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], on_failure=False)
    finish(db, job, error="Every source failed.")
    finish(db, job, [])
    assert receiver.messages == []


# --- digests ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "digest", "zone", "end"),
    [
        (datetime(2026, 5, 1, 3, 10, tzinfo=UTC), "hourly", "UTC", datetime(2026, 5, 1, 4, 0)),
        (datetime(2026, 5, 1, 3, 59, 59, tzinfo=UTC), "hourly", "UTC", datetime(2026, 5, 1, 4)),
        (datetime(2026, 5, 1, 4, 0, tzinfo=UTC), "hourly", "UTC", datetime(2026, 5, 1, 5, 0)),
        # India is 5:30 ahead: its hours start at :30 UTC.
        (
            datetime(2026, 5, 1, 3, 10, tzinfo=UTC),
            "hourly",
            "Asia/Kolkata",
            datetime(2026, 5, 1, 3, 30),
        ),
        (datetime(2026, 5, 1, 3, 10, tzinfo=UTC), "daily", "UTC", datetime(2026, 5, 2, 0, 0)),
        # 03:10 UTC is 05:10 in Berlin (summer time): the day ends at 22:00 UTC.
        (
            datetime(2026, 5, 1, 3, 10, tzinfo=UTC),
            "daily",
            "Europe/Berlin",
            datetime(2026, 5, 1, 22, 0),
        ),
        # 23:30 UTC on 28 March is 00:30 on 29 March in Berlin, a 23-hour day (clocks go
        # forward at 02:00): it ends at midnight of the 30th, 22:00 UTC.
        (
            datetime(2026, 3, 28, 23, 30, tzinfo=UTC),
            "daily",
            "Europe/Berlin",
            datetime(2026, 3, 29, 22, 0),
        ),
        # New York's repeated hour (1 November, 01:00–02:00 twice) is two hourly periods.
        (
            datetime(2026, 11, 1, 5, 20, tzinfo=UTC),
            "hourly",
            "America/New_York",
            datetime(2026, 11, 1, 6, 0),
        ),
        (
            datetime(2026, 11, 1, 6, 20, tzinfo=UTC),
            "hourly",
            "America/New_York",
            datetime(2026, 11, 1, 7, 0),
        ),
        (datetime(2028, 2, 29, 12, 0, tzinfo=UTC), "daily", "UTC", datetime(2028, 3, 1, 0, 0)),
    ],
)
def test_a_digest_period_ends_at_the_next_hour_or_midnight_of_the_jobs_timezone(
    moment, digest, zone, end
):
    assert alerts.period_end(moment, digest, zone) == end.replace(tzinfo=UTC)


def test_an_hourly_digest_of_three_runs_is_one_message_at_the_end_of_the_hour(
    db, project, receiver
):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], digest="hourly")
    runs = []
    for minute, keys in ((10, ["a", "b"]), (25, []), (40, ["c"]), (55, ["d", "e", "f"])):
        with time_machine.travel(T0.replace(minute=minute), tick=False):
            runs.append(finish(db, job, [record(key) for key in keys]))
    planned = alert_deliveries(db)
    assert [d.target for d in planned] == [f"{channel.public_id}@2026-05-01T04:00Z"] * 3
    assert {d.next_attempt_at for d in planned} == {datetime(2026, 5, 1, 4, 0, tzinfo=UTC)}
    assert receiver.messages == []  # nothing before the hour is over

    with time_machine.travel(datetime(2026, 5, 1, 4, 0, 1, tzinfo=UTC), tick=False):
        assert outbox.deliver_due() >= 1
        outbox.deliver_due()  # a second pass (a redelivered waker) sends nothing more
    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["title"] == "Acme mentions: 6 new records in 3 runs (hourly digest)"
    body = message["message"]
    assert "from 2026-05-01 03:00 to 2026-05-01 04:00 (UTC)" in body
    for run, count in ((runs[3], 3), (runs[2], 1), (runs[0], 2)):
        assert (
            f"new record{'s' if count > 1 else ''} — http://localhost:5000/runs/{run.public_id}"
            in body
        )
    assert runs[1].public_id not in body  # the run without new records planned nothing
    assert "…and 1 more." in body  # six new records, five titles shown
    assert {d.status for d in alert_deliveries(db)} == {"delivered"}


def test_a_digest_delivery_claimed_before_the_first_gives_way_without_sending(
    db, project, receiver
):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], digest="daily")
    for hour in (3, 4):
        with time_machine.travel(T0.replace(hour=hour), tick=False):
            finish(db, job, [record(f"k{hour}")])
    first, second = alert_deliveries(db)
    boundary = datetime(2026, 5, 2, 0, 0, 5, tzinfo=UTC)
    db.session.expunge(second)
    with time_machine.travel(boundary, tick=False):
        assert outbox.deliver(second, boundary) == "pending"  # another worker took it first
        assert receiver.messages == []
        db.session.expire_all()
        waiting = db.session.get(Delivery, second.id)
        assert (waiting.status, waiting.attempt) == ("pending", 0)  # its attempt not counted
        outbox.deliver(db.session.get(Delivery, first.id), boundary)
    assert len(receiver.messages) == 1
    assert receiver.messages[0]["title"] == "Acme mentions: 2 new records in 2 runs (daily digest)"
    assert [(d.status, d.attempt) for d in alert_deliveries(db)] == [
        ("delivered", 1),
        ("delivered", 0),
    ]


def test_failures_in_digest_mode_go_at_once_and_new_records_wait(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], digest="hourly")
    with time_machine.travel(T0, tick=False):
        finish(db, job, error="Every source failed.")
    assert [m["title"] for m in receiver.messages] == ["Acme mentions failed"]
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        finish(db, job, [record("a")])  # recovery now; its new record at 04:00
    assert [m["title"] for m in receiver.messages] == [
        "Acme mentions failed",
        "Acme mentions recovered",
    ]
    assert "new record" not in receiver.messages[1]["message"]
    with time_machine.travel(datetime(2026, 5, 1, 4, 0, 1, tzinfo=UTC), tick=False):
        outbox.deliver_due()
    assert receiver.messages[2]["title"] == "Acme mentions: 1 new record in 1 run (hourly digest)"


def test_a_failed_digest_is_retried_whole_and_sent_once(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id], digest="hourly")
    for minute in (10, 20):
        with time_machine.travel(T0.replace(minute=minute), tick=False):
            finish(db, job, [record(f"k{minute}")])
    receiver.status = 500
    boundary = datetime(2026, 5, 1, 4, 0, 1, tzinfo=UTC)
    with time_machine.travel(boundary, tick=False):
        outbox.deliver_due()
    leader, other = alert_deliveries(db)
    assert (leader.status, leader.attempt) == ("pending", 1)
    assert leader.last_error.startswith("JSON: ") and "error=500" in leader.last_error
    assert other.status == "pending"
    receiver.status = 200
    with time_machine.travel(boundary + timedelta(seconds=61), tick=False):
        outbox.deliver_due()
    assert len(receiver.messages) == 1
    assert "2 new records in 2 runs" in receiver.messages[0]["title"]
    assert [d.status for d in alert_deliveries(db)] == ["delivered", "delivered"]


# --- retries, guard, deleted channels -------------------------------------------------------------


def test_a_refused_message_is_retried_after_the_backoff(db, project, receiver, app):
    assert alerts.backoff(1) == 60 and alerts.backoff(2) == 180 and alerts.backoff(4) == 1620
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    receiver.status = 503
    sent_at = now()
    finish(db, job, [record("a")])
    [delivery] = alert_deliveries(db)
    assert (delivery.status, delivery.attempt) == ("pending", 1)
    assert (
        sent_at + timedelta(seconds=59) < delivery.next_attempt_at < now() + timedelta(seconds=61)
    )
    stored = db.session.get(type(channel), channel.id)
    assert stored.last_error and stored.last_sent_at is None
    receiver.status = 200
    with time_machine.travel(now() + timedelta(seconds=61)):
        outbox.deliver_due()
    [delivery] = alert_deliveries(db)
    assert (delivery.status, delivery.attempt) == ("delivered", 2)
    assert len(receiver.messages) == 1


def test_an_unreachable_channel_never_fails_the_run(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    receiver.stop()
    run = finish(db, job, [record("a")])
    assert run.status == "completed"
    assert db.session.get(Job, job.id).state == "active"
    [delivery] = alert_deliveries(db)
    assert (delivery.status, delivery.attempt) == ("pending", 1)
    assert delivery.last_error.startswith("JSON:")


def test_the_private_address_guard_refuses_before_anything_is_sent(app, db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    app.config["ALLOW_PRIVATE_NETWORKS"] = False
    finish(db, job, [record("a")])
    assert receiver.messages == []
    [delivery] = alert_deliveries(db)
    assert delivery.status == "pending"
    assert "private or local address 127.0.0.1" in delivery.last_error


def test_alerts_for_a_deleted_channel_fail_and_the_job_forgets_it(db, project, receiver):
    kept = channels.create_channel(project, "Kept", receiver.url("/kept"))
    gone = channels.create_channel(project, "Gone", receiver.url("/gone"))
    job = alerting_job(project, [gone.public_id, kept.public_id])
    receiver.status = 500
    finish(db, job, [record("a")])
    receiver.status = 200
    channels.delete_channel(gone)
    assert db.session.get(Job, job.id).alerts["channels"] == [kept.public_id]
    with time_machine.travel(now() + timedelta(seconds=61)):
        outbox.deliver_due()
    by_target = {d.target: d for d in alert_deliveries(db)}
    assert by_target[gone.public_id].status == "failed"
    assert by_target[gone.public_id].last_error == "The channel was deleted."
    assert by_target[kept.public_id].status == "delivered"
    assert [m["path"] for m in receiver.messages] == ["/kept"]


def test_a_redelivered_notify_message_sends_nothing_twice(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    run = finish(db, job, [record("a")])
    assert outbox.notify_run(run.public_id) == "planned 0, sent 0"
    assert len(receiver.messages) == 1


def test_a_channel_of_another_project_is_refused_in_a_jobs_alerts(db, project, receiver):
    other = ensure_project("Elsewhere")
    theirs = channels.create_channel(other, "Theirs", receiver.url())
    with pytest.raises(Exception) as refused:
        alerting_job(project, [theirs.public_id])
    assert refused.value.errors == {
        "alerts": f"alerts.channels: {theirs.public_id} is not a channel of this project."
    }
    assert db.session.scalar(select(Job.id)) is None


def test_one_off_queries_send_no_alerts(db, project, receiver):
    channel = channels.create_channel(project, "Team hook", receiver.url())
    job = alerting_job(project, [channel.public_id])
    run = service.run_now(job)
    db.session.execute(update(Run).where(Run.id == run.id).values(job_id=None, trigger="query"))
    db.session.commit()
    assert claim_run(run.id)
    assert complete_run(run.id, [record("q")], [])
    outbox.plan_run(run.id)
    outbox.deliver_due()
    assert receiver.messages == []
