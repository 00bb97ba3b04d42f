"""Alert channels and a job's alert rules, end to end through the API and the dashboard:
Apprise validates each URL (422 with its reason on `url`), URLs are stored encrypted and
shown masked, "Send test" sends now to a real local receiver, another project's channel is
404, the private-address guard refuses a URL naming a local server, and the New Job / Edit
form's Alerts section saves what the API's `alerts` field holds."""

from __future__ import annotations

import html
import re

import pytest
from channel_servers import JsonReceiver
from conftest import make_job
from sqlalchemy import select, text

from webapp.jobs.service import ensure_project
from webapp.models import Job
from webapp.settings import channels
from webapp.settings.models import Channel

SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
SLACK_SECRET = "TIiajkdnlazkcOXrIdevi7FQ"


@pytest.fixture
def receiver():
    server = JsonReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def admin(api_key):
    return api_key("admin")


@pytest.fixture
def other_project(app):
    return ensure_project("Elsewhere")


def error_of(response) -> dict:
    return response.get_json()["error"]


# --- API ----------------------------------------------------------------------------------------


def test_a_channel_is_created_stored_encrypted_and_never_returned_whole(client, db, admin):
    response = client.post(
        "/v1/channels", json={"name": "Team Slack", "url": f"  {SLACK}  "}, headers=admin
    )
    assert response.status_code == 201
    created = response.get_json()
    assert created["id"].startswith("chn_")
    assert (created["name"], created["kind"]) == ("Team Slack", "slack")
    assert created["masked_url"] == "slack://T...2/A...D/T...Q"
    assert (created["last_sent_at"], created["last_error"]) == (None, None)
    assert SLACK_SECRET not in response.text

    listed = client.get("/v1/channels", headers=admin)
    assert [c["id"] for c in listed.get_json()["data"]] == [created["id"]]
    assert SLACK_SECRET not in listed.text
    stored = db.session.execute(text("SELECT url_encrypted FROM channels")).scalar_one()
    assert SLACK_SECRET not in stored and "slack" not in stored
    assert db.session.scalar(select(Channel)).url == SLACK  # readable with the app's key


def test_passwords_in_a_channel_url_are_masked(client, admin, receiver):
    url = f"json://hook:s3cret-pass@127.0.0.1:{receiver.port}/in?token=abc"
    created = client.post("/v1/channels", json={"name": "Hook", "url": url}, headers=admin)
    assert created.status_code == 201
    assert created.get_json()["masked_url"] == f"json://hook:****@127.0.0.1:{receiver.port}/in"
    assert "s3cret-pass" not in created.text and "abc" not in created.text


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "X", "url": "bogus://x"}, "url", "Apprise has no service called bogus://."),
        ({"name": "X", "url": "slack://"}, "url", "Not a valid Slack URL: An invalid Slack"),
        ({"name": "X", "url": "https://hooks.example.com/x"}, "url", "http:// is not an Apprise"),
        ({"name": "X", "url": "syslog://"}, "url", "syslog:// notifies the server ByteStack"),
        ({"name": "X", "url": "not a url"}, "url", "A channel URL cannot contain spaces or control characters."),
        ({"name": "X", "url": 5}, "url", "Enter the channel's Apprise URL"),
        ({"name": "X", "url": "json://h/" + "a" * 2000}, "url", "at most 2000 characters"),
        ({"name": "X"}, "url", "Enter the channel's Apprise URL"),
        ({"name": "  ", "url": SLACK}, "name", "Name the channel after who reads it"),
        ({"name": "n" * 101, "url": SLACK}, "name", "at most 100 characters"),
    ],
)
def test_a_bad_channel_is_refused_with_the_reason_on_its_field(
    client, db, admin, body, field, message
):
    response = client.post("/v1/channels", json=body, headers=admin)
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert message in error["message"]
    assert db.session.scalar(select(Channel.id)) is None


def test_a_channel_naming_a_local_server_is_refused_when_private_networks_are(
    app, client, db, admin, receiver
):
    app.config["ALLOW_PRIVATE_NETWORKS"] = False
    response = client.post("/v1/channels", json={"name": "L", "url": receiver.url()}, headers=admin)
    assert response.status_code == 422
    error = error_of(response)
    assert error["field"] == "url"
    assert "private or local address 127.0.0.1" in error["message"]
    refused = client.post(
        "/v1/channels",
        json={"name": "M", "url": "mailto://10.1.2.3:25?from=a@example.com&to=b@example.com"},
        headers=admin,
    )
    assert "private or local address 10.1.2.3" in error_of(refused)["message"]
    assert db.session.scalar(select(Channel.id)) is None


