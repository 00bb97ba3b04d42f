"""The bucket push end to end, with real processes: a run worker, a notifications worker (and a
scheduler, whose sweep wakes the senders for retries), a local feed server and a real S3 server
(moto in server mode). Each completed run's result file lands once, under its key, as the
bytes GET /v1/storage/{key} serves; with the S3 server down the run still completes, and its
push is retried until the server is back, then lands."""

from __future__ import annotations

import json

import pytest
from conftest import make_job
from feeds import rss_document, wait_until
from helpers import fresh, runs_of
from s3 import S3Server, shared_s3
from sqlalchemy import select

from webapp.jobs.service import run_now
from webapp.models import Job, Run
from webapp.notifications.models import Delivery
from webapp.settings.models import Bucket
from webapp.storage.bucket import connect_bucket
from webapp.storage.service import result_key

pytestmark = pytest.mark.integration

TEST_OBJECT = ".bytestack-connection-test"


def items(count: int) -> list[dict]:
    return [
        {"title": f"Acme story {n}", "link": f"https://news.example.com/a/{n}"}
        for n in range(count)
    ]


def bucket_deliveries(db) -> list[Delivery]:
    db.session.expire_all()
    deliveries = db.session.scalars(
        select(Delivery).where(Delivery.kind == "bucket").order_by(Delivery.id)
    ).all()
    db.session.rollback()
    return deliveries


def run_to_completion(db, job: Job, processes) -> Run:
    wait_until(lambda: fresh(db, Job, job.id).state == "active", 30, message="the job at rest")
    before = len(runs_of(db, job, "completed"))
    run_now(fresh(db, Job, job.id))
    runs = wait_until(
        lambda: runs_of(db, job, "completed")[before:],
        30,
        message=f"a completed run\n{processes.log('worker')}",
    )
    return runs[0]


def served(app, api_key, run: Run) -> bytes:
    response = app.test_client().get(f"/v1/storage/{result_key(run)}", headers=api_key("read"))
    assert response.status_code == 200
    return response.data


def test_each_completed_run_lands_once_in_the_bucket_under_its_key(
    app, db, project, api_key, feed_server, processes
):
    s3 = shared_s3()
    credentials = s3.fresh(versioned=True)
    connect_bucket(project, credentials.as_body(prefix="pipeline"))
    found = items(2)
    url = feed_server.serve("/feed.xml", lambda: rss_document(found))
    job = make_job(project, sources=[url], prompt="acme", date_range={"last": "7d"})
    processes.worker()
    processes.notifier()

    first = run_to_completion(db, job, processes)
    found.append({"title": "Acme story 9", "link": "https://news.example.com/a/9"})
    second = run_to_completion(db, job, processes)
    keys = {f"pipeline/{result_key(run)}": run for run in (first, second)}
    wait_until(
        lambda: set(s3.objects()) == set(keys),
        30,
        message=f"both result files in the bucket\n{processes.log('notifier')}",
    )
    objects = s3.objects()
    for key, run in keys.items():
        assert objects[key] == served(app, api_key, run)
        body = json.loads(objects[key])
        assert (body["run_id"], body["record_count"]) == (run.public_id, run.record_count)
    assert [r["title"] for r in json.loads(objects[f"pipeline/{result_key(second)}"])["records"]]
    # Once each: one delivery per run, one attempt, one version of each object.
    deliveries = bucket_deliveries(db)
    assert [(d.run_id, d.status, d.attempt) for d in deliveries] == [
        (first.id, "delivered", 1),
        (second.id, "delivered", 1),
    ]
    assert s3.history() == sorted(
        [(key, "version") for key in keys]
        + [(f"pipeline/{TEST_OBJECT}", "version"), (f"pipeline/{TEST_OBJECT}", "deleted")]
    )
    bucket = db.session.scalar(select(Bucket))
    assert bucket.last_push_key == f"pipeline/{result_key(second)}"
    assert bucket.last_error is None


def test_with_the_bucket_down_the_run_completes_and_its_push_lands_when_it_is_back(
    app, db, project, api_key, feed_server, processes
):
    s3 = S3Server().start()
    try:
        credentials = s3.fresh()
        connect_bucket(project, credentials.as_body())
        s3.stop()
        url = feed_server.serve("/feed.xml", rss_document(items(3)))
        job = make_job(project, sources=[url], prompt="acme", date_range={"last": "7d"})
        processes.env["BYTESTACK_BUCKET_BACKOFF_SECONDS"] = "1"
        processes.worker()
        processes.notifier()
        processes.scheduler()  # its sweep wakes the senders when a retry falls due

        run = run_to_completion(db, job, processes)
        assert (run.record_count, run.error) == (3, None)
        assert fresh(db, Job, job.id).state == "active"
        # A second attempt has failed too, and a third waits for its backoff.
        retried = wait_until(
            lambda: [d for d in bucket_deliveries(db) if d.attempt >= 2 and d.status == "pending"],
            60,
            message=f"a second failed attempt\n{processes.log('notifier')}",
        )[0]
        assert retried.last_error.startswith(f"Could not connect to {s3.endpoint}")
        bucket = fresh(db, Bucket, db.session.scalar(select(Bucket.id)))
        assert bucket.last_error.startswith(f"Could not connect to {s3.endpoint}")
        assert bucket.last_push_at is None
        assert fresh(db, Run, run.id).status == "completed"  # a failed push never touches it

        s3.start()  # back, on the same port, with the same bucket
        delivered = wait_until(
            lambda: [d for d in bucket_deliveries(db) if d.status == "delivered"],
            60,
            message=f"the push landing\n{processes.log('notifier')}",
        )
        assert len(delivered) == 1 and delivered[0].attempt >= 3
        assert s3.objects() == {result_key(run): served(app, api_key, run)}
        bucket = fresh(db, Bucket, bucket.id)
        assert bucket.last_push_key == result_key(run)
        assert bucket.last_push_at > bucket.last_error_at
    finally:
        s3.stop()
