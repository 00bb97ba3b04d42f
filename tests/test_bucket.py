"""Bring your own bucket, against a real S3 server (moto in server mode, with authentication
on): connecting proves a test write, a refusal says why on the field at fault, the secret is
stored encrypted and never shown, and each completed run's result file is pushed through the
outbox as the very bytes GET /v1/storage/{key} serves."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from conftest import make_job
from helpers import fresh
from s3 import shared_s3
from sqlalchemy import select, update

from webapp.jobs import service
from webapp.jobs.service import ensure_project
from webapp.launcher import free_port
from webapp.models import Run
from webapp.notifications import outbox
from webapp.notifications.models import Delivery
from webapp.runs.lifecycle import claim_run, complete_run, fail_run
from webapp.settings.models import Bucket
from webapp.storage import bucket as buckets
from webapp.storage.service import result_key
from webapp.timeutil import now

TEST_OBJECT = ".bytestack-connection-test"


@pytest.fixture
def s3():
    return shared_s3()


def connect(client, headers, body):
    return client.put("/v1/storage/bucket", json=body, headers=headers)


def record(n: int) -> dict:
    return {
        "source": "rss",
        "fingerprint": f"fp-{n}",
        "url": f"https://news.example.com/{n}",
        "title": f"Acme story {n}",
        "text": "About acme",
        "author": "Reporter",
        "published_at": now() - timedelta(minutes=n),
        "metrics": {"score": n},
        "raw": {},
    }


def completed_run(db, project, records=(1, 2), **job) -> Run:
    run = service.run_now(make_job(project, **job))
    assert claim_run(run.id)
    assert complete_run(run.id, [record(n) for n in records], [])
    return fresh(db, Run, run.id)


def bucket_deliveries(db) -> list[Delivery]:
    db.session.expire_all()
    return db.session.scalars(select(Delivery).where(Delivery.kind == "bucket")).all()


# --- connecting ---------------------------------------------------------------------------------


def test_connecting_writes_and_deletes_a_test_object_and_keeps_the_secret_encrypted(
    app, db, api_key, s3
):
    credentials = s3.fresh(versioned=True)
    response = connect(app.test_client(), api_key("admin"), credentials.as_body(prefix="exports"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body == {
        "endpoint": credentials.endpoint,
        "region": None,
        "bucket": "results",
        "prefix": "exports/",
        "access_key": credentials.access_key,
        "connected_at": body["connected_at"],
        "last_push_at": None,
        "last_push_key": None,
        "last_error": None,
        "last_error_at": None,
    }
    assert credentials.secret_key not in response.get_data(as_text=True)
    # A versioned bucket keeps the history: the test object was written, then deleted.
    assert s3.history() == [
        (f"exports/{TEST_OBJECT}", "deleted"),
        (f"exports/{TEST_OBJECT}", "version"),
    ]
    assert s3.objects() == {}
    stored = db.session.scalar(select(Bucket))
    assert credentials.secret_key not in stored.secret_key_encrypted
    assert stored.secret_key == credentials.secret_key


def test_a_key_that_may_write_but_not_delete_connects_and_leaves_its_test_object(app, api_key, s3):
    credentials = s3.fresh(actions=("s3:PutObject",))
    response = connect(app.test_client(), api_key("admin"), credentials.as_body())
    assert response.status_code == 200, response.get_json()
    assert s3.objects() == {TEST_OBJECT: buckets.TEST_BODY}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"secret_key": "not-the-secret"}, "secret_key", "The secret key does not match"),
        ({"access_key": "AKIAUNKNOWN000000000"}, "access_key", "does not know this access key"),
        ({"bucket": "no-such-bucket"}, "bucket", "has no bucket named no-such-bucket"),
        ({"endpoint": f"http://127.0.0.1:{free_port()}"}, "endpoint", "Could not connect to"),
    ],
    ids=["wrong secret", "unknown key", "no such bucket", "nothing listening"],
)
def test_a_bucket_that_refuses_the_test_write_is_not_saved_and_says_why(
    app, db, api_key, s3, change, field, message
):
    credentials = s3.fresh()
    response = connect(app.test_client(), api_key("admin"), credentials.as_body(**change))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert error["message"].startswith("The test write failed: ")
    assert message in error["message"]
    assert credentials.secret_key not in error["message"]
    assert db.session.scalar(select(Bucket)) is None


def test_a_key_that_may_not_write_is_refused(app, db, api_key, s3):
    credentials = s3.fresh(actions=("s3:GetObject",))
    response = connect(app.test_client(), api_key("admin"), credentials.as_body())
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "access_key"
    assert "may not write to results (access denied)" in error["message"]


def test_a_private_endpoint_is_refused_by_the_guard_before_any_request(app, db, api_key, s3):
    credentials = s3.fresh(versioned=True)
    app.config["ALLOW_PRIVATE_NETWORKS"] = False
    response = connect(app.test_client(), api_key("admin"), credentials.as_body())
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "endpoint"
    assert "private or local address 127.0.0.1" in error["message"]
    assert s3.history() == []  # nothing reached the server
    assert db.session.scalar(select(Bucket)) is None


def test_bad_fields_are_refused_before_anything_is_sent(app, api_key, s3):
    credentials = s3.fresh(versioned=True)
    client, headers = app.test_client(), api_key("admin")
    for change, field in (
        ({"bucket": "Not_A_Bucket!"}, "bucket"),
        ({"endpoint": "ftp://files.example.com"}, "endpoint"),
        ({"prefix": "a/../b"}, "prefix"),
        ({"region": "eu west"}, "region"),
        ({"secret_key": ""}, "secret_key"),
    ):
        response = connect(client, headers, credentials.as_body(**change))
        assert response.status_code == 422, change
        assert response.get_json()["error"]["field"] == field
    assert connect(client, headers, None).status_code == 400  # not a JSON object
    assert s3.history() == []


def test_get_never_shows_the_secret_and_delete_disconnects(app, db, api_key, s3):
    client, admin = app.test_client(), api_key("admin")
    assert client.get("/v1/storage/bucket", headers=admin).status_code == 404
    credentials = s3.fresh()
    assert connect(client, admin, credentials.as_body()).status_code == 200
    shown = client.get("/v1/storage/bucket", headers=admin)
    assert shown.status_code == 200
    assert shown.get_json()["bucket"] == "results"
    assert "secret_key" not in shown.get_json()
    assert credentials.secret_key not in shown.get_data(as_text=True)
    # The bucket belongs to this project: another project's admin sees none of it.
    theirs = api_key("admin", target=ensure_project("Elsewhere"))
    assert client.get("/v1/storage/bucket", headers=theirs).status_code == 404
    assert client.delete("/v1/storage/bucket", headers=theirs).status_code == 204
    assert client.get("/v1/storage/bucket", headers=admin).status_code == 200
    for scope in ("read", "write"):
        assert client.get("/v1/storage/bucket", headers=api_key(scope)).status_code == 403
    assert client.delete("/v1/storage/bucket", headers=admin).status_code == 204
    assert client.get("/v1/storage/bucket", headers=admin).status_code == 404
    assert db.session.scalar(select(Bucket)) is None


# --- pushing ------------------------------------------------------------------------------------


def test_a_completed_run_is_pushed_as_the_bytes_storage_serves_under_its_key(
    app, db, project, api_key, s3
):
    credentials = s3.fresh()
    client, headers = app.test_client(), api_key("admin")
    assert connect(client, headers, credentials.as_body(prefix="acme/")).status_code == 200
    run = completed_run(db, project)
    assert outbox.plan_run(run.id) == 1
    assert outbox.deliver_due() == 1
    key = result_key(run)
    served = client.get(f"/v1/storage/{key}", headers=headers)
    assert served.status_code == 200
    assert s3.objects() == {f"acme/{key}": served.data}
    assert s3.inspect().head_object(Bucket="results", Key=f"acme/{key}")["ContentType"] == (
        "application/json"
    )
    [delivery] = bucket_deliveries(db)
    assert (delivery.status, delivery.attempt, delivery.payload) == (
        "delivered",
        1,
        {"key": f"acme/{key}"},
    )
    bucket = client.get("/v1/storage/bucket", headers=headers).get_json()
    assert bucket["last_push_key"] == f"acme/{key}"
    assert bucket["last_push_at"] is not None and bucket["last_error"] is None


def test_a_redelivered_notify_pushes_once_and_pushing_a_key_again_changes_nothing(
    app, db, project, api_key, s3
):
    credentials = s3.fresh(versioned=True)
    assert connect(app.test_client(), api_key("admin"), credentials.as_body()).status_code == 200
    run = completed_run(db, project)
    key, run_id, public_id = result_key(run), run.id, run.public_id
    outbox.notify_run(public_id)
    outbox.notify_run(public_id)  # the same RQ message, delivered twice
    versions = s3.inspect().list_object_versions(Bucket="results", Prefix=key)["Versions"]
    assert len(versions) == 1
    assert len(bucket_deliveries(db)) == 1
    first = s3.objects()[key]
    buckets.push_run(fresh(db, Run, run_id))  # by hand, as a retry after a lost answer would
    assert s3.objects() == {key: first}


def test_failed_runs_and_projects_without_a_bucket_push_nothing(app, db, project, api_key, s3):
    without = completed_run(db, project)
    assert outbox.plan_run(without.id) == 0
    credentials = s3.fresh()
    assert connect(app.test_client(), api_key("admin"), credentials.as_body()).status_code == 200
    run = service.run_now(make_job(project, name="Failing"))
    assert claim_run(run.id) and fail_run(run.id, "Every source failed.")
    assert outbox.plan_run(run.id) == 0
    assert bucket_deliveries(db) == []
    assert set(s3.objects()) == set()


def test_a_failed_push_is_kept_as_the_last_error_and_retried_after_the_backoff(
    app, db, project, api_key, s3
):
    credentials = s3.fresh()
    assert connect(app.test_client(), api_key("admin"), credentials.as_body()).status_code == 200
    dead = f"http://127.0.0.1:{free_port()}"
    db.session.execute(update(Bucket).values(endpoint=dead))  # the endpoint went away
    db.session.commit()
    run = completed_run(db, project)
    outbox.plan_run(run.id)
    assert outbox.deliver_due() == 1
    [delivery] = bucket_deliveries(db)
    assert (delivery.status, delivery.attempt) == ("pending", 1)
    backoff = app.config["BUCKET_BACKOFF_SECONDS"]
    assert now() + timedelta(seconds=backoff - 2) < delivery.next_attempt_at
    assert delivery.next_attempt_at < now() + timedelta(seconds=backoff + 1)
    bucket = fresh(db, Bucket, db.session.scalar(select(Bucket.id)))
    assert bucket.last_error.startswith(f"Could not connect to {dead}")
    assert bucket.last_error_at is not None and bucket.last_push_at is None
    assert fresh(db, Run, run.id).status == "completed"  # the run is not touched
    db.session.execute(update(Bucket).values(endpoint=credentials.endpoint))  # back again
    db.session.commit()
    assert outbox.deliver_due() == 0  # not due before its backoff
    with time_machine.travel(now() + timedelta(seconds=backoff + 1)):
        assert outbox.deliver_due() == 1
    [delivery] = bucket_deliveries(db)
    assert (delivery.status, delivery.attempt) == ("delivered", 2)
    assert list(s3.objects()) == [result_key(run)]
    bucket = fresh(db, Bucket, bucket.id)
    assert bucket.last_push_key == result_key(run)
    assert bucket.last_push_at > bucket.last_error_at


def test_a_push_for_a_bucket_disconnected_meanwhile_ends_without_retrying(
    app, db, project, api_key, s3
):
    client, headers = app.test_client(), api_key("admin")
    assert connect(client, headers, s3.fresh().as_body()).status_code == 200
    run = completed_run(db, project)
    outbox.plan_run(run.id)
    assert client.delete("/v1/storage/bucket", headers=headers).status_code == 204
    outbox.deliver_due()
    [delivery] = bucket_deliveries(db)
    assert (delivery.status, delivery.attempt) == ("failed", 1)
    assert delivery.last_error == "No bucket is connected any more."
    assert s3.objects() == {}


# --- Settings → Storage -------------------------------------------------------------------------


def test_settings_storage_connects_shows_the_last_push_and_error_and_disconnects(
    client, db, project, s3
):
    page = client.get("/settings/storage")
    assert page.status_code == 200
    assert "No bucket is connected." in page.get_data(as_text=True)
    credentials = s3.fresh()
    form = credentials.as_body(prefix="exports", region="")
    refused = client.post("/settings/storage/bucket", data={**form, "secret_key": "wrong-secret"})
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert re.search(
        r'id="secret_key-error">The test write failed: The secret key does not '
        r"match the access key\.</p>",
        html,
    )
    assert 'name="secret_key" type="password" maxlength="1000" autocomplete="off" required' in html
    assert "wrong-secret" not in html  # a secret typed in is never sent back
    assert f'value="{credentials.access_key}"' in html and 'value="exports"' in html
    assert db.session.scalar(select(Bucket)) is None

    saved = client.post("/settings/storage/bucket", data=form)
    assert saved.status_code == 303
    html = client.get("/settings/storage").get_data(as_text=True)
    assert "<code>results</code> / <code>exports/</code>" in html
    assert "none yet" in html
    assert credentials.secret_key not in html

    run = completed_run(db, project)
    outbox.plan_run(run.id)
    outbox.deliver_due()
    db.session.execute(
        update(Bucket).values(last_error="<script>alert(1)</script> refused", last_error_at=now())
    )
    db.session.commit()
    html = client.get("/settings/storage").get_data(as_text=True)
    assert f"exports/{result_key(run)}" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; refused" in html
    assert "<script>alert(1)" not in html

    gone = client.post("/settings/storage/bucket/disconnect")
    assert gone.status_code == 303
    assert "No bucket is connected." in client.get("/settings/storage").get_data(as_text=True)
    assert db.session.scalar(select(Bucket)) is None