def test_send_test_answers_200_when_the_service_took_the_message(client, db, admin, receiver):
    created = client.post(
        "/v1/channels", json={"name": "Hook", "url": receiver.url("/in")}, headers=admin
    ).get_json()
    response = client.post(f"/v1/channels/{created['id']}/test", headers=admin)
    assert response.status_code == 200
    assert response.get_json() == {
        "id": created["id"],
        "delivered": True,
        "message": "A test message was sent to “Hook”.",
    }
    [message] = receiver.messages
    assert (message["path"], message["title"]) == ("/in", "ByteStack test message")
    assert "“Hook” of the project “Default”" in message["message"]
    listed = client.get("/v1/channels", headers=admin).get_json()["data"][0]
    assert listed["last_sent_at"] is not None and listed["last_error"] is None


def test_send_test_answers_422_with_the_reason_when_it_was_not_sent(client, admin, receiver):
    created = client.post(
        "/v1/channels", json={"name": "Hook", "url": receiver.url()}, headers=admin
    ).get_json()
    receiver.status = 500
    refused = client.post(f"/v1/channels/{created['id']}/test", headers=admin)
    assert refused.status_code == 422
    error = error_of(refused)
    assert error["field"] == "url"
    assert error["message"].startswith("The test message was not sent: JSON: ")
    assert "error=500" in error["message"]
    receiver.stop()
    unreachable = error_of(client.post(f"/v1/channels/{created['id']}/test", headers=admin))
    assert "Connection error" in unreachable["message"]
    listed = client.get("/v1/channels", headers=admin).get_json()["data"][0]
    assert "Connection error" in listed["last_error"]


def test_another_projects_channel_is_404_and_scopes_below_admin_are_403(
    client, db, api_key, admin, other_project, receiver
):
    theirs = channels.create_channel(other_project, "Theirs", receiver.url())
    for method, path in (
        ("delete", f"/v1/channels/{theirs.public_id}"),
        ("post", f"/v1/channels/{theirs.public_id}/test"),
    ):
        response = getattr(client, method)(path, headers=admin)
        assert response.status_code == 404, path
        assert error_of(response)["code"] == "not_found"
    assert client.get("/v1/channels", headers=admin).get_json() == {"data": []}
    assert receiver.messages == []
    write = api_key("write")
    assert client.get("/v1/channels", headers=write).status_code == 403
    assert client.post("/v1/channels", json={"name": "x", "url": SLACK}, headers=write).status_code == 403
    assert db.session.get(Channel, theirs.id) is not None


def test_deleting_a_channel_takes_it_out_of_every_jobs_alerts(client, db, project, admin):
    kept = channels.create_channel(project, "Kept", SLACK)
    gone = channels.create_channel(project, "Gone", SLACK.replace("T1JJ", "T2JJ"))
    job = make_job(project, alerts={"channels": [gone.public_id, kept.public_id]})
    assert client.delete(f"/v1/channels/{gone.public_id}", headers=admin).status_code == 204
    assert client.get(f"/v1/jobs/{job.public_id}", headers=admin).get_json()["alerts"] == {
        "channels": [kept.public_id],
        "on_new_records": True,
        "on_failure": True,
        "after_failures": 1,
        "on_recovery": True,
        "digest": "immediate",
    }
    assert client.delete(f"/v1/channels/{gone.public_id}", headers=admin).status_code == 404


# --- a job's alerts over the API ----------------------------------------------------------------


JOB = {
    "name": "Acme mentions",
    "prompt": "acme",
    "sources": ["https://news.example.com/feed.xml"],
    "schedule": "every_hour",
}


