"""Signed webhook delivery (API.md "Webhooks"): the payload, the signature, one delivery per
subscribed webhook and one for the job's own URL, retries with the configured backoff, the
log of every attempt, permanent refusals, Resend, and the private-address guard.

Every delivery goes to a real receiver on 127.0.0.1 (tests/receiver.py) that checks the
signature of every request; the outbox is driven in-process (plan_run, deliver_due), and the
clock is moved with time-machine where a retry falls due.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from conftest import make_job
from helpers import fresh
from receiver import HANG, Receiver
from sqlalchemy import select, text

from webapp.config import ConfigError, load
from webapp.errors import ConflictError, NotFoundError
from webapp.jobs import service as jobs
from webapp.jobs.service import ensure_project
from webapp.models import Run
from webapp.notifications import outbox
from webapp.notifications import webhooks as kind
from webapp.notifications.models import Delivery
from webapp.queries.service import submit_query
from webapp.runs.lifecycle import claim_run, complete_run, fail_run
from webapp.settings import webhooks as settings
from webapp.settings.models import Webhook, WebhookDelivery
from webapp.sources import http
from webapp.sources.http import FetchError, FetchPolicy, RefusedURL
from webapp.timeutil import isoformat, now

PAYLOAD_KEYS = [
    "event", "job_id", "run_id", "status", "record_count", "new_count", "result_url", "timestamp",
]


def record(fingerprint: str) -> dict:
    return {
        "source": "rss", "fingerprint": fingerprint, "url": f"https://n.example.com/{fingerprint}",
        "title": "Acme story", "text": None, "author": None, "published_at": now(),
        "metrics": {}, "raw": {},
    }


def finished(db, run: Run, ok: bool = True, records: int = 0) -> Run:
    assert claim_run(run.id)
    if ok:
        assert complete_run(run.id, [record(f"fp-{run.id}-{i}") for i in range(records)], [])
    else:
        assert fail_run(run.id, "Every source failed.")
    return fresh(db, Run, run.id)


def job_run(db, job, ok: bool = True, records: int = 0) -> Run:
    return finished(db, jobs.run_now(job), ok, records)


def query_run(db, project, ok: bool = True) -> Run:
    run = submit_query(project, {"prompt": "acme", "sources": ["https://news.example.com/f"]})
    return finished(db, run, ok, records=1)


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def hook(project, receiver, path: str = "/hook", events=("job.completed", "job.failed")):
    """A webhook of `project` to `path` of the receiver, which learns its secret."""
    webhook, secret = settings.create_webhook(project, receiver.url(path), list(events))
    receiver.secrets[path] = secret
    return webhook


def job_with_url(project, receiver, path: str = "/job", **overrides):
    job = make_job(project, webhook_url=receiver.url(path), **overrides)
    receiver.secrets[path] = settings.project_secret(project)
    return job


def deliveries(db) -> list[Delivery]:
    db.session.expire_all()
    rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    db.session.rollback()
    return rows


def attempts(db) -> list[WebhookDelivery]:
    db.session.expire_all()
    rows = db.session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()
    db.session.rollback()
    return rows


def send_all(run: Run) -> int:
    outbox.plan_run(run.id)
    return outbox.deliver_due()


# --- signing and the payload -------------------------------------------------------------------


def test_the_signature_is_sha256_hmac_of_the_raw_body_in_hex():
    # openssl: printf '{"event":"job.completed"}' | openssl dgst -sha256 -hmac whsec_test
    assert kind.sign("whsec_test", b'{"event":"job.completed"}') == (
        "sha256=85365e50e1ff644279c32d6cb56b252a9f50c8716ded23a964fca930cec42238"
    )


def test_a_completed_job_run_carries_exactly_the_documented_payload(app, db, project):
    app.config["BASE_URL"] = "https://jobs.example.com/watch"
    job = make_job(project)
    run = job_run(db, job, records=3)
    payload = kind.payload_of(run, job)
    assert list(payload) == PAYLOAD_KEYS
    assert payload == {
        "event": "job.completed",
        "job_id": job.public_id,
        "run_id": run.public_id,
        "status": "completed",
        "record_count": 3,
        "new_count": 3,
        "result_url": f"https://jobs.example.com/watch/v1/runs/{run.public_id}/records",
        "timestamp": isoformat(run.finished_at),
    }
    assert payload["timestamp"].endswith("Z")
    body = kind.body_of(payload)
    assert list(json.loads(body)) == PAYLOAD_KEYS  # the documented order, on the wire too


def test_a_failed_job_run_is_job_failed_without_a_result_url(db, project):
    job = make_job(project)
    run = job_run(db, job, ok=False)
    payload = kind.payload_of(run, job)
    assert (payload["event"], payload["status"], payload["result_url"]) == (
        "job.failed", "failed", None,
    )
    assert (payload["record_count"], payload["new_count"]) == (0, 0)


@pytest.mark.parametrize("ok", [True, False])
def test_a_one_off_query_is_query_completed_whatever_its_status(app, db, project, ok):
    run = query_run(db, project, ok)
    payload = kind.payload_of(run, None)
    assert payload["event"] == "query.completed"
    assert payload["job_id"] is None
    assert payload["run_id"] == run.public_id and run.public_id.startswith("qry_")
    assert payload["status"] == ("completed" if ok else "failed")
    expected_url = f"http://localhost:5000/v1/runs/{run.public_id}/records" if ok else None
    assert payload["result_url"] == expected_url


def test_result_url_is_the_one_the_api_gives_for_the_run(app, db, project, client, api_key):
    app.config["BASE_URL"] = "http://localhost"  # the test client's own host
    run = job_run(db, make_job(project), records=1)
    shown = client.get(f"/v1/runs/{run.public_id}", headers=api_key("read")).get_json()
    assert kind.result_url(run) == shown["result_url"]


# --- planning -------------------------------------------------------------------------------------


def test_a_run_plans_one_delivery_per_subscribed_webhook_and_one_for_the_jobs_url(
    db, project, receiver
):
    both = hook(project, receiver, "/both")
    hook(project, receiver, "/failures", events=["job.failed"])
    queries = hook(project, receiver, "/queries", events=["query.completed"])
    elsewhere = ensure_project("Elsewhere")
    settings.create_webhook(elsewhere, receiver.url("/theirs"), ["job.completed"])
    job = job_with_url(project, receiver)
    run = job_run(db, job)
    assert outbox.plan_run(run.id) == 2
    assert [(d.kind, d.target, d.event, d.status) for d in deliveries(db)] == [
        ("webhook", both.public_id, "job.completed", "pending"),
        ("webhook", "job", "job.completed", "pending"),
    ]
    query = query_run(db, project)
    assert outbox.plan_run(query.id) == 1
    assert deliveries(db)[-1].target == queries.public_id


def test_a_job_without_a_url_in_a_project_without_webhooks_plans_nothing(db, project):
    run = job_run(db, make_job(project))
    assert outbox.plan_run(run.id) == 0


# --- sending --------------------------------------------------------------------------------------


def test_each_endpoint_receives_one_correctly_signed_post_of_the_payload(db, project, receiver):
    webhook = hook(project, receiver)
    job = job_with_url(project, receiver)
    run = job_run(db, job, records=2)
    assert send_all(run) == 2
    expected = kind.body_of(kind.payload_of(run, job))
    for path in ("/hook", "/job"):
        [got] = receiver.to(path)
        assert got.signature_ok
        assert got.body == expected
        assert got.headers["Content-Type"] == "application/json"
        assert got.headers["X-ByteStack-Event"] == "job.completed"
    assert receiver.to("/hook")[0].headers["X-ByteStack-Signature"] == kind.sign(
        webhook.secret, expected
    )
    assert receiver.to("/job")[0].headers["X-ByteStack-Signature"] == kind.sign(
        settings.project_secret(project), expected
    )
    assert [d.status for d in deliveries(db)] == ["delivered", "delivered"]
    assert receiver.bad_signatures() == []


def test_a_redelivered_notify_message_sends_nothing_twice(db, project, receiver):
    hook(project, receiver)
    run_id = job_run(db, make_job(project)).public_id
    assert outbox.notify_run(run_id) == "planned 1, sent 1"
    assert outbox.notify_run(run_id) == "planned 0, sent 0"
    assert len(receiver.requests) == 1


def test_every_attempt_is_logged_with_its_answer_timing_and_excerpt(db, project, receiver):
    hook(project, receiver)
    job = job_with_url(project, receiver)
    receiver.body_of_answer = ("é" * 2000).encode()
    receiver.answers = [503, 200]
    run = job_run(db, job)
    assert send_all(run) == 2
    log = attempts(db)
    webhook = db.session.scalar(select(Webhook))
    by_target = {(a.webhook_id, a.job_id) for a in log}
    assert by_target == {(webhook.id, job.id), (None, job.id)}  # the job's URL is logged too
    first = log[0]
    assert (first.event, first.attempt, first.run_id) == ("job.completed", 1, run.id)
    assert first.status_code == 503
    assert first.error == "The receiver answered HTTP 503 Service Unavailable."
    assert first.response_excerpt == "é" * 500
    assert 0 <= first.duration_ms < 5000
    assert first.delivery_id == deliveries(db)[0].id
    assert log[1].status_code == 200 and log[1].error is None


def test_a_failed_attempt_waits_the_backoff_doubling_up_to_five_attempts(
    app, db, project, receiver
):
    app.config["WEBHOOK_BACKOFF_SECONDS"] = 30
    assert [kind.backoff(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    hook(project, receiver)
    receiver.answers = [500] * 10
    run = job_run(db, make_job(project))
    moment = now()
    with time_machine.travel(moment, tick=False):
        assert send_all(run) == 1
    waits = []
    for _ in range(4):
        [delivery] = deliveries(db)
        assert delivery.status == "pending"
        waits.append(round((delivery.next_attempt_at - moment).total_seconds()))
        with time_machine.travel(delivery.next_attempt_at - timedelta(seconds=1), tick=False):
            assert outbox.deliver_due() == 0  # not before its time
        moment = delivery.next_attempt_at
        with time_machine.travel(moment, tick=False):
            assert outbox.deliver_due() == 1
    assert waits == [30, 60, 120, 240]
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempt) == ("failed", 5)
    assert [a.attempt for a in attempts(db)] == [1, 2, 3, 4, 5]
    assert len(receiver.requests) == 5 and receiver.bad_signatures() == []
    # Every attempt sent the same signed bytes, with the same delivery id.
    assert len({(r.body, r.headers["X-ByteStack-Delivery"]) for r in receiver.requests}) == 1


@pytest.mark.parametrize(
    ("status", "after"),
    [(404, "failed"), (401, "failed"), (410, "failed"), (408, "pending"), (429, "pending"),
     (302, "pending"), (500, "pending")],
)
def test_a_client_error_other_than_408_or_429_is_refused_for_good(
    db, project, receiver, status, after
):
    hook(project, receiver)
    receiver.answers = [status]
    send_all(job_run(db, make_job(project)))
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempt, delivery.last_status_code) == (after, 1, status)


def test_a_redirect_is_not_followed(db, project, receiver):
    hook(project, receiver)
    receiver.answers = [301]
    send_all(job_run(db, make_job(project)))
    [attempt] = attempts(db)
    assert attempt.status_code == 301
    assert "Redirects are not followed" in attempt.error
    assert len(receiver.requests) == 1


def test_a_receiver_that_does_not_answer_in_time_fails_the_attempt(
    db, project, receiver, monkeypatch
):
    monkeypatch.setattr(kind, "TIMEOUT_SECONDS", 1.0)  # the real 10 s: tests/faults
    hook(project, receiver)
    receiver.answers = [HANG]
    started = time.monotonic()
    send_all(job_run(db, make_job(project)))
    assert time.monotonic() - started < 3
    [attempt] = attempts(db)
    assert attempt.status_code is None
    assert attempt.error == f"{receiver.url('/hook')} did not answer within 1 s."
    assert 900 <= attempt.duration_ms < 3000
    assert deliveries(db)[0].status == "pending"


def test_a_stopped_receiver_is_retried_and_delivered_when_it_is_back(db, project, receiver):
    hook(project, receiver)
    receiver.stop()
    run = job_run(db, make_job(project))
    send_all(run)
    [failed] = attempts(db)
    assert failed.status_code is None and failed.error.startswith("Could not reach")
    receiver.start()  # the same port
    with time_machine.travel(now() + timedelta(seconds=31)):
        assert outbox.deliver_due() == 1
    assert len(receiver.delivered("/hook")) == 1
    assert deliveries(db)[0].status == "delivered"


def test_a_rotated_secret_signs_the_next_attempt(db, project, receiver):
    webhook = hook(project, receiver)
    receiver.answers = [500]
    send_all(job_run(db, make_job(project)))
    new_secret = settings.rotate_secret(fresh(db, Webhook, webhook.id))
    receiver.secrets["/hook"] = new_secret
    with time_machine.travel(now() + timedelta(seconds=31)):
        assert outbox.deliver_due() == 1
    first, second = receiver.requests
    assert first.signature_ok and second.signature_ok  # each checked with the secret of its time
    assert second.headers["X-ByteStack-Signature"] == kind.sign(new_secret, second.body)
    assert first.headers["X-ByteStack-Signature"] != second.headers["X-ByteStack-Signature"]
    assert deliveries(db)[0].status == "delivered"


def test_a_webhook_deleted_before_its_delivery_is_not_called(db, project, receiver):
    webhook = hook(project, receiver)
    run = job_run(db, make_job(project))
    outbox.plan_run(run.id)
    settings.delete_webhook(fresh(db, Webhook, webhook.id))
    assert outbox.deliver_due() == 1
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.last_error) == ("failed", "The webhook was deleted.")
    assert receiver.requests == []


def test_the_project_secret_is_made_on_first_use_and_kept_encrypted(db, project):
    raw = db.session.scalar(text("SELECT webhook_secret_encrypted FROM projects WHERE id = :id"),
                            {"id": project.id})
    assert raw is None
    secret = settings.project_secret(project)
    assert secret.startswith("whsec_")
    assert settings.project_secret(project) == secret
    stored = db.session.scalar(
        text("SELECT webhook_secret_encrypted FROM projects WHERE id = :id"), {"id": project.id}
    )
    assert stored and secret not in stored
    rotated = settings.rotate_project_secret(project)
    assert rotated != secret and settings.project_secret(project) == rotated
    other = ensure_project("Elsewhere")
    assert settings.project_secret(other) not in (secret, rotated)


# --- resend ---------------------------------------------------------------------------------------


def test_resend_sends_a_delivered_delivery_again_now(db, project, receiver):
    hook(project, receiver)
    send_all(job_run(db, make_job(project)))
    [delivery] = deliveries(db)
    settings.resend_delivery(project, delivery.public_id)
    [resent] = deliveries(db)
    assert resent.status == "pending" and resent.next_attempt_at <= now()
    assert outbox.deliver_due() == 1
    assert [r.answered for r in receiver.requests] == [200, 200]
    assert [(a.attempt, a.status_code) for a in attempts(db)] == [(1, 200), (2, 200)]


def test_a_resent_failed_delivery_gets_one_more_attempt(db, project, receiver):
    hook(project, receiver)
    receiver.answers = [500] * 6
    send_all(job_run(db, make_job(project)))
    moment = now()
    for _ in range(4):
        moment += timedelta(hours=1)
        with time_machine.travel(moment):
            outbox.deliver_due()
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempt) == ("failed", 5)
    with time_machine.travel(moment + timedelta(minutes=1)):
        settings.resend_delivery(project, delivery.public_id)
        assert outbox.deliver_due() == 1
    [delivery] = deliveries(db)
    assert (delivery.status, delivery.attempt) == ("failed", 6)  # one more, and no retry
    with time_machine.travel(moment + timedelta(days=1)):
        assert outbox.deliver_due() == 0
    assert len(receiver.requests) == 6


def test_a_delivery_being_sent_cannot_be_resent_and_another_projects_is_not_found(
    db, project, receiver
):
    hook(project, receiver)
    outbox.plan_run(job_run(db, make_job(project)).id)
    [delivery] = deliveries(db)
    assert outbox.claim(delivery, now())  # a sender holds it
    with pytest.raises(ConflictError):
        settings.resend_delivery(project, delivery.public_id)
    assert deliveries(db)[0].status == "sending"
    with pytest.raises(NotFoundError):
        settings.resend_delivery(ensure_project("Elsewhere"), delivery.public_id)


# --- the private-address guard --------------------------------------------------------------------


@pytest.fixture
def sockets(monkeypatch) -> list:
    """Every socket connect made, recorded (and let through, to loopback only)."""
    made: list = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        made.append(address)
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1")):
            raise ConnectionRefusedError(f"test refused a connect to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return made


def test_a_private_receiver_is_refused_before_any_socket_opens(
    app, db, project, receiver, sockets
):
    hook(project, receiver)
    job = job_with_url(project, receiver)
    app.config["ALLOW_PRIVATE_NETWORKS"] = False
    send_all(job_run(db, job))
    assert sockets == [] and receiver.requests == []
    assert {(d.status, d.attempt) for d in deliveries(db)} == {("failed", 1)}  # for good
    for attempt in attempts(db):
        assert attempt.error.startswith("Refused to fetch 127.0.0.1: it resolves to the private")
        assert attempt.status_code is None


def test_a_name_resolving_to_a_private_address_is_refused_before_any_socket(sockets, monkeypatch):
    monkeypatch.setattr(http, "resolve", lambda host, port: ["10.0.0.7"])
    with pytest.raises(RefusedURL, match="10.0.0.7"):
        http.post("https://hooks.example.com/in", b"{}", FetchPolicy(timeout=2))
    assert sockets == []


# --- the client's POST ----------------------------------------------------------------------------


class Answering:
    """A loopback server answering every POST with the given status and body chunks."""

    def __init__(self, status: int, chunks, headers: dict | None = None):
        self.bodies: list[bytes] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    for chunk in chunks():
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/in"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_post_reads_an_answer_up_to_the_cap_and_never_past_the_deadline():
    def endless():
        while True:
            yield b"x" * 1024
            time.sleep(0.01)

    server = Answering(200, endless)
    try:
        started = time.monotonic()
        policy = FetchPolicy(timeout=2, max_bytes=4096, allow_private=True)
        answer = http.post(server.url, b'{"a":1}', policy, {"Content-Type": "application/json"})
        assert answer.status_code == 200 and answer.content == b"x" * 4096
        assert server.bodies == [b'{"a":1}']

        def trickle():
            while True:
                yield b"."
                time.sleep(0.2)

        server.stop()
        server = Answering(200, trickle)
        answer = http.post(server.url, b"{}", FetchPolicy(timeout=1.5, allow_private=True))
        assert answer.status_code == 200 and 0 < len(answer.content) < 20  # what came in time
        assert time.monotonic() - started < 6
    finally:
        server.stop()


def test_post_returns_a_redirect_as_the_answer_without_following_it():
    server = Answering(307, lambda: [b""], {"Location": "http://127.0.0.1:9/elsewhere"})
    try:
        answer = http.post(server.url, b"{}", FetchPolicy(timeout=2, allow_private=True))
        assert answer.status_code == 307 and answer.url == server.url
    finally:
        server.stop()


def test_post_to_a_closed_port_is_a_readable_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=f"Could not reach http://127.0.0.1:{port}/"):
        http.post(f"http://127.0.0.1:{port}/", b"{}", FetchPolicy(timeout=2, allow_private=True))


# --- configuration ---------------------------------------------------------------------------------


def test_the_backoff_and_the_base_url_come_from_the_environment(tmp_path):
    config = load({"SECRET_KEY": "s"}, str(tmp_path))
    assert (config["WEBHOOK_BACKOFF_SECONDS"], config["BASE_URL"]) == (30.0, "http://localhost:5000")
    config = load(
        {"SECRET_KEY": "s", "BYTESTACK_WEBHOOK_BACKOFF_SECONDS": "1.5",
         "BYTESTACK_BASE_URL": "https://jobs.example.com/"},
        str(tmp_path),
    )
    assert (config["WEBHOOK_BACKOFF_SECONDS"], config["BASE_URL"]) == (1.5, "https://jobs.example.com")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BYTESTACK_WEBHOOK_BACKOFF_SECONDS", "soon"),
        ("BYTESTACK_WEBHOOK_BACKOFF_SECONDS", "0"),
        ("BYTESTACK_BASE_URL", "jobs.example.com"),
        ("BYTESTACK_BASE_URL", "ftp://jobs.example.com"),
        ("BYTESTACK_BASE_URL", "https://jobs.example.com/?x=1"),
        ("BYTESTACK_BASE_URL", "https://jobs.example.com:99999"),
    ],
)
def test_a_bad_backoff_or_base_url_stops_start_up(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load({"SECRET_KEY": "s", name: value}, str(tmp_path))

