"""Silent stops are visible: /healthz per component, `overdue` jobs, and an unreachable
Redis that the API survives (the rate limiter fails open) and the dashboard names."""

from __future__ import annotations

from datetime import timedelta

from conftest import login, make_job
from redis import Redis
from sqlalchemy import update

from webapp import create_app
from webapp.launcher import free_port
from webapp.models import Job
from webapp.queueing import HEARTBEATS_KEY, beat
from webapp.timeutil import now


def test_healthz_is_degraded_until_a_scheduler_and_a_worker_send_heartbeats(
    anonymous, redis_url
):
    response = anonymous.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == body["checks"]["redis"] == "ok"
    assert body["checks"]["scheduler"] == "no scheduler has sent a heartbeat"
    redis = Redis.from_url(redis_url)
    beat(redis, "scheduler", "host.1")
    beat(redis, "worker", "host.2")
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "scheduler": "ok", "workers": "ok"},
    }


def test_healthz_names_a_scheduler_whose_heartbeat_went_stale(anonymous, redis_url):
    redis = Redis.from_url(redis_url)
    beat(redis, "worker", "host.2")
    redis.zadd(HEARTBEATS_KEY.format(kind="scheduler"), {"host.1": now().timestamp() - 95})
    response = anonymous.get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["scheduler"].startswith("no scheduler heartbeat for 9")


def test_an_active_job_whose_slot_passed_without_a_run_is_overdue(
    app, db, client, project, api_key
):
    late = make_job(project, name="Late")
    on_time = make_job(project, name="On time")
    db.session.execute(
        update(Job).where(Job.id == late.id).values(next_run_at=now() - timedelta(minutes=5))
    )
    db.session.commit()
    headers = api_key("read")
    assert client.get(f"/v1/jobs/{late.public_id}", headers=headers).get_json()["overdue"] is True
    assert client.get(f"/v1/jobs/{on_time.public_id}", headers=headers).get_json()["overdue"] is False
    page = client.get("/jobs").get_data(as_text=True)
    assert page.count('class="badge badge-overdue"') == 1
    detail = client.get(f"/jobs/{late.public_id}").get_data(as_text=True)
    assert "badge-overdue" in detail


def test_with_redis_unreachable_the_api_answers_and_the_dashboard_says_so(
    test_env, monkeypatch, tmp_path
):
    from webapp.api.auth import create_api_key
    from webapp.extensions import db

    from conftest import make_user

    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    monkeypatch.setenv("BYTESTACK_REDIS_TIMEOUT", "0.5")
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SERVER_NAME": "localhost"})
    with app.app_context():
        db.create_all()
        try:
            from webapp.jobs.service import default_project

            project = default_project()
            _, secret = create_api_key(project, "write")
            owner = make_user("owner@example.com", "owner", project)
            client = app.test_client()
            headers = {"Authorization": f"Bearer {secret}"}
            response = client.get("/v1/jobs", headers=headers)
            assert response.status_code == 200  # the limiter failed open
            created = client.post("/v1/jobs", headers=headers, json={
                "name": "Acme", "prompt": "acme", "sources": ["hackernews"], "schedule": "daily",
            })
            assert created.status_code == 201  # the entry is left to reconcile
            run = client.post(f"/v1/jobs/{created.get_json()['id']}/run", headers=headers)
            assert run.status_code == 202 and run.get_json()["status"] == "queued"
            health = client.get("/healthz")
            assert health.status_code == 503
            assert health.get_json()["checks"]["redis"].startswith("unreachable")
            page = login(app.test_client(), owner, project).get("/jobs")
            assert page.status_code == 200
            assert "The queue (Redis) is unreachable" in page.get_data(as_text=True)
        finally:
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