def test_a_jobs_alerts_are_created_read_changed_and_cleared(client, project, api_key):
    write = api_key("write")
    channel = channels.create_channel(project, "Team", SLACK)
    created = client.post(
        "/v1/jobs", json={**JOB, "alerts": {"channels": [channel.public_id]}}, headers=write
    )
    assert created.status_code == 201
    job = created.get_json()
    assert job["alerts"] == {
        "channels": [channel.public_id],
        "on_new_records": True,
        "on_failure": True,
        "after_failures": 1,
        "on_recovery": True,
        "digest": "immediate",
    }
    rules = {
        "channels": [channel.public_id, channel.public_id],
        "on_new_records": False,
        "on_failure": True,
        "after_failures": 3,
        "on_recovery": False,
        "digest": "daily",
    }
    patched = client.patch(f"/v1/jobs/{job['id']}", json={"alerts": rules}, headers=write)
    assert patched.status_code == 200
    assert patched.get_json()["alerts"] == {**rules, "channels": [channel.public_id]}
    renamed = client.patch(f"/v1/jobs/{job['id']}", json={"name": "Renamed"}, headers=write)
    assert renamed.get_json()["alerts"]["digest"] == "daily"  # untouched when not sent
    cleared = client.patch(f"/v1/jobs/{job['id']}", json={"alerts": None}, headers=write)
    assert cleared.get_json()["alerts"] is None
    assert client.post("/v1/jobs", json=JOB, headers=write).get_json()["alerts"] is None


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ("yes", "alerts must be an object"),
        ({}, "alerts.channels is required."),
        ({"channels": "chn_1"}, "alerts.channels must be a list of at most 20 channel ids"),
        ({"channels": ["job_1"]}, "alerts.channels must be a list of at most 20 channel ids"),
        ({"channels": [], "after_failures": 0}, "alerts.after_failures must be a whole number"),
        ({"channels": [], "after_failures": 1.5}, "alerts.after_failures must be a whole number"),
        ({"channels": [], "after_failures": True}, "alerts.after_failures must be a whole number"),
        ({"channels": [], "on_failure": "yes"}, "alerts.on_failure must be true or false."),
        ({"channels": [], "digest": "weekly"}, "alerts.digest must be one of immediate, hourly"),
        ({"channels": [], "sms": True}, "alerts.sms is not an alert rule: use channels,"),
        ({"channels": ["chn_01NOSUCHCHANNEL"]}, "alerts.channels: chn_01NOSUCHCHANNEL is not a"),
    ],
)
def test_bad_alert_rules_are_422_on_alerts_with_the_reason(client, db, api_key, alerts, message):
    response = client.post("/v1/jobs", json={**JOB, "alerts": alerts}, headers=api_key("write"))
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("invalid_field", "alerts")
    assert error["message"].startswith(message)
    assert db.session.scalar(select(Job.id)) is None


def test_a_channel_of_another_project_cannot_be_named_in_alerts(
    client, db, project, api_key, other_project
):
    theirs = channels.create_channel(other_project, "Theirs", SLACK)
    job = make_job(project)
    response = client.patch(
        f"/v1/jobs/{job.public_id}",
        json={"name": "Renamed", "alerts": {"channels": [theirs.public_id]}},
        headers=api_key("write"),
    )
    assert response.status_code == 422
    assert error_of(response)["message"] == (
        f"alerts.channels: {theirs.public_id} is not a channel of this project."
    )
    db.session.expire_all()
    stored = db.session.get(Job, job.id)
    assert (stored.name, stored.alerts) == ("Acme mentions", None)  # nothing of the change kept


# --- Settings → Channels ------------------------------------------------------------------------


def card(page, channel: Channel) -> str:
    match = re.search(rf'<article [^>]*id="channel-{channel.public_id}".*?</article>', page.text, re.S)
    assert match, "no card for the channel"
    return match.group(0)


def test_settings_lists_channels_masked_with_send_test_and_delete(client, db, project):
    channel = channels.create_channel(project, "Team Slack", SLACK)
    job = make_job(project, alerts={"channels": [channel.public_id]})
    page = client.get("/settings/channels")
    assert page.status_code == 200
    assert '<a href="/settings/channels" aria-current="page">Channels</a>' in page.text
    shown = card(page, channel)
    assert "slack://T...2/A...D/T...Q" in shown and "Slack" in shown
    assert SLACK_SECRET not in page.text
    assert f'href="/jobs/{job.public_id}">Acme mentions</a>' in shown
    assert f'action="/settings/channels/{channel.public_id}/test"' in shown
    assert f'action="/settings/channels/{channel.public_id}/delete"' in shown
    assert 'name="csrf_token"' in shown
    assert page.headers["Cache-Control"] == "no-store"


def test_adding_a_channel_in_settings_shows_errors_next_to_the_field(client, db):
    refused = client.post("/settings/channels", data={"name": "Team", "url": "bogus://x"})
    assert refused.status_code == 422
    assert re.search(r'<p class="error" id="url-error">Apprise has no service called bogus', refused.text)
    assert 'aria-describedby="url-error"' in refused.text
    assert 'value="bogus://x"' in refused.text  # kept to be corrected
    assert db.session.scalar(select(Channel.id)) is None
    added = client.post("/settings/channels", data={"name": "Team", "url": SLACK})
    assert added.status_code == 303
    page = client.get(added.headers["Location"])
    assert "Channel “Team” is added." in html.unescape(page.text)
    assert db.session.scalar(select(Channel.name)) == "Team"


def test_send_test_in_settings_flashes_the_result_or_shows_the_reason(
    client, db, project, receiver
):
    channel = channels.create_channel(project, "Hook", receiver.url())
    sent = client.post(f"/settings/channels/{channel.public_id}/test")
    assert sent.status_code == 303
    assert "A test message was sent to “Hook”." in html.unescape(client.get("/settings/channels").text)
    assert len(receiver.messages) == 1
    receiver.status = 500
    failed = client.post(f"/settings/channels/{channel.public_id}/test")
    assert failed.status_code == 422
    shown = card(failed, channel)
    assert f'id="channel-{channel.public_id}-error">The test message was not sent: JSON:' in shown
    assert len(receiver.messages) == 1


