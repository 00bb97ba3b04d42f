"""The web process while PostgreSQL is unreachable: a real gunicorn whose database goes
through a TCP proxy that the test SIGKILLs (every open connection dropped, every new one
refused), then starts again.

DESIGN.md: "No process dies of a blip", and bad moments get a clear answer, never a 500 or a
traceback. The dashboard, the API and /healthz each say the database is unreachable (503,
`Retry-After`), nothing half-written is left behind, and everything answers again, in the
same signed-in session, once the database is back.
"""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import PASSWORD, make_user
from feeds import wait_until
from helpers import platform_env, web_process
from sqlalchemy import func, select

from webapp.models import Job

pytestmark = pytest.mark.integration


@pytest.fixture
def web(app, db, test_env, database_proxy, tmp_path):
    """gunicorn as the Procfile starts it (production defaults, plain HTTP on loopback),
    its database behind the proxy."""
    log_path = tmp_path / "web.log"
    env = platform_env(test_env, DATABASE_URL=database_proxy.url, BYTESTACK_SECURE_COOKIES="0")
    with web_process(env, "127.0.0.1", log_path) as (base, process):
        yield base, log_path, process
    print(f"--- web.log (end) ---\n{log_path.read_text(errors='replace')[-3000:]}")


def sign_in(browser: httpx.Client, email: str) -> None:
    page = browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    signed = browser.post("/login", data={"email": email, "password": PASSWORD,
                                          "csrf_token": csrf})
    assert signed.status_code == 303, signed.text


def job_count(db) -> int:
    count = db.session.scalar(select(func.count(Job.id)))
    db.session.rollback()
    return count


def test_with_the_database_unreachable_every_answer_says_so_and_all_recovers(
    web, db, project, api_key, database_proxy
):
    base, log_path, process = web
    make_user("owner@example.com", "owner", project)
    key = api_key("write")
    new_job = {"name": "Acme", "prompt": "acme", "sources": ["hackernews"],
               "schedule": "every_6_hours"}
    with httpx.Client(base_url=base, timeout=20) as browser, \
            httpx.Client(base_url=base, timeout=20, headers=key) as api:
        sign_in(browser, "owner@example.com")
        assert browser.get("/jobs").status_code == 200
        assert api.get("/v1/jobs").status_code == 200
        jobs_before = job_count(db)

        database_proxy.cut()

        listed = api.get("/v1/jobs")
        assert listed.status_code == 503
        # 5 s, or the rate limit's window when it ends later (the limiter keeps the later one).
        assert int(listed.headers["Retry-After"]) >= 5
        assert listed.json()["error"]["code"] == "database_unavailable"
        assert "cannot be reached" in listed.json()["error"]["message"]
        created = api.post("/v1/jobs", json=new_job)
        assert created.status_code == 503
        assert created.json()["error"]["code"] == "database_unavailable"

        page = browser.get("/jobs")
        assert page.status_code == 503
        assert int(page.headers["Retry-After"]) >= 5
        assert "Database unreachable" in page.text and 'http-equiv="refresh"' in page.text
        assert "Traceback" not in page.text and "OperationalError" not in page.text
        panel = browser.get("/jobs", headers={"HX-Request": "true"})
        assert panel.status_code == 503 and panel.headers["HX-Reswap"] == "none"
        boosted = browser.get("/jobs", headers={"HX-Request": "true", "HX-Boosted": "true"})
        assert boosted.status_code == 503 and "HX-Reswap" not in boosted.headers

        health = httpx.get(base + "/healthz", timeout=20)
        assert health.status_code == 503
        assert health.json()["checks"]["database"].startswith("unreachable")
        assert process.poll() is None, "gunicorn died with its database"

        database_proxy.start()

        wait_until(lambda: api.get("/v1/jobs").status_code == 200, 20,
                   message="the API answering again")
        assert browser.get("/jobs").status_code == 200, "the signed-in session survives"
        # The POST that answered 503 left nothing behind.
        assert job_count(db) == jobs_before
        assert api.post("/v1/jobs", json=new_job).status_code == 201
        assert job_count(db) == jobs_before + 1
    log = log_path.read_text(errors="replace")
    assert "database unavailable on GET /v1/jobs" in log
    assert "unhandled error" not in log


def test_a_database_that_cannot_be_opened_answers_503_not_500(test_env, monkeypatch, tmp_path):
    """The same answers in-process, on any backend: a SQLite file in a folder that is gone
    (a volume not mounted) cannot be opened, and every request says so."""
    from webapp import create_app

    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'unmounted' / 'db.sqlite3'}")
    client = create_app({"TESTING": True}).test_client()
    api = client.get("/v1/jobs", headers={"Authorization": "Bearer bsk_anything"})
    assert api.status_code == 503
    assert api.json["error"] == {
        "code": "database_unavailable",
        "message": "The database cannot be reached right now. Try again in a few seconds.",
    }
    page = client.get("/jobs")
    assert page.status_code == 503 and b"Database unreachable" in page.data
    assert client.get("/healthz").status_code == 503
