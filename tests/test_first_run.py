"""A public install's first run: on an address other than loopback `/setup` asks for the
setup token printed in the web's log; `flask create-owner` does the same from a shell."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from helpers import platform_env, web_process
from sqlalchemy import select

from webapp.accounts.models import Membership, User
from webapp.accounts.service import setup_token

ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "correct horse battery"


# --- a public install's first run --------------------------------------------------------------


def setup_page(client, listening: str, method: str = "GET", **kwargs):
    """A request as it arrives on a server listening on `listening` (gunicorn and werkzeug
    put that address in SERVER_NAME)."""
    return client.open(
        "/setup", method=method, environ_overrides={"SERVER_NAME": listening}, **kwargs
    )


OWNER_FORM = {"email": "ana@example.com", "password": PASSWORD, "name": "Ana"}


@pytest.mark.parametrize("listening", ["0.0.0.0", "::", "10.1.2.3", "jobs.example.com"])
def test_on_a_public_address_set_up_needs_the_token_from_the_log(
    app, anonymous, db, listening, caplog, monkeypatch
):
    from webapp.accounts import views

    monkeypatch.setattr(views, "_token_logged_at", 0.0)  # a fresh process: it prints at once
    token = setup_token(app.config["SECRET_KEY"])
    page = setup_page(anonymous, listening)
    assert page.status_code == 200 and 'name="setup_token"' in page.text
    assert f"setup token {token}" in caplog.text
    for wrong in ({}, {"setup_token": "guess"}, {"setup_token": token[:-1]}):
        refused = setup_page(anonymous, listening, "POST", data={**OWNER_FORM, **wrong})
        assert refused.status_code == 403 and 'id="setup_token-error"' in refused.text
    assert db.session.scalar(select(User.id)) is None
    created = setup_page(anonymous, listening, "POST", data={**OWNER_FORM, "setup_token": token})
    assert created.status_code == 303
    assert db.session.scalars(select(Membership.role)).all() == ["owner"]


@pytest.mark.parametrize("listening", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_on_loopback_set_up_asks_for_no_token(anonymous, db, listening):
    assert 'name="setup_token"' not in setup_page(anonymous, listening).text
    assert setup_page(anonymous, listening, "POST", data=OWNER_FORM).status_code == 303


def test_behind_a_trusted_proxy_set_up_needs_the_token_even_on_loopback(app_with):
    client = app_with(BYTESTACK_TRUSTED_PROXIES="1").test_client()
    assert 'name="setup_token"' in setup_page(client, "127.0.0.1").text
    assert setup_page(client, "127.0.0.1", "POST", data=OWNER_FORM).status_code == 403


def test_the_link_in_the_log_fills_the_token_in(app, anonymous):
    token = setup_token(app.config["SECRET_KEY"])
    page = anonymous.get(f"/setup?token={token}", environ_overrides={"SERVER_NAME": "0.0.0.0"})
    assert f'value="{token}"' in page.text


def test_create_owner_from_a_shell(app, db, project):
    runner = app.test_cli_runner()
    done = runner.invoke(
        args=["create-owner", "--email", "Ana@Example.com", "--name", "Ana"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert done.exit_code == 0, done.output
    assert "Created the owner account ana@example.com" in done.output
    member = db.session.scalars(select(Membership)).one()
    assert (member.role, member.project_id) == ("owner", project.id)
    again = runner.invoke(
        args=["create-owner", "--email", "eve@example.com"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert again.exit_code != 0 and "already has an owner" in again.output


def test_create_owner_explains_a_bad_password(app, db):
    short = app.test_cli_runner().invoke(
        args=["create-owner", "--email", "ana@example.com"], input="short\nshort\n"
    )
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    assert db.session.scalar(select(User.id)) is None


@pytest.fixture
def public_web(app, test_env, tmp_path):
    """gunicorn as the Procfile starts it, listening on every address (0.0.0.0), production
    by default; this test only talks to it through 127.0.0.1. Plain HTTP here, so the
    session cookie is allowed without https."""
    log_path = tmp_path / "web.log"
    env = platform_env(test_env, BYTESTACK_SECURE_COOKIES="0")
    with web_process(env, "0.0.0.0", log_path) as (base, _process):
        yield base, log_path


def test_a_fresh_public_deploy_asks_for_the_token_its_log_prints(public_web, db):
    base, log_path = public_web
    with httpx.Client(base_url=base, timeout=10) as browser:
        page = browser.get("/setup")
        assert page.status_code == 200 and 'name="setup_token"' in page.text
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"  # production
        logged = re.search(r"setup token ([0-9a-f]{32})", log_path.read_text(errors="replace"))
        assert logged, log_path.read_text(errors="replace")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        refused = browser.post("/setup", data={**OWNER_FORM, "csrf_token": csrf})
        assert refused.status_code == 403
        created = browser.post(
            "/setup",
            data={**OWNER_FORM, "csrf_token": csrf, "setup_token": logged.group(1)},
        )
        assert created.status_code == 303, created.text
    db.session.rollback()
    assert db.session.scalars(select(User.email)).all() == ["ana@example.com"]
