"""Accounts: first-run owner, sign-in, sessions, passwords, invitations, projects and roles."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from conftest import PASSWORD, login, make_job, make_user
from sqlalchemy import select

from webapp.accounts.models import Invitation, Membership, User
from webapp.accounts.service import create_invitation


def test_a_fresh_install_sends_every_page_to_set_up(anonymous):
    for path in ("/", "/jobs", "/query", "/jobs/new"):
        response = anonymous.get(path, follow_redirects=True)
        assert response.request.path == "/setup", path
    assert "Create owner account" in anonymous.get("/setup").text


def test_set_up_creates_the_owner_once_and_stores_no_plain_password(anonymous, db, project):
    bad = anonymous.post("/setup", data={"email": "nope", "password": "short"})
    assert bad.status_code == 422
    assert 'id="email-error"' in bad.text and 'id="password-error"' in bad.text
    created = anonymous.post(
        "/setup", data={"email": "Ana@Example.com", "password": PASSWORD, "name": "Ana"}
    )
    assert created.status_code == 303
    user = db.session.scalars(select(User)).one()
    assert user.email == "ana@example.com"
    assert PASSWORD not in user.password_hash and user.password_hash.startswith("scrypt:")
    member = db.session.scalars(select(Membership)).one()
    assert (member.role, member.project_id) == ("owner", project.id)
    assert anonymous.get("/jobs").status_code == 200  # signed in right away
    again = anonymous.post("/setup", data={"email": "eve@example.com", "password": PASSWORD})
    assert again.status_code == 302
    assert db.session.scalar(select(User).where(User.email == "eve@example.com")) is None


def test_sign_in_and_out(anonymous, owner):
    wrong = anonymous.post("/login", data={"email": owner.email, "password": "wrong password"})
    assert wrong.status_code == 401 and "do not match" in wrong.text
    assert anonymous.get("/jobs").status_code == 302
    ok = anonymous.post(
        "/login?next=/query", data={"email": "OWNER@example.com", "password": PASSWORD}
    )
    assert ok.status_code == 303 and ok.headers["Location"] == "/query"
    assert anonymous.get("/jobs").status_code == 200
    assert anonymous.post("/logout").status_code == 303
    assert anonymous.get("/jobs").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example.com/", "//evil.example.com/x", "/\\evil"])
def test_sign_in_never_redirects_off_site(anonymous, owner, target):
    response = anonymous.post(
        f"/login?next={target}", data={"email": owner.email, "password": PASSWORD}
    )
    assert response.headers["Location"] == "/jobs"


# Browsers drop tabs and newlines from a URL, so "/\t/evil.example.com" is "//evil.example.com"
# to them; a newline in a Location header is also no header werkzeug can send.
CONTROL_TARGETS = [
    "/%09/evil.example.com", "/%0a/evil.example.com", "/%0d/evil.example.com",
    "/%0d%0aSet-Cookie:x=1", "/%00/evil.example.com", "/%1f/evil.example.com",
    "/%7f/evil.example.com", "/%09%09/evil.example.com", "%09//evil.example.com",
]


@pytest.mark.parametrize("target", CONTROL_TARGETS)
def test_sign_in_refuses_a_next_with_control_characters(anonymous, owner, target):
    response = anonymous.post(
        f"/login?next={target}", data={"email": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/jobs"


@pytest.mark.parametrize("target", CONTROL_TARGETS)
def test_a_signed_in_visit_and_a_project_switch_refuse_control_characters_in_next(
    client, project, target
):
    visit = client.get(f"/login?next={target}")
    assert visit.status_code == 302 and visit.headers["Location"] == "/jobs"
    switch = client.post(
        "/projects/switch", data={"project_id": project.id, "next": unquote(target)}
    )
    assert switch.status_code == 303 and switch.headers["Location"] == "/jobs"


def test_a_plain_next_path_with_a_query_is_kept(anonymous, owner):
    response = anonymous.post(
        "/login?next=/storage%3Fjob_id%3Djob_1%26q%3Da%2Bb",
        data={"email": owner.email, "password": PASSWORD},
    )
    assert response.headers["Location"] == "/storage?job_id=job_1&q=a+b"


def test_sign_in_is_rate_limited_with_retry_after(anonymous, owner):
    for _ in range(10):
        anonymous.post("/login", data={"email": owner.email, "password": "wrong password"})
    limited = anonymous.post("/login", data={"email": owner.email, "password": PASSWORD})
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "Traceback" not in limited.text


def test_a_partial_without_a_session_asks_htmx_to_go_to_sign_in(anonymous, owner, project):
    job = make_job(project)
    response = anonymous.get(f"/jobs/{job.public_id}/row", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=")


def test_changing_the_password_ends_other_sessions(app, owner, project):
    first = login(app.test_client(), owner, project)
    second = login(app.test_client(), owner, project)
    refused = first.post(
        "/account", data={"current_password": "nope", "password": "another long one"}
    )
    assert refused.status_code == 422 and 'id="current_password-error"' in refused.text
    changed = first.post(
        "/account", data={"current_password": PASSWORD, "password": "another long one"}
    )
    assert changed.status_code == 303
    assert first.get("/jobs").status_code == 200
    assert second.get("/jobs").status_code == 302  # the other session is signed out


def test_signing_out_ends_that_session_everywhere_a_copy_of_its_cookie_is(app, owner, project):
    browser = app.test_client()
    signed_in = browser.post(
        "/login", data={"email": owner.email, "password": PASSWORD, "remember": "on"}
    )
    assert signed_in.status_code == 303
    copy = app.test_client()  # someone who copied both cookies before the sign-out
    for name in ("session", "remember_token"):
        cookie = browser.get_cookie(name)
        assert cookie is not None, name
        copy.set_cookie(name, cookie.value)
    assert copy.get("/jobs").status_code == 200
    other_device = login(app.test_client(), owner, project)
    assert browser.post("/logout").status_code == 303
    assert copy.get("/jobs").status_code == 302
    assert browser.get("/jobs").status_code == 302
    assert other_device.get("/jobs").status_code == 302  # the person's other sessions end too
    again = app.test_client()
    again.post("/login", data={"email": owner.email, "password": PASSWORD})
    assert again.get("/jobs").status_code == 200  # signing in again works


def test_an_invited_viewer_joins_reads_and_cannot_change(app, anonymous, owner, project, db):
    job = make_job(project, name="Watched")
    _, token = create_invitation(project, "viewer", owner)
    page = anonymous.get(f"/invite/{token}")
    assert page.status_code == 200 and "viewer" in page.text
    joined = anonymous.post(
        f"/invite/{token}", data={"email": "vic@example.com", "password": PASSWORD, "name": "Vic"}
    )
    assert joined.status_code == 303
    listing = anonymous.get("/jobs").text
    assert "Watched" in listing
    assert "New Job" not in listing and ">Pause<" not in listing and ">Run now<" not in listing
    assert anonymous.post(f"/jobs/{job.public_id}/pause").status_code == 403
    assert anonymous.get("/jobs/new").status_code == 403
    db.session.refresh(job)
    assert job.state == "active"
    assert anonymous.get(f"/invite/{token}").status_code == 404  # one-time link


def test_an_existing_account_accepts_an_invitation_to_another_project(app, owner, project, db):
    from webapp.jobs.service import ensure_project

    other = ensure_project("Research")
    boss = make_user("boss@example.com", "owner", other)
    _, token = create_invitation(other, "editor", boss)
    client = login(app.test_client(), owner, project)
    assert client.post(f"/invite/{token}").status_code == 303
    assert "Research" in client.get("/projects").text
    invitation = db.session.scalars(select(Invitation)).one()
    assert invitation.accepted_by_id == owner.id


def test_expired_and_unknown_invitations_are_refused(anonymous, owner, project, db):
    from datetime import timedelta

    from webapp.timeutil import now

    invitation, token = create_invitation(project, "editor", owner)
    invitation.expires_at = now() - timedelta(seconds=1)
    db.session.commit()
    assert anonymous.get(f"/invite/{token}").status_code == 404
    assert anonymous.get("/invite/made-up").status_code == 404
    assert db.session.scalar(select(Invitation.token_hash)) != token  # stored hashed


def test_projects_are_created_switched_and_kept_apart(client, project, db):
    make_job(project, name="In default")
    created = client.post("/projects", data={"name": "Second"})
    assert created.status_code == 303
    listing = client.get("/jobs").text
    assert "In default" not in listing and "No jobs yet" in listing
    duplicate = client.post("/projects", data={"name": "Second"})
    assert duplicate.status_code == 422 and "already exists" in duplicate.text
    assert client.post("/projects/switch", data={"project_id": project.id}).status_code == 303
    assert "In default" in client.get("/jobs").text


def test_switching_to_a_project_you_are_not_in_is_refused(client, db):
    from webapp.jobs.service import ensure_project

    other = ensure_project("Not mine")
    assert client.post("/projects/switch", data={"project_id": other.id}).status_code == 404


def test_another_projects_job_is_not_found(persona, project):
    job = make_job(project)
    outsider = persona("outsider")
    base = f"/jobs/{job.public_id}"
    for path in (base, f"{base}/row", f"{base}/edit"):
        assert outsider.get(path).status_code == 404, path
    assert outsider.post(f"/jobs/{job.public_id}/delete").status_code == 404


def test_the_cli_applies_a_persons_role_when_asked(app, owner, project):
    viewer = make_user("viewer@example.com", "viewer", project)
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["create-api-key", "--scope", "read", "--user", viewer.email])
    assert refused.exit_code != 0 and "only owners" in refused.output
    allowed = runner.invoke(args=["create-api-key", "--scope", "read", "--user", owner.email])
    assert allowed.exit_code == 0
    assert re.fullmatch(r"bsk_[\w-]+", allowed.stdout.strip().splitlines()[-1])


def test_session_cookies_are_http_only_and_same_site(anonymous, owner):
    response = anonymous.post("/login", data={"email": owner.email, "password": PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
