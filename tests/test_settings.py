"""Settings: General, API Keys, Members, Webhooks and Sources through the dashboard (owners
only), the admin API for keys and webhooks, and secrets encrypted at rest."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qs

import pytest
from conftest import PASSWORD, login, make_job, make_user
from receiver import Receiver
from sqlalchemy import func, select, text

from webapp.accounts.models import Invitation, Membership, User
from webapp.api.auth import create_api_key
from webapp.config import ConfigError, load
from webapp.crypto import DecryptionError, decrypt, derive_key, encrypt
from webapp.jobs import service as jobs_service
from webapp.jobs.service import ensure_project
from webapp.models import ApiKey, Job, Project, Run
from webapp.notifications import outbox
from webapp.notifications.models import Delivery
from webapp.runs.executor import execute_run
from webapp.runs.lifecycle import claim_run, complete_run
from webapp.settings.credentials import project_credentials
from webapp.settings.models import SourceCredential, Webhook, WebhookDelivery
from webapp.timeutil import now

CREDENTIAL_VARIABLES = (
    "BYTESTACK_YOUTUBE_API_KEY",
    "BYTESTACK_X_BEARER_TOKEN",
    "BYTESTACK_GITHUB_TOKEN",
)


@pytest.fixture(autouse=True)
def no_credentials_in_the_environment(monkeypatch):
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def other_project(app):
    return ensure_project("Elsewhere")


def revealed(response) -> str:
    """The secret a page shows once (the readonly input of the "revealed" box)."""
    match = re.search(r'id="revealed-value"[^>]*value="([^"]+)"', response.text)
    assert match, "no revealed secret on the page"
    return html.unescape(match.group(1))


def row(response, element_id: str) -> str:
    """The HTML of one table row or card, by its id."""
    match = re.search(
        rf'<(tr|article|section) [^>]*id="{re.escape(element_id)}".*?</\1>',
        response.text,
        re.DOTALL,
    )
    assert match, f"no element {element_id}"
    return match.group(0)


def raw_row(db, table: str, row_id: int) -> str:
    """Every column of a row as the database stores it, joined into one string."""
    values = db.session.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}).one()
    return " ".join(str(value) for value in values)


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def assert_error(response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert error.get("field") == field


# --- General ------------------------------------------------------------------------------


def test_settings_open_on_general_and_every_section_is_in_the_section_nav(client):
    assert client.get("/settings").headers["Location"] == "/settings/general"
    for path, label in (
        ("/settings/general", "General"),
        ("/settings/api-keys", "API Keys"),
        ("/settings/members", "Members"),
        ("/settings/webhooks", "Webhooks"),
        ("/settings/sources", "Sources"),
    ):
        page = client.get(path)
        assert page.status_code == 200, path
        assert f'<a href="{path}" aria-current="page">{label}</a>' in page.text


def test_owner_renames_the_project(client, db, project, other_project):
    renamed = client.post("/settings/general", data={"name": "  Acme Watch "})
    assert renamed.status_code == 303 and renamed.headers["Location"] == "/settings/general"
    db.session.expire_all()
    assert db.session.get(Project, project.id).name == "Acme Watch"
    page = client.get("/settings/general")
    assert "The project is now called Acme Watch." in page.text
    assert 'value="Acme Watch"' in page.text

    for bad in ("", "   ", "x" * 101, "Elsewhere"):
        refused = client.post("/settings/general", data={"name": bad})
        assert refused.status_code == 422, bad
        assert 'id="name-error"' in refused.text and 'aria-invalid="true"' in refused.text
    db.session.expire_all()
    assert db.session.get(Project, project.id).name == "Acme Watch"


# --- API keys -----------------------------------------------------------------------------


def test_a_key_created_in_settings_is_shown_once_and_works(client, db, project):
    created = client.post("/settings/api-keys", data={"name": "CI export", "scope": "read"})
    assert created.status_code == 200
    assert created.headers["Cache-Control"] == "no-store"
    secret = revealed(created)
    assert secret.startswith("bsk_")

    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200
    key = db.session.scalars(select(ApiKey)).one()
    assert (key.name, key.scope, key.project_id) == ("CI export", "read", project.id)
    assert secret not in raw_row(db, "api_keys", key.id)

    listed = client.get("/settings/api-keys")
    assert secret not in listed.text
    assert key.prefix in row(listed, f"key-{key.public_id}")


def test_the_key_list_shows_when_each_key_was_last_used(client, db, project):
    _, secret = create_api_key(project, "read", "Dashboard sync")
    key = db.session.scalars(select(ApiKey)).one()
    assert "never" in row(client.get("/settings/api-keys"), f"key-{key.public_id}")

    client.get("/v1/jobs", headers=bearer(secret))
    db.session.expire_all()
    used_at = db.session.get(ApiKey, key.id).last_used_at
    assert used_at is not None
    listed = row(client.get("/settings/api-keys"), f"key-{key.public_id}")
    assert "never" not in listed
    assert used_at.isoformat().replace("+00:00", "Z") in listed


def test_a_key_revoked_in_settings_gets_401(client, db, project):
    _, secret = create_api_key(project, "write", "Old laptop")
    key = db.session.scalars(select(ApiKey)).one()
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200

    revoked = client.post(f"/settings/api-keys/{key.public_id}/revoke")
    assert revoked.status_code == 303 and revoked.headers["Location"] == "/settings/api-keys"
    assert_error(client.get("/v1/jobs", headers=bearer(secret)), 401, "unauthorized")
    listed = client.get("/settings/api-keys")
    assert "is revoked" in listed.text
    assert "revoked" in row(listed, f"key-{key.public_id}")
    assert "Revoke" not in row(listed, f"key-{key.public_id}")


def test_the_key_form_shows_errors_next_to_its_fields(client, db):
    refused = client.post("/settings/api-keys", data={"name": " ", "scope": "root"})
    assert refused.status_code == 422
    assert 'id="name-error"' in refused.text and 'id="scope-error"' in refused.text
    assert 'id="revealed-value"' not in refused.text
    assert db.session.scalar(select(func.count(ApiKey.id))) == 0


def test_revoking_a_key_of_another_project_is_404(client, db, other_project):
    theirs, secret = create_api_key(other_project, "admin", "Theirs")
    assert client.post(f"/settings/api-keys/{theirs.public_id}/revoke").status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiKey, theirs.id).revoked_at is None
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200
    assert "Theirs" not in client.get("/settings/api-keys").text


# --- Members ------------------------------------------------------------------------------


def test_an_invitation_link_is_shown_once_and_lets_a_new_person_join(
    client, anonymous, db, project
):
    created = client.post("/settings/invitations", data={"role": "editor"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    link = revealed(created)
    assert link.startswith("http://localhost/invite/")
    token = link.rsplit("/", 1)[1]
    invitation = db.session.scalars(select(Invitation)).one()
    assert token not in raw_row(db, "invitations", invitation.id)

    members = client.get("/settings/members")
    assert link not in members.text
    assert "editor" in row(members, f"invitation-{invitation.public_id}")

    assert anonymous.get(f"/invite/{token}").status_code == 200
    joined = anonymous.post(
        f"/invite/{token}", data={"email": "new@example.com", "password": PASSWORD, "name": "Nia"}
    )
    assert joined.status_code == 303
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert (membership.project_id, membership.role) == (project.id, "editor")
    assert anonymous.get("/jobs").status_code == 200  # signed in as the new member

    assert anonymous.get(f"/invite/{token}").status_code == 404  # one time only
    members = client.get("/settings/members")
    assert "editor" in row(members, f"member-{user.public_id}")
    assert f"invitation-{invitation.public_id}" not in members.text


def test_a_revoked_invitation_link_no_longer_works(client, anonymous, db):
    token = revealed(client.post("/settings/invitations", data={"role": "viewer"})).rsplit("/", 1)[
        1
    ]
    invitation = db.session.scalars(select(Invitation)).one()
    revoked = client.post(f"/settings/invitations/{invitation.public_id}/revoke")
    assert revoked.status_code == 303
    assert anonymous.get(f"/invite/{token}").status_code == 404
    assert f"invitation-{invitation.public_id}" not in client.get("/settings/members").text


def test_an_invitation_needs_a_known_role(client, db):
    refused = client.post("/settings/invitations", data={"role": "admin"})
    assert refused.status_code == 422 and 'id="role-error"' in refused.text
    assert db.session.scalar(select(func.count(Invitation.id))) == 0


def test_owner_changes_a_role_and_removes_a_member(client, db, project):
    editor = make_user("ed@example.com", "editor", project)
    changed = client.post(f"/settings/members/{editor.public_id}/role", data={"role": "viewer"})
    assert changed.status_code == 303
    membership = db.session.scalar(select(Membership).where(Membership.user_id == editor.id))
    db.session.refresh(membership)
    assert membership.role == "viewer"
    assert "ed@example.com is now viewer." in client.get("/settings/members").text

    bad = client.post(f"/settings/members/{editor.public_id}/role", data={"role": "king"})
    assert bad.status_code == 422 and f'id="row-{editor.public_id}-error"' in bad.text

    removed = client.post(f"/settings/members/{editor.public_id}/remove")
    assert removed.status_code == 303
    assert db.session.scalar(select(Membership).where(Membership.user_id == editor.id)) is None
    assert f"member-{editor.public_id}" not in client.get("/settings/members").text
    assert client.post(f"/settings/members/{editor.public_id}/remove").status_code == 404
    assert (
        client.post("/settings/members/usr_unknown/role", data={"role": "viewer"}).status_code
        == 404
    )


def test_the_last_owner_can_be_neither_demoted_nor_removed(client, app, db, owner, project):
    demoted = client.post(f"/settings/members/{owner.public_id}/role", data={"role": "editor"})
    assert demoted.status_code == 422
    assert "at least one owner" in row(demoted, f"member-{owner.public_id}")
    removed = client.post(f"/settings/members/{owner.public_id}/remove")
    assert removed.status_code == 422
    assert "at least one owner" in row(removed, f"member-{owner.public_id}")
    membership = db.session.scalar(select(Membership).where(Membership.user_id == owner.id))
    db.session.refresh(membership)
    assert membership.role == "owner"

    # With a second owner, the first may step down, and Settings are then closed to them.
    make_user("second@example.com", "owner", project)
    stepped_down = client.post(f"/settings/members/{owner.public_id}/role", data={"role": "editor"})
    assert stepped_down.status_code == 303 and stepped_down.headers["Location"] == "/jobs"
    assert client.get("/settings/members").status_code == 403


# --- Webhooks -----------------------------------------------------------------------------


def test_a_webhook_secret_is_shown_once_and_stored_encrypted(client, db, project):
    created = client.post(
        "/settings/webhooks",
        data={"url": "https://hooks.example.com/bytestack", "events": ["job.failed"]},
    )
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    secret = revealed(created)
    assert secret.startswith("whsec_")
    webhook = db.session.scalars(select(Webhook)).one()
    assert (webhook.url, webhook.events, webhook.project_id) == (
        "https://hooks.example.com/bytestack",
        ["job.failed"],
        project.id,
    )
    assert secret not in raw_row(db, "webhooks", webhook.id)
    assert webhook.secret == secret  # decryptable, for signing deliveries

    listed = client.get("/settings/webhooks")
    assert secret not in listed.text
    assert "https://hooks.example.com/bytestack" in row(listed, f"webhook-{webhook.public_id}")

    rotated = client.post(f"/settings/webhooks/{webhook.public_id}/rotate")
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    new_secret = revealed(rotated)
    assert new_secret != secret and new_secret.startswith("whsec_")
    db.session.refresh(webhook)
    assert webhook.secret == new_secret
    assert new_secret not in raw_row(db, "webhooks", webhook.id)
    assert new_secret not in client.get("/settings/webhooks").text

    deleted = client.post(f"/settings/webhooks/{webhook.public_id}/delete")
    assert deleted.status_code == 303 and deleted.headers["Location"] == "/settings/webhooks"
    assert db.session.scalar(select(func.count(Webhook.id))) == 0
    assert "is deleted" in client.get("/settings/webhooks").text


@pytest.mark.parametrize(
    ("url", "events", "field"),
    [
        ("", ["job.completed"], "url"),
        ("ftp://files.example.com/hook", ["job.completed"], "url"),
        ("javascript:alert(1)", ["job.completed"], "url"),
        ("https://", ["job.completed"], "url"),
        ("https://example.com:99999/hook", ["job.completed"], "url"),
        ("https://example.com/" + "a" * 2000, ["job.completed"], "url"),
        ("https://example.com/hook", [], "events"),
        ("https://example.com/hook", ["job.started"], "events"),
    ],
)
def test_the_webhook_form_refuses_bad_input_next_to_the_field(client, db, url, events, field):
    refused = client.post("/settings/webhooks", data={"url": url, "events": events})
    assert refused.status_code == 422
    assert f'id="{field}-error"' in refused.text
    assert 'id="revealed-value"' not in refused.text
    assert db.session.scalar(select(func.count(Webhook.id))) == 0


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def delivered_run(db, project, receiver, answers: list) -> Run:
    """A job with its own URL and one webhook, both on the receiver; its run's deliveries are
    sent once (the receiver answers `answers`, then 200)."""
    from webapp.settings.webhooks import create_webhook, project_secret

    _, secret = create_webhook(project, receiver.url("/hook"), ["job.completed"])
    receiver.secrets["/hook"] = secret
    job = make_job(project, name="Acme watch", webhook_url=receiver.url("/job"))
    receiver.secrets["/job"] = project_secret(project)
    receiver.answers = list(answers)
    run = jobs_service.run_now(job)
    assert claim_run(run.id) and complete_run(run.id, [], [])
    outbox.plan_run(run.id)
    assert outbox.deliver_due() == 2
    return run


def test_each_endpoint_lists_its_attempts_with_status_duration_excerpt_and_resend(
    client, db, project, receiver
):
    receiver.body_of_answer = b"<script>alert(1)</script> busy"
    delivered_run(db, project, receiver, [503])
    page = client.get("/settings/webhooks")
    assert page.headers["Cache-Control"] == "no-store"
    webhook = db.session.scalars(select(Webhook)).one()
    card = row(page, f"webhook-{webhook.public_id}")
    attempt = db.session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    ).one()
    line = row(page, f"attempt-{attempt.id}")
    assert "job.completed" in line and "HTTP 503" in line
    assert "The receiver answered HTTP 503 Service Unavailable." in line
    assert f"{attempt.duration_ms} ms" in line
    assert "&lt;script&gt;alert(1)&lt;/script&gt; busy" in line and "<script>alert" not in card
    assert 'class="num">1</td>' in line  # the attempt
    assert "next attempt" in line
    hook_delivery, job_delivery = db.session.scalars(select(Delivery).order_by(Delivery.id))
    assert f'action="/settings/webhooks/deliveries/{hook_delivery.public_id}/resend"' in line
    assert 'name="csrf_token"' in line
    job = db.session.scalar(select(Job).where(Job.name == "Acme watch"))
    job_card = row(page, f"job-url-{job.public_id}")
    assert receiver.url("/job") in job_card and "HTTP 200" in job_card and "delivered" in job_card
    assert f"/settings/webhooks/deliveries/{job_delivery.public_id}/resend" in job_card


def test_resend_makes_a_delivery_due_now_and_the_sender_sends_it_again(
    client, db, project, receiver
):
    from webapp.notifications import outbox
    delivered_run(db, project, receiver, [])
    delivery = db.session.scalars(select(Delivery).order_by(Delivery.id)).first()
    resent = client.post(f"/settings/webhooks/deliveries/{delivery.public_id}/resend")
    assert resent.status_code == 303 and resent.headers["Location"] == "/settings/webhooks"
    assert "is sent again within seconds" in client.get("/settings/webhooks").text
    db.session.refresh(delivery)
    assert delivery.status == "pending" and delivery.next_attempt_at <= now()
    assert outbox.deliver_due() == 1
    assert len(receiver.delivered("/hook")) == 2 and receiver.bad_signatures() == []


def test_a_delivery_of_another_project_cannot_be_resent(client, db, other_project, receiver):
    delivered_run(db, other_project, receiver, [])
    theirs = db.session.scalars(select(Delivery)).first()
    assert client.post(f"/settings/webhooks/deliveries/{theirs.public_id}/resend").status_code == 404
    assert client.post("/settings/webhooks/deliveries/dlv_nope/resend").status_code == 404
    db.session.refresh(theirs)
    assert theirs.status == "delivered"


def test_the_project_secret_is_shown_in_webhooks_and_rotates(client, db, project):
    page = client.get("/settings/webhooks")
    section = row(page, "project-webhook-secret")
    shown = re.search(r'id="project-secret"[^>]*value="([^"]+)"', section).group(1)
    assert shown.startswith("whsec_")
    assert shown not in raw_row(db, "projects", project.id)  # encrypted at rest
    assert shown in client.get("/settings/webhooks").text  # the same one, each time
    rotated = client.post("/settings/webhooks/project-secret/rotate")
    assert rotated.status_code == 303 and rotated.headers["Location"] == "/settings/webhooks"
    after = client.get("/settings/webhooks")
    assert "The project has a new signing secret" in after.text
    assert shown not in after.text
    new = re.search(r'id="project-secret"[^>]*value="([^"]+)"', after.text).group(1)
    assert new.startswith("whsec_") and new != shown


def test_webhooks_of_another_project_are_404_in_settings(client, db, other_project):
    from webapp.settings.webhooks import create_webhook

    theirs, secret = create_webhook(other_project, "https://theirs.example.com/", ["job.failed"])
    assert client.post(f"/settings/webhooks/{theirs.public_id}/rotate").status_code == 404
    assert client.post(f"/settings/webhooks/{theirs.public_id}/delete").status_code == 404
    db.session.refresh(theirs)
    assert theirs.secret == secret
    assert "theirs.example.com" not in client.get("/settings/webhooks").text


# --- Sources ------------------------------------------------------------------------------


def source_status(page, source_id: str) -> str:
    match = re.search(r'class="badge badge-(\w+)"', row(page, f"source-{source_id}"))
    return match.group(1)


def test_a_credential_set_in_settings_makes_its_source_ready_and_stays_secret(
    client, db, project, other_project, api_key
):
    page = client.get("/settings/sources")
    assert source_status(page, "youtube") == "needs_credentials"
    assert source_status(page, "reddit") == "ready"
    assert source_status(page, "linkedin") == "unavailable"
    assert "not set" in row(page, "credential-youtube_api_key")

    saved = client.post("/settings/sources/youtube_api_key", data={"value": " AIza-secret-1 "})
    assert saved.status_code == 303 and saved.headers["Location"] == "/settings/sources"
    stored = db.session.scalars(select(SourceCredential)).one()
    assert (stored.project_id, stored.name, stored.value) == (
        project.id,
        "youtube_api_key",
        "AIza-secret-1",
    )
    assert "AIza-secret-1" not in raw_row(db, "source_credentials", stored.id)

    page = client.get("/settings/sources")
    assert source_status(page, "youtube") == "ready"
    assert "AIza-secret-1" not in page.text
    assert 'badge-credential-set">set<' in row(page, "credential-youtube_api_key")

    # The API lists the same status for this project's keys, and not for another project's.
    mine = {s["id"]: s for s in client.get("/v1/sources", headers=api_key("read")).get_json()}
    assert mine["youtube"]["status"] == "ready"
    theirs = client.get("/v1/sources", headers=api_key("read", other_project)).get_json()
    assert {s["id"]: s for s in theirs}["youtube"]["status"] == "needs_credentials"

    cleared = client.post("/settings/sources/youtube_api_key/clear")
    assert cleared.status_code == 303
    assert db.session.scalar(select(func.count(SourceCredential.id))) == 0
    page = client.get("/settings/sources")
    assert source_status(page, "youtube") == "needs_credentials"
    assert "not set" in row(page, "credential-youtube_api_key")


def test_setting_a_credential_again_replaces_it(client, db):
    client.post("/settings/sources/x_bearer_token", data={"value": "first"})
    client.post("/settings/sources/x_bearer_token", data={"value": "second"})
    stored = db.session.scalars(select(SourceCredential)).one()
    assert stored.value == "second"


def test_the_credential_form_refuses_an_empty_value_or_an_unknown_name(client, db):
    refused = client.post("/settings/sources/github_token", data={"value": "   "})
    assert refused.status_code == 422 and 'id="github_token-error"' in refused.text
    assert client.post("/settings/sources/aws_root_key", data={"value": "x"}).status_code == 404
    assert client.post("/settings/sources/aws_root_key/clear").status_code == 404
    assert db.session.scalar(select(func.count(SourceCredential.id))) == 0


def test_stored_credentials_overlay_the_environment(client, project, monkeypatch):
    monkeypatch.setenv("BYTESTACK_GITHUB_TOKEN", "from-env")
    monkeypatch.setenv("BYTESTACK_X_BEARER_TOKEN", "x-from-env")
    client.post("/settings/sources/github_token", data={"value": "from-settings"})
    assert project_credentials(project.id) == {
        "github_token": "from-settings",
        "x_bearer_token": "x-from-env",
    }
    page = client.get("/settings/sources")
    assert "Also set in the server's environment; this project's value is used" in row(
        page, "credential-github_token"
    )


def test_a_run_sends_the_project_s_stored_credential_to_the_source(
    client, db, project, feed_server, monkeypatch
):
    seen: list[dict] = []
    handler = feed_server.httpd.RequestHandlerClass

    class Recording(handler):
        def do_GET(self):
            seen.append({k: v[-1] for k, v in parse_qs(self.path.partition("?")[2]).items()})
            super().do_GET()

    feed_server.httpd.RequestHandlerClass = Recording
    feed_server.serve(
        "/youtube/v3/search", json.dumps({"items": []}).encode(), type="application/json"
    )
    monkeypatch.setenv("BYTESTACK_SOURCE_YOUTUBE_URL", feed_server.base)
    client.post("/settings/sources/youtube_api_key", data={"value": "project-key"})

    job = make_job(project, sources=["youtube"], prompt="acme")
    run = jobs_service.run_now(job)
    assert execute_run(job.public_id, run.scheduled_for) == "completed"
    assert [request["key"] for request in seen] == ["project-key"]
    db.session.expire_all()
    assert db.session.get(Run, run.id).status == "completed"


def test_a_credential_that_cannot_be_decrypted_is_reported_not_used(client, app, db, project):
    client.post("/settings/sources/youtube_api_key", data={"value": "old-key"})
    app.config["ENCRYPTION_KEY"] = derive_key("another key")  # as after a key change
    assert project_credentials(project.id) == {}
    page = client.get("/settings/sources")
    assert "unreadable" in row(page, "credential-youtube_api_key")
    assert source_status(page, "youtube") == "needs_credentials"
    client.post("/settings/sources/youtube_api_key", data={"value": "new-key"})
    assert project_credentials(project.id) == {"youtube_api_key": "new-key"}


# --- Encryption -----------------------------------------------------------------------------


def test_encryption_round_trips_and_needs_the_same_key(app):
    token = encrypt("hunter2")
    assert "hunter2" not in token and decrypt(token) == "hunter2"
    assert encrypt("hunter2") != token  # a fresh IV each time
    app.config["SECRET_KEY"] = "rotated"
    with pytest.raises(DecryptionError):
        decrypt(token)


def test_an_explicit_encryption_key_is_used_instead_of_the_secret_key(app, tmp_path):
    key = derive_key("unrelated material").decode()
    config = load({"SECRET_KEY": "s", "BYTESTACK_ENCRYPTION_KEY": key}, str(tmp_path))
    assert config["ENCRYPTION_KEY"] == key.encode()
    app.config["ENCRYPTION_KEY"] = config["ENCRYPTION_KEY"]
    token = encrypt("value")
    app.config["SECRET_KEY"] = "changed"  # does not matter with an explicit key
    assert decrypt(token) == "value"
    app.config["ENCRYPTION_KEY"] = None
    with pytest.raises(DecryptionError):
        decrypt(token)


@pytest.mark.parametrize("value", ["short", "not base64 !!", "a" * 44])
def test_a_bad_encryption_key_stops_start_up(tmp_path, value):
    with pytest.raises(ConfigError, match="BYTESTACK_ENCRYPTION_KEY"):
        load({"SECRET_KEY": "s", "BYTESTACK_ENCRYPTION_KEY": value}, str(tmp_path))


# --- Access -------------------------------------------------------------------------------

PAGES = [
    "/settings",
    "/settings/general",
    "/settings/api-keys",
    "/settings/members",
    "/settings/webhooks",
    "/settings/sources",
]


def settings_posts(owner, key, webhook, invitation) -> list[tuple[str, dict]]:
    return [
        ("/settings/general", {"name": "Taken over"}),
        ("/settings/api-keys", {"name": "Mine now", "scope": "admin"}),
        (f"/settings/api-keys/{key.public_id}/revoke", {}),
        (f"/settings/members/{owner.public_id}/role", {"role": "viewer"}),
        (f"/settings/members/{owner.public_id}/remove", {}),
        ("/settings/invitations", {"role": "owner"}),
        (f"/settings/invitations/{invitation.public_id}/revoke", {}),
        ("/settings/webhooks", {"url": "https://evil.example.com/", "events": ["job.failed"]}),
        (f"/settings/webhooks/{webhook.public_id}/rotate", {}),
        (f"/settings/webhooks/{webhook.public_id}/delete", {}),
        ("/settings/sources/youtube_api_key", {"value": "theirs"}),
        ("/settings/sources/youtube_api_key/clear", {}),
    ]


@pytest.fixture
def owned_things(db, project, owner):
    """A key, a webhook, an invitation and a credential of the project, to be left alone."""
    from webapp.accounts.service import create_invitation
    from webapp.settings.credentials import set_credential
    from webapp.settings.webhooks import create_webhook

    key, _ = create_api_key(project, "admin", "Owner's key")
    webhook, secret = create_webhook(project, "https://hooks.example.com/", ["job.completed"])
    invitation, _ = create_invitation(project, "viewer", owner)
    set_credential(project, "youtube_api_key", "owner-value")
    return key, webhook, secret, invitation


def assert_untouched(db, project, owner, key, webhook, secret, invitation) -> None:
    db.session.expire_all()
    assert db.session.get(Project, project.id).name == "Default"
    assert db.session.get(ApiKey, key.id).revoked_at is None
    assert db.session.scalar(select(func.count(ApiKey.id))) == 1
    membership = db.session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert membership.role == "owner"
    assert db.session.get(Invitation, invitation.id).revoked_at is None
    assert db.session.scalar(select(func.count(Invitation.id))) == 1
    assert db.session.get(Webhook, webhook.id).secret == secret
    assert db.session.scalar(select(func.count(Webhook.id))) == 1
    assert project_credentials(project.id)["youtube_api_key"] == "owner-value"


@pytest.mark.parametrize("role", ["editor", "viewer"])
def test_editors_and_viewers_get_403_on_every_settings_page_and_action(
    persona, db, project, owner, owned_things, role
):
    key, webhook, secret, invitation = owned_things
    member = persona(role)
    for path in PAGES:
        assert member.get(path).status_code == 403, path
    for path, data in settings_posts(owner, key, webhook, invitation):
        response = member.post(path, data=data)
        assert response.status_code == 403, path
        assert 'id="revealed-value"' not in response.text
    assert_untouched(db, project, owner, key, webhook, secret, invitation)
    assert 'href="/settings"' not in member.get("/jobs").text


def test_an_outsider_sees_only_their_own_project_and_gets_404_on_ours(
    persona, db, project, owner, owned_things
):
    """An outsider is an owner elsewhere, so Settings open on their project, never ours."""
    key, webhook, secret, invitation = owned_things
    outsider = persona("outsider")
    for path in PAGES[1:]:
        page = outsider.get(path)
        assert page.status_code == 200, path
        for ours in (key.public_id, webhook.public_id, invitation.public_id, owner.email):
            assert ours not in page.text, (path, ours)
    assert 'value="Elsewhere"' in outsider.get("/settings/general").text
    assert "not set" in row(outsider.get("/settings/sources"), "credential-youtube_api_key")
    ours = (key.public_id, webhook.public_id, invitation.public_id, owner.public_id)
    for path, data in settings_posts(owner, key, webhook, invitation):
        if any(public_id in path for public_id in ours):
            assert outsider.post(path, data=data).status_code == 404, path
    assert_untouched(db, project, owner, key, webhook, secret, invitation)


def test_a_person_removed_from_the_project_loses_settings_at_once(app, client, db, project):
    second = make_user("second@example.com", "owner", project)
    their_client = login(app.test_client(), second, project)
    assert their_client.get("/settings/general").status_code == 200
    assert client.post(f"/settings/members/{second.public_id}/remove").status_code == 303
    assert their_client.get("/settings/general").status_code == 302  # to /projects


# --- API: keys ------------------------------------------------------------------------------


def test_admin_key_lists_creates_and_revokes_keys(client, db, project, api_key):
    admin = api_key("admin")
    created = client.post("/v1/api-keys", json={"name": "Exporter", "scope": "read"}, headers=admin)
    assert created.status_code == 201
    body = created.get_json()
    assert set(body) == {
        "id",
        "name",
        "scope",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
        "key",
    }
    assert body["id"].startswith("key_") and body["key"].startswith(body["prefix"])
    assert (body["name"], body["scope"], body["last_used_at"], body["revoked_at"]) == (
        "Exporter",
        "read",
        None,
        None,
    )
    assert body["created_at"].endswith("Z")
    assert client.get("/v1/jobs", headers=bearer(body["key"])).status_code == 200

    listed = client.get("/v1/api-keys", headers=admin)
    assert listed.status_code == 200
    data = listed.get_json()["data"]
    assert data[0]["id"] == body["id"]  # newest first
    assert all("key" not in item and "key_hash" not in item for item in data)
    exporter = next(item for item in data if item["id"] == body["id"])
    assert exporter["last_used_at"] is not None and exporter["last_used_at"].endswith("Z")
    assert body["key"] not in listed.get_data(as_text=True)

    deleted = client.delete(f"/v1/api-keys/{body['id']}", headers=admin)
    assert deleted.status_code == 204 and deleted.data == b""
    assert_error(client.get("/v1/jobs", headers=bearer(body["key"])), 401, "unauthorized")
    again = client.get("/v1/api-keys", headers=admin).get_json()["data"]
    assert next(item for item in again if item["id"] == body["id"])["revoked_at"].endswith("Z")
    assert client.delete(f"/v1/api-keys/{body['id']}", headers=admin).status_code == 204


def test_a_key_may_revoke_itself(client, db, api_key):
    admin = api_key("admin")
    [mine] = client.get("/v1/api-keys", headers=admin).get_json()["data"]
    assert client.delete(f"/v1/api-keys/{mine['id']}", headers=admin).status_code == 204
    assert_error(client.get("/v1/api-keys", headers=admin), 401, "unauthorized")


def test_a_key_of_another_project_is_404_over_the_api(client, db, api_key, other_project):
    theirs, secret = create_api_key(other_project, "admin", "Theirs")
    admin = api_key("admin")
    assert_error(client.delete(f"/v1/api-keys/{theirs.public_id}", headers=admin), 404, "not_found")
    assert_error(client.delete("/v1/api-keys/key_unknown", headers=admin), 404, "not_found")
    assert theirs.public_id not in client.get("/v1/api-keys", headers=admin).get_data(as_text=True)
    assert client.get("/v1/jobs", headers=bearer(secret)).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "read"}, "name"),
        ({"name": "", "scope": "read"}, "name"),
        ({"name": 7, "scope": "read"}, "name"),
        ({"name": "x" * 101, "scope": "read"}, "name"),
        ({"name": "ok"}, "scope"),
        ({"name": "ok", "scope": "owner"}, "scope"),
        ({"name": "ok", "scope": ["admin"]}, "scope"),
    ],
)
def test_invalid_key_bodies_are_422_with_the_field(client, db, api_key, body, field):
    admin = api_key("admin")
    assert_error(client.post("/v1/api-keys", json=body, headers=admin), 422, "invalid_field", field)
    assert db.session.scalar(select(func.count(ApiKey.id))) == 1


# --- API: webhooks --------------------------------------------------------------------------


def test_admin_key_manages_webhooks(client, db, project, api_key):
    admin = api_key("admin")
    created = client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/in", "events": ["job.failed", "job.completed"]},
        headers=admin,
    )
    assert created.status_code == 201
    body = created.get_json()
    assert set(body) == {"id", "url", "events", "created_at", "secret"}
    assert body["id"].startswith("wh_") and body["secret"].startswith("whsec_")
    assert body["events"] == ["job.completed", "job.failed"]
    webhook = db.session.scalars(select(Webhook)).one()
    assert webhook.project_id == project.id and webhook.secret == body["secret"]
    assert body["secret"] not in raw_row(db, "webhooks", webhook.id)

    listed = client.get("/v1/webhooks", headers=admin)
    assert listed.status_code == 200
    assert listed.get_json() == {
        "data": [
            {
                "id": body["id"],
                "url": "https://hooks.example.com/in",
                "events": ["job.completed", "job.failed"],
                "created_at": body["created_at"],
            }
        ]
    }

    rotated = client.post(f"/v1/webhooks/{body['id']}/rotate", headers=admin)
    assert rotated.status_code == 200
    assert set(rotated.get_json()) == {"id", "secret"}
    assert rotated.get_json()["id"] == body["id"]
    assert rotated.get_json()["secret"] != body["secret"]
    db.session.refresh(webhook)
    assert webhook.secret == rotated.get_json()["secret"]

    deleted = client.delete(f"/v1/webhooks/{body['id']}", headers=admin)
    assert deleted.status_code == 204 and deleted.data == b""
    assert client.get("/v1/webhooks", headers=admin).get_json() == {"data": []}
    assert_error(client.delete(f"/v1/webhooks/{body['id']}", headers=admin), 404, "not_found")


def test_a_webhook_of_another_project_is_404_over_the_api(client, db, api_key, other_project):
    from webapp.settings.webhooks import create_webhook

    theirs, secret = create_webhook(other_project, "https://theirs.example.com/", ["job.failed"])
    admin = api_key("admin")
    assert_error(
        client.post(f"/v1/webhooks/{theirs.public_id}/rotate", headers=admin), 404, "not_found"
    )
    assert_error(client.delete(f"/v1/webhooks/{theirs.public_id}", headers=admin), 404, "not_found")
    assert client.get("/v1/webhooks", headers=admin).get_json() == {"data": []}
    db.session.refresh(theirs)
    assert theirs.secret == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["job.failed"]}, "url"),
        ({"url": None, "events": ["job.failed"]}, "url"),
        ({"url": 5, "events": ["job.failed"]}, "url"),
        ({"url": "file:///etc/passwd", "events": ["job.failed"]}, "url"),
        ({"url": "http://[::1", "events": ["job.failed"]}, "url"),
        ({"url": "https://a.example.com/ x", "events": ["job.failed"]}, "url"),
        ({"url": "https://a.example.com/"}, "events"),
        ({"url": "https://a.example.com/", "events": "job.failed"}, "events"),
        ({"url": "https://a.example.com/", "events": []}, "events"),
        ({"url": "https://a.example.com/", "events": ["job.failed", {"x": 1}]}, "events"),
    ],
)
def test_invalid_webhook_bodies_are_422_with_the_field(client, db, api_key, body, field):
    response = client.post("/v1/webhooks", json=body, headers=api_key("admin"))
    assert_error(response, 422, "invalid_field", field)
    assert db.session.scalar(select(func.count(Webhook.id))) == 0


def test_malformed_json_is_400_on_both_collections(client, api_key):
    admin = api_key("admin")
    for path in ("/v1/webhooks", "/v1/api-keys"):
        for data in ("{not json", "[1, 2]"):
            response = client.post(
                path, data=data, headers={**admin, "Content-Type": "application/json"}
            )
            assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("scope", ["read", "write"])
def test_read_and_write_keys_cannot_touch_keys_or_webhooks(client, db, project, api_key, scope):
    from webapp.settings.webhooks import create_webhook

    webhook, secret = create_webhook(project, "https://hooks.example.com/", ["job.failed"])
    headers = api_key(scope)
    key = db.session.scalars(select(ApiKey)).one()
    calls = [
        client.get("/v1/webhooks", headers=headers),
        client.post(
            "/v1/webhooks",
            json={"url": "https://x.example.com/", "events": ["job.failed"]},
            headers=headers,
        ),
        client.delete(f"/v1/webhooks/{webhook.public_id}", headers=headers),
        client.post(f"/v1/webhooks/{webhook.public_id}/rotate", headers=headers),
        client.get("/v1/api-keys", headers=headers),
        client.post("/v1/api-keys", json={"name": "up", "scope": "admin"}, headers=headers),
        client.delete(f"/v1/api-keys/{key.public_id}", headers=headers),
    ]
    for response in calls:
        assert_error(response, 403, "forbidden")
    db.session.refresh(webhook)
    assert webhook.secret == secret
    assert db.session.scalar(select(func.count(Webhook.id))) == 1
    assert db.session.scalar(select(func.count(ApiKey.id))) == 1
    db.session.refresh(key)
    assert key.revoked_at is None


def test_the_new_endpoints_need_a_key(client):
    for method, path in (
        ("get", "/v1/webhooks"),
        ("post", "/v1/webhooks"),
        ("delete", "/v1/webhooks/wh_x"),
        ("post", "/v1/webhooks/wh_x/rotate"),
        ("get", "/v1/api-keys"),
        ("post", "/v1/api-keys"),
        ("delete", "/v1/api-keys/key_x"),
    ):
        assert_error(getattr(client, method)(path), 401, "unauthorized")