def test_deleting_a_channel_in_settings(client, db, project):
    channel = channels.create_channel(project, "Team", SLACK)
    response = client.post(f"/settings/channels/{channel.public_id}/delete")
    assert response.status_code == 303
    assert db.session.scalar(select(Channel.id)) is None


def test_another_projects_channel_is_404_in_settings(client, db, other_project, receiver):
    theirs = channels.create_channel(other_project, "Theirs", receiver.url())
    assert client.post(f"/settings/channels/{theirs.public_id}/test").status_code == 404
    assert client.post(f"/settings/channels/{theirs.public_id}/delete").status_code == 404
    assert "Theirs" not in client.get("/settings/channels").text
    assert receiver.messages == [] and db.session.get(Channel, theirs.id) is not None


def test_a_channel_name_from_a_person_is_escaped_on_every_page(client, db, project):
    channel = channels.create_channel(project, "<script>alert(1)</script>", SLACK)
    make_job(project, name="<img src=x onerror=alert(1)>", alerts={"channels": [channel.public_id]})
    for path in ("/settings/channels", "/jobs/new"):
        page = client.get(path)
        assert "<script>alert(1)</script>" not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
    assert "<img src=x" not in client.get("/settings/channels").text


# --- the job form's Alerts section ------------------------------------------------------------------


FORM = {
    "name": "Acme mentions",
    "prompt": "acme",
    "sources": "https://news.example.com/feed.xml",
    "limit": "100",
    "date_range": "",
    "schedule_kind": "every_hour",
    "daily_at": "08:00",
    "cron": "",
    "timezone": "UTC",
}


def test_new_job_offers_the_projects_channels_and_saves_the_alerts(client, db, project):
    team = channels.create_channel(project, "Team", SLACK)
    channels.create_channel(ensure_project("Elsewhere"), "Not ours", SLACK)
    form = client.get("/jobs/new")
    assert f'name="alert_channels" value="{team.public_id}"' in form.text
    assert "Not ours" not in form.text
    assert re.search(r'name="alert_on_new_records" value="1" checked', form.text)
    response = client.post(
        "/jobs/new",
        data={
            **FORM,
            "alert_channels": [team.public_id],
            "alert_on_failure": "1",
            "alert_after_failures": "3",
            "alert_digest": "hourly",
        },
    )
    assert response.status_code == 303
    job = db.session.scalar(select(Job))
    assert job.alerts == {
        "channels": [team.public_id],
        "on_new_records": False,
        "on_failure": True,
        "after_failures": 3,
        "on_recovery": False,
        "digest": "hourly",
    }
    edit = client.get(f"/jobs/{job.public_id}/edit")
    assert f'value="{team.public_id}" checked' in edit.text
    assert not re.search(r'name="alert_on_new_records" value="1" checked', edit.text)
    assert re.search(r'name="alert_on_failure" value="1" checked', edit.text)
    assert 'id="alert_after_failures" name="alert_after_failures" type="number" min="1" max="100" value="3"' in edit.text
    assert '<option value="hourly" selected>' in edit.text


def test_unticking_every_channel_in_the_edit_form_turns_alerts_off(client, db, project):
    team = channels.create_channel(project, "Team", SLACK)
    job = make_job(project, alerts={"channels": [team.public_id]})
    response = client.post(f"/jobs/{job.public_id}/edit", data=FORM)
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Job, job.id).alerts is None


def test_a_refused_form_shows_the_alerts_as_posted_and_the_reason_beside_them(
    client, db, project
):
    team = channels.create_channel(project, "Team", SLACK)
    response = client.post(
        "/jobs/new",
        data={**FORM, "alert_channels": [team.public_id], "alert_after_failures": "0"},
    )
    assert response.status_code == 422
    assert '<p class="error" id="alerts-error">alerts.after_failures must be a whole number from 1 to 100.</p>' in response.text
    assert f'value="{team.public_id}" checked' in response.text
    # Unticked boxes stay unticked (a new form's defaults do not fill them back in).
    assert not re.search(r'name="alert_on_new_records" value="1" checked', response.text)
    assert db.session.scalar(select(Job.id)) is None


def test_without_channels_the_form_points_owners_to_settings(client, persona):
    assert 'href="/settings/channels"' in client.get("/jobs/new").text
    editor = persona("editor").get("/jobs/new")
    assert "No alert channels yet: a project owner can add them" in editor.text
    assert 'href="/settings/channels"' not in editor.text
