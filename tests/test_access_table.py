"""Who may do what, table-driven: every dashboard page and every /v1 endpoint, each persona.

Two tables list every route of the app (a completeness test keeps them whole, so a new page
cannot skip them): the dashboard's with the least role each needs, the API's with the least
key scope. Each case seeds real objects of "our" project (a job, a completed run with records,
a one-off query, its storage key, an API key, a webhook, an invitation, a second member, a
stored credential) whose ids fill the path templates, then asserts:

* anonymous → sent to sign in (HX-Request: 401 with HX-Redirect), public pages answer;
* a role below the route's → 403 and nothing changed; at or above → the page's answer;
* outsider (an owner of another project) → 404 on anything naming our ids, never our data;
* API: no, unknown or revoked key → 401; scope too low → 403; enough → the answer; another
  project's admin key → 404 on our ids; every error in the one error shape;
* CSRF on: every dashboard POST without a token → 400 and nothing changed.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from conftest import PASSWORD, login, make_job, make_user
from s3 import shared_s3
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from webapp.accounts import service as accounts
from webapp.accounts.models import Invitation, Membership, User
from webapp.ids import new_public_id
from webapp.jobs import service as jobs_service
from webapp.jobs.service import ensure_project
from webapp.models import ApiKey, Job, Project, Record, Run
from webapp.notifications.models import Delivery
from webapp.settings import credentials, keys, webhooks
from webapp.settings.models import Bucket, Channel, SourceCredential, Webhook
from webapp.storage.service import result_key
from webapp.timeutil import now

PUBLIC = None  # no sign-in (dashboard) or no key (API) needed
ROLES = ("viewer", "editor", "owner")
SCOPES = ("read", "write", "admin")
PERSONAS = ("anonymous", "viewer", "editor", "owner", "outsider")
OURS = "Ours7"  # every name and title seeded in our project starts with this
# Placeholders that hold an id of our project: an outsider must meet a 404 on them.
OUR_IDS = {
    "job",
    "run",
    "query",
    "key",
    "record",
    "api_key",
    "webhook",
    "delivery",
    "channel",
    "invitation",
    "member",
    "project_id",
}


def _no_fsync(dbapi_connection, _record) -> None:
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


@pytest.fixture(autouse=True)
def fast_cases(monkeypatch):
    """Over 500 cases, each on a fresh database with several accounts: scrypt and SQLite's
    fsync per commit would make the file take minutes; neither is what is tested here."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _no_fsync)
    monkeypatch.setattr(
        accounts, "hash_password", lambda p: generate_password_hash(p, method="pbkdf2:sha256:1")
    )
    for name in ("BYTESTACK_YOUTUBE_API_KEY", "BYTESTACK_X_BEARER_TOKEN", "BYTESTACK_GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield
    event.remove(Engine, "connect", _no_fsync)


# --- the tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One dashboard route: what it needs, and what a successful call sends and gets."""

    method: str
    path: str  # a template: {job}, {run}, … are filled from the seed
    role: str | None  # the least role; PUBLIC: no sign-in
    data: dict = field(default_factory=dict)
    ok: tuple[int, ...] = (200,)  # a permitted member's answer
    anon_ok: tuple[int, ...] | None = None  # a public page's answer to someone signed out
    writes: bool = False  # a permitted call changes our project (checked)
    to_login: bool = False  # its success is a redirect to the sign-in page (sign out)
    capability: bool = False  # the path itself grants access (an invitation link)
    prep: str | None = None  # put the seed in the state the action needs first
    ours: bool = False  # names our project's id outside the path (form data)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def names_our_id(self) -> bool:
        return self.ours or bool(placeholders(self.path) & OUR_IDS)


@dataclass(frozen=True)
class Endpoint:
    """One /v1 route: the least key scope, a body that succeeds, and the success status."""

    method: str
    path: str
    scope: str | None
    body: dict | None = None
    ok: int = 200
    writes: bool = False
    prep: str | None = None  # as Page.prep

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def names_our_id(self) -> bool:
        return bool(placeholders(self.path) & OUR_IDS)


JOB_FORM = {
    "name": "Made by the table",
    "prompt": "acme",
    "sources": "https://news.example.com/feed.xml",
    "limit": "100",
    "date_range": "",
    "schedule_kind": "every_hour",
    "daily_at": "08:00",
    "cron": "",
    "timezone": "UTC",
}
# A real S3 server's bucket and key (the "s3" prep puts them in the seed's ids).
BUCKET_FORM = {
    "endpoint": "{s3_endpoint}",
    "bucket": "{s3_bucket}",
    "access_key": "{s3_access_key}",
    "secret_key": "{s3_secret_key}",
}
# A cloud service's URL names no host, so creating it resolves nothing.
CHANNEL_FORM = {"name": "Team", "url": "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"}
JOB_BODY = {
    "name": "Made by the table",
    "prompt": "acme",
    "sources": ["https://news.example.com/feed.xml"],
    "schedule": "daily",
}

DASHBOARD: tuple[Page, ...] = (
    Page("GET", "/healthz", PUBLIC, prep="alive"),
    # An install with accounts sends everyone from set-up to sign-in.
    Page("GET", "/setup", PUBLIC, ok=(302,), to_login=True),
    Page(
        "POST",
        "/setup",
        PUBLIC,
        {"email": "new@example.com", "password": "long enough pass", "project": "New"},
        ok=(302,),
        to_login=True,
    ),
    Page("GET", "/login", PUBLIC, anon_ok=(200,), ok=(302,)),  # signed in: on to the jobs
    Page(
        "POST",
        "/login",
        PUBLIC,
        {"email": "{member_email}", "password": PASSWORD},
        ok=(303,),
    ),
    Page("POST", "/logout", "viewer", ok=(303,), to_login=True),
    Page("GET", "/account", "viewer"),
    Page(
        "POST",
        "/account",
        "viewer",
        {"current_password": PASSWORD, "password": "a brand new password"},
        ok=(303,),
        writes=True,
    ),
    Page("GET", "/invite/{token}", PUBLIC, capability=True),
    Page(
        "POST",
        "/invite/{token}",
        PUBLIC,
        {"email": "joiner@example.com", "name": "Joiner", "password": "long enough pass"},
        ok=(303,),
        writes=True,
        capability=True,
    ),
    Page("GET", "/projects", "viewer"),
    Page("POST", "/projects", "viewer", {"name": "Side project"}, ok=(303,)),
    Page(
        "POST",
        "/projects/switch",
        "viewer",
        {"project_id": "{project_id}", "next": "/jobs"},
        ok=(303,),
        ours=True,
    ),
    Page("GET", "/", "viewer", ok=(302,)),
    Page("GET", "/jobs", "viewer"),
    Page("GET", "/jobs/new", "editor"),
    Page("POST", "/jobs/new", "editor", JOB_FORM, ok=(303,), writes=True),
    Page("GET", "/jobs/{job}/edit", "editor"),
    Page(
        "POST",
        "/jobs/{job}/edit",
        "editor",
        {**JOB_FORM, "name": "Renamed"},
        ok=(303,),
        writes=True,
    ),
    Page(
        "POST",
        "/schedule/preview",
        "viewer",
        {"schedule_kind": "daily_at", "daily_at": "08:00", "timezone": "UTC"},
    ),
    Page("POST", "/prompt/plan", "viewer", {"prompt": '"acme corp" -jobs'}),
    Page("GET", "/jobs/{job}", "viewer"),
    Page("GET", "/jobs/today", "viewer"),
    Page("GET", "/jobs/{job}/row", "viewer"),
    Page("GET", "/jobs/{job}/status", "viewer"),
    Page("GET", "/jobs/{job}/runs", "viewer"),
    Page("GET", "/jobs/{job}/timeline", "viewer"),
    Page("POST", "/jobs/{job}/pause", "editor", ok=(303,), writes=True),
    Page("POST", "/jobs/{job}/resume", "editor", ok=(303,), writes=True, prep="pause"),
    Page("POST", "/jobs/{job}/run", "editor", ok=(303,), writes=True),
    Page("POST", "/jobs/{job}/delete", "editor", ok=(303,), writes=True),
    Page("POST", "/jobs/{job}/feed/rotate", "editor", ok=(303,), writes=True),
    Page("GET", "/runs/{run}", "viewer"),
    Page("GET", "/query", "viewer"),
    Page(
        "POST",
        "/query",
        "editor",
        {"prompt": "acme", "limit": "10", "sources": "https://news.example.com/feed.xml"},
        ok=(303,),
        writes=True,
    ),
    Page("GET", "/query/{query}", "viewer"),
    Page("GET", "/query/{query}/status", "viewer"),
    Page("GET", "/storage", "viewer"),
    Page("GET", "/storage/files/{key}", "viewer"),
    Page("GET", "/storage/files/{key}/download", "viewer"),
    Page("GET", "/storage/records", "viewer"),
    Page("GET", "/storage/records.{fmt}", "viewer"),
    Page("GET", "/storage/records/{record}", "viewer"),
    Page("GET", "/analytics", "viewer"),
    Page("GET", "/analytics/jobs/{job}", "viewer"),
    Page("GET", "/analytics/chart/{chart}.svg", "viewer"),
    Page("GET", "/analytics/jobs/{job}/chart/{chart}.svg", "viewer"),
    Page("GET", "/settings", "owner", ok=(302,)),
    Page("GET", "/settings/general", "owner"),
    Page("POST", "/settings/general", "owner", {"name": "Renamed project"}, ok=(303,), writes=True),
    Page("GET", "/settings/api-keys", "owner"),
    Page("POST", "/settings/api-keys", "owner", {"name": "CI", "scope": "read"}, writes=True),
    Page("POST", "/settings/api-keys/{api_key}/revoke", "owner", ok=(303,), writes=True),
    Page("GET", "/settings/members", "owner"),
    Page(
        "POST",
        "/settings/members/{member}/role",
        "owner",
        {"role": "editor"},
        ok=(303,),
        writes=True,
    ),
    Page("POST", "/settings/members/{member}/remove", "owner", ok=(303,), writes=True),
    Page("POST", "/settings/invitations", "owner", {"role": "viewer"}, writes=True),
    Page("POST", "/settings/invitations/{invitation}/revoke", "owner", ok=(303,), writes=True),
    Page("GET", "/settings/webhooks", "owner"),
    Page(
        "POST",
        "/settings/webhooks",
        "owner",
        {"url": "https://hooks.example.com/new", "events": ["job.completed", "job.failed"]},
        writes=True,
    ),
    Page("POST", "/settings/webhooks/{webhook}/rotate", "owner", writes=True),
    Page("POST", "/settings/webhooks/{webhook}/delete", "owner", ok=(303,), writes=True),
    Page(
        "POST", "/settings/webhooks/deliveries/{delivery}/resend", "owner", ok=(303,), writes=True
    ),
    Page("POST", "/settings/webhooks/project-secret/rotate", "owner", ok=(303,), writes=True),
    Page("GET", "/settings/channels", "owner"),
    Page("POST", "/settings/channels", "owner", CHANNEL_FORM, ok=(303,), writes=True),
    # The seeded channel points at a closed loopback port: the test send fails, is recorded.
    Page("POST", "/settings/channels/{channel}/test", "owner", ok=(422,), writes=True),
    Page("POST", "/settings/channels/{channel}/delete", "owner", ok=(303,), writes=True),
    Page("GET", "/settings/sources", "owner"),
    Page(
        "POST",
        "/settings/sources/{credential}",
        "owner",
        {"value": "a new token"},
        ok=(303,),
        writes=True,
    ),
    Page("POST", "/settings/sources/{credential}/clear", "owner", ok=(303,), writes=True),
    Page("GET", "/settings/storage", "owner"),
    Page(
        "POST",
        "/settings/storage/retention",
        "owner",
        {"days": "30", "runs_per_job": ""},
        ok=(303,),
        writes=True,
    ),
    Page(
        "POST", "/settings/storage/bucket", "owner", BUCKET_FORM, ok=(303,), writes=True, prep="s3"
    ),
    Page("POST", "/settings/storage/bucket/disconnect", "owner", ok=(303,), writes=True),
)

API: tuple[Endpoint, ...] = (
    Endpoint("GET", "/v1/openapi.json", PUBLIC),
    Endpoint("GET", "/v1/project", "read"),
    Endpoint("PATCH", "/v1/project", "admin", {"retention": {"days": 30}}, writes=True),
    Endpoint("GET", "/v1/jobs", "read"),
    Endpoint("POST", "/v1/jobs", "write", JOB_BODY, 201, writes=True),
    Endpoint("GET", "/v1/jobs/{job}", "read"),
    Endpoint("PATCH", "/v1/jobs/{job}", "write", {"name": "Patched"}, writes=True),
    Endpoint("DELETE", "/v1/jobs/{job}", "write", ok=204, writes=True),
    Endpoint("POST", "/v1/jobs/{job}/pause", "write", writes=True),
    Endpoint("POST", "/v1/jobs/{job}/resume", "write"),
    Endpoint("POST", "/v1/jobs/{job}/run", "write", ok=202, writes=True),
    Endpoint("GET", "/v1/jobs/{job}/runs", "read"),
    Endpoint("GET", "/v1/jobs/{job}/feed", "read"),
    Endpoint("GET", "/v1/runs/{run}", "read"),
    Endpoint("GET", "/v1/runs/{run}/records", "read"),
    Endpoint("GET", "/v1/records", "read"),
    Endpoint("GET", "/v1/api-keys", "admin"),
    Endpoint("POST", "/v1/api-keys", "admin", {"name": "CI", "scope": "read"}, 201, writes=True),
    Endpoint("DELETE", "/v1/api-keys/{api_key}", "admin", ok=204, writes=True),
    Endpoint(
        "POST",
        "/v1/queries",
        "write",
        {"prompt": "acme", "limit": 10, "sources": ["https://news.example.com/feed.xml"]},
        202,
        writes=True,
    ),
    Endpoint("GET", "/v1/queries/{query}", "read"),
    Endpoint("POST", "/v1/schedules/preview", "read", {"schedule": "0 8 * * *", "count": 3}),
    Endpoint("GET", "/v1/sources", "read"),
    Endpoint("GET", "/v1/storage", "read"),
    Endpoint("GET", "/v1/storage/{key}", "read"),
    Endpoint("PUT", "/v1/storage/bucket", "admin", BUCKET_FORM, writes=True, prep="s3"),
    Endpoint("GET", "/v1/storage/bucket", "admin"),
    Endpoint("DELETE", "/v1/storage/bucket", "admin", ok=204, writes=True),
    Endpoint("GET", "/v1/channels", "admin"),
    Endpoint("POST", "/v1/channels", "admin", CHANNEL_FORM, 201, writes=True),
    Endpoint("DELETE", "/v1/channels/{channel}", "admin", ok=204, writes=True),
    Endpoint("POST", "/v1/channels/{channel}/test", "admin", ok=422, writes=True),
    Endpoint("GET", "/v1/webhooks", "admin"),
    Endpoint(
        "POST",
        "/v1/webhooks",
        "admin",
        {"url": "https://hooks.example.com/new", "events": ["job.failed"]},
        201,
        writes=True,
    ),
    Endpoint("DELETE", "/v1/webhooks/{webhook}", "admin", ok=204, writes=True),
    Endpoint("POST", "/v1/webhooks/{webhook}/rotate", "admin", writes=True),
)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- the seed ----------------------------------------------------------------------------------


@dataclass
class Seed:
    project: Project
    ids: dict[str, str]
    job: Job
    member: User

    def path(self, template: str) -> str:
        return template.format(**self.ids)

    def form(self, data: dict) -> dict:
        return {
            name: value.format(**self.ids) if isinstance(value, str) else value
            for name, value in data.items()
        }


def seed_project(db, project: Project, marker: str) -> Seed:
    """Real objects of `project`, every name starting with `marker`."""
    project.name = f"{marker}-Project"
    db.session.commit()
    job = make_job(project, name=f"{marker}-Job", prompt=f"{marker}-prompt")
    finished = now() - timedelta(hours=1)

    def completed(public_id: str, job_id, trigger: str, params=None, titles=()) -> Run:
        run = Run(
            public_id=public_id,
            project_id=project.id,
            job_id=job_id,
            trigger=trigger,
            scheduled_for=finished - timedelta(minutes=1),
            status="completed",
            started_at=finished - timedelta(seconds=30),
            finished_at=finished,
            record_count=len(titles),
            new_count=len(titles),
            params=params,
        )
        db.session.add(run)
        db.session.flush()
        for position, title in enumerate(titles):
            db.session.add(
                Record(
                    run_id=run.id,
                    job_id=job_id,
                    project_id=project.id,
                    position=position,
                    source="rss",
                    fingerprint=f"fp-{run.id}-{position}",
                    url=f"https://news.example.com/{marker}/{position}",
                    domain="news.example.com",
                    title=title,
                    text=f"{marker} text",
                    author=f"{marker}-Author",
                    published_at=finished - timedelta(hours=2),
                    metrics={"score": 3},
                    raw={"id": position},
                    is_new=True,
                )
            )
        db.session.commit()
        return run

    run = completed(
        new_public_id("run"), job.id, "schedule", titles=[f"{marker}-Record-{i}" for i in range(3)]
    )
    query = completed(
        new_public_id("qry"),
        None,
        "query",
        params={
            "prompt": f"{marker}-query",
            "limit": 100,
            "date_range": None,
            "sources": [{"type": "rss", "url": "https://news.example.com/feed.xml"}],
        },
        titles=[f"{marker}-Query-Record"],
    )
    record = db.session.scalars(
        select(Record).where(Record.run_id == run.id).order_by(Record.position)
    ).first()
    api_key, _ = keys.create_key(project, f"{marker}-Key", "read")
    webhook, _ = webhooks.create_webhook(
        project, f"https://hooks.example.com/{marker}", ["job.completed"]
    )
    delivery = Delivery(
        project_id=project.id, run_id=run.id, job_id=job.id, kind="webhook",
        target=webhook.public_id, event="job.completed", payload={}, status="delivered",
        attempt=1,
    )
    db.session.add(delivery)
    db.session.commit()
    invitation, token = accounts.create_invitation(project, "viewer", None)
    member = make_user(f"member-{marker.lower()}@example.com", "viewer", project)
    credentials.set_credential(project, "youtube_api_key", f"{marker}-stored-token")
    channel = Channel(project_id=project.id, name=f"{marker}-Channel", kind="json")
    channel.url = "json://127.0.0.1:9/alerts"
    db.session.add(channel)
    bucket = Bucket(project_id=project.id, bucket="seeded", access_key=f"{marker}-AccessKey")
    bucket.secret_key = f"{marker}-bucket-secret"
    db.session.add(bucket)
    db.session.commit()
    ids = {
        "job": job.public_id,
        "run": run.public_id,
        "query": query.public_id,
        "key": result_key(run),
        "record": record.public_id,
        "api_key": api_key.public_id,
        "webhook": webhook.public_id,
        "delivery": delivery.public_id,
        "channel": channel.public_id,
        "invitation": invitation.public_id,
        "member": member.public_id,
        "member_email": member.email,
        "token": token,
        "project_id": str(project.id),
        "fmt": "csv",
        "chart": "sources",
        "credential": "youtube_api_key",
    }
    return Seed(project=project, ids=ids, job=job, member=member)


@pytest.fixture
def ours(app, db, project) -> Seed:
    return seed_project(db, project, OURS)


def _alive(_seed) -> None:
    """A scheduler and a worker have sent their heartbeats, so /healthz answers 200."""
    from webapp.queueing import beat, get_redis

    beat(get_redis(), "scheduler", "table-scheduler")
    beat(get_redis(), "worker", "table-worker")


def _s3(seed) -> None:
    """A real S3 server's bucket and a key for it, in the ids the bucket forms are made from."""
    credentials = shared_s3().fresh()
    seed.ids.update(
        s3_endpoint=credentials.endpoint,
        s3_bucket=credentials.bucket,
        s3_access_key=credentials.access_key,
        s3_secret_key=credentials.secret_key,
    )


PREPS = {"pause": lambda seed: jobs_service.pause_job(seed.job), "alive": _alive, "s3": _s3}


def snapshot(db, project: Project) -> dict:
    """Everything of a project a request could change (last-used stamps aside)."""
    db.session.expire_all()
    pid = project.id

    def rows(*columns, where):
        return sorted(
            tuple(map(str, row)) for row in db.session.execute(select(*columns).where(where))
        )

    members = select(Membership.user_id).where(Membership.project_id == pid)
    return {
        "project": rows(
            Project.name,
            Project.retention_days,
            Project.retention_runs_per_job,
            where=Project.id == pid,
        ),
        "project_secret": rows(Project.webhook_secret_encrypted, where=Project.id == pid),
        "jobs": rows(
            Job.public_id,
            Job.name,
            Job.prompt,
            Job.state,
            Job.enabled,
            Job.next_run_at,
            Job.schedule_value,
            Job.sources,
            Job.feed_token_encrypted,
            where=Job.project_id == pid,
        ),
        "runs": rows(Run.public_id, Run.status, Run.job_id, where=Run.project_id == pid),
        "records": rows(Record.public_id, Record.title, where=Record.project_id == pid),
        "keys": rows(
            ApiKey.public_id,
            ApiKey.name,
            ApiKey.scope,
            ApiKey.revoked_at,
            where=ApiKey.project_id == pid,
        ),
        "webhooks": rows(
            Webhook.public_id,
            Webhook.url,
            Webhook.events,
            Webhook.secret_encrypted,
            where=Webhook.project_id == pid,
        ),
        "deliveries": rows(
            Delivery.public_id, Delivery.status, Delivery.next_attempt_at,
            where=Delivery.project_id == pid,
        ),
        "channels": rows(
            Channel.public_id, Channel.name, Channel.last_error, where=Channel.project_id == pid
        ),
        "members": rows(Membership.user_id, Membership.role, where=Membership.project_id == pid),
        "users": rows(
            User.id, User.email, User.password_hash, User.session_token, where=User.id.in_(members)
        ),
        "invitations": rows(
            Invitation.public_id,
            Invitation.revoked_at,
            Invitation.accepted_at,
            where=Invitation.project_id == pid,
        ),
        "credentials": rows(
            SourceCredential.name,
            SourceCredential.value_encrypted,
            where=SourceCredential.project_id == pid,
        ),
        "buckets": rows(
            Bucket.bucket, Bucket.access_key, Bucket.secret_key_encrypted,
            where=Bucket.project_id == pid,
        ),
    }


# --- helpers -----------------------------------------------------------------------------------


def call(client, page: Page, seed: Seed, headers: dict | None = None):
    path = seed.path(page.path)
    if page.method == "GET":
        return client.get(path, headers=headers)
    return client.open(path, method=page.method, data=seed.form(page.data), headers=headers)


def location(response) -> str:
    return response.headers.get("Location", "")


def goes_to_login(response) -> bool:
    return (
        response.status_code in (301, 302, 303)
        and re.match(r"^(https?://[^/]+)?/login\b", location(response)) is not None
    )


def text(response) -> str:
    return response.get_data(as_text=True)


def assert_no_server_error(response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code}\n{text(response)[:2000]}"
    assert "Traceback" not in text(response)


# --- completeness ------------------------------------------------------------------------------


def _shape(template: str) -> str:
    """A rule or a template with every variable part made alike: /jobs/<job_id> ~ /jobs/{job}."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", template)


def test_every_route_of_the_app_is_in_exactly_one_table(app):
    tables = [(str(entry), entry.method, _shape(entry.path)) for entry in (*DASHBOARD, *API)]
    missing, doubled = [], []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found = [
                name for name, m, shape in tables if m == method and shape == _shape(rule.rule)
            ]
            if not found:
                missing.append(f"{method} {rule.rule} ({rule.endpoint})")
            elif len(found) > 1:
                doubled.append(f"{method} {rule.rule}: {found}")
    assert not missing, "routes in no table: " + ", ".join(missing)
    assert not doubled, "routes in more than one table: " + ", ".join(doubled)
    assert not [e for e in DASHBOARD if e.path.startswith("/v1")], "API routes belong in API"
    assert all(e.path.startswith("/v1/") for e in API)


def test_every_table_entry_resolves_to_a_rule_of_its_own(app, ours):
    """A template that no longer matches its rule (or matches another) is caught here."""
    adapter = app.url_map.bind("localhost")
    endpoints = {}
    for entry in (*DASHBOARD, *API):
        endpoint, _ = adapter.match(ours.path(entry.path), method=entry.method)
        assert endpoint != "static"
        endpoints.setdefault((entry.method, endpoint), []).append(str(entry))
    shared = {ep: names for ep, names in endpoints.items() if len(names) > 1}
    assert not shared, f"entries sharing one view and method: {shared}"


def test_the_tables_agree_with_the_views_own_markings(app, ours):
    """Where a view says @requires or @public, the table must say the same, so changing one
    without the other is noticed (the persona cases then check what the app really does)."""
    adapter = app.url_map.bind("localhost")
    for page in DASHBOARD:
        endpoint, _ = adapter.match(ours.path(page.path), method=page.method)
        view = app.view_functions[endpoint]
        if getattr(view, "is_public", False) or endpoint == "healthz":
            assert page.role is PUBLIC, f"{page}: the view is public"
            continue
        assert page.role is not PUBLIC, f"{page}: the view needs sign-in"
        default = "viewer" if page.method == "GET" else "editor"
        assert (getattr(view, "required_role", None) or default) == page.role, str(page)


# --- the dashboard, persona by persona ---------------------------------------------------------


def _cases():
    for page in DASHBOARD:
        for persona_name in PERSONAS:
            yield pytest.param(page, persona_name, id=f"{page}-{persona_name}")


def _allowed(page: Page, role: str) -> bool:
    return page.role is PUBLIC or ROLES.index(role) >= ROLES.index(page.role)


@pytest.mark.redis  # /healthz reads the heartbeats in Redis
@pytest.mark.parametrize(("page", "persona_name"), list(_cases()))
def test_dashboard_route_answers_each_persona(app, db, ours, persona, page, persona_name):
    client = app.test_client() if persona_name == "anonymous" else persona(persona_name)
    if page.prep:
        PREPS[page.prep](ours)
    before = snapshot(db, ours.project)
    what = f"{page} as {persona_name}"

    if persona_name == "anonymous":
        if page.role is PUBLIC:
            response = call(client, page, ours)
            assert_no_server_error(response, what)
            assert response.status_code in (page.anon_ok or page.ok), what
            if page.to_login:
                assert goes_to_login(response), what
            if page.writes:
                assert snapshot(db, ours.project) != before, f"{what} changed nothing"
            return
        response = call(client, page, ours)
        assert response.status_code == 302 and goes_to_login(response), (
            f"{what}: {response.status_code} {location(response)}"
        )
        partial = call(app.test_client(), page, ours, headers={"HX-Request": "true"})
        assert partial.status_code == 401, what
        assert partial.headers.get("HX-Redirect", "").startswith("/login"), what
        assert OURS not in text(response) + text(partial)
        assert snapshot(db, ours.project) == before, f"{what} changed our project"
        return

    response = call(client, page, ours)
    assert_no_server_error(response, what)
    body = text(response)

    if persona_name == "outsider":
        if page.capability:  # the link is the permission: whoever holds it may use it
            assert response.status_code in page.ok, what
            return
        if page.names_our_id:
            assert response.status_code == 404, f"{what}: {response.status_code}"
        else:  # their own project's page
            assert response.status_code in page.ok, f"{what}: {response.status_code}\n{body[:800]}"
            assert not goes_to_login(response) or page.to_login, what
        assert OURS not in body, f"{what} shows our project's data"
        assert snapshot(db, ours.project) == before, f"{what} changed our project"
        return

    if not _allowed(page, persona_name):
        assert response.status_code == 403, f"{what}: {response.status_code}"
        assert snapshot(db, ours.project) == before, f"{what} changed our project"
        return

    assert response.status_code in page.ok, f"{what}: {response.status_code}\n{body[:800]}"
    assert response.status_code != 403
    if not page.to_login:
        assert not goes_to_login(response), f"{what} sent a member to sign in"
    if page.writes:
        assert snapshot(db, ours.project) != before, f"{what} changed nothing"


def test_outsider_sees_only_their_own_project(app, db, ours, persona):
    """Every listing an outsider can open shows their project's things and none of ours."""
    client = persona("outsider")
    theirs = seed_project(db, ensure_project("Elsewhere"), "Theirs")
    login(client, db.session.get(User, client_user_id(client)), theirs.project)
    pages = [
        "/jobs",
        "/query",
        "/storage",
        "/storage/records",
        "/analytics",
        "/settings/general",
        "/settings/api-keys",
        "/settings/members",
        "/settings/webhooks",
        "/settings/storage",
        "/projects",
        "/storage/records.csv",
    ]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        assert OURS not in text(response), f"{path} shows our project"
    assert "Theirs-Job" in text(client.get("/jobs"))
    assert "Theirs-Record-0" in text(client.get("/storage/records"))
    assert "Theirs-Key" in text(client.get("/settings/api-keys"))
    assert "Theirs-AccessKey" in text(client.get("/settings/storage"))
    assert "Theirs-Query-Record" in text(client.get("/storage/records.csv"))
    # Our ids in a filter of their own pages find nothing of ours either.
    for path in (
        f"/storage?job={ours.ids['job']}",
        f"/storage/records?job={ours.ids['job']}",
        f"/storage/records?run={ours.ids['run']}",
        f"/storage/records.csv?run={ours.ids['query']}",
        f"/analytics?job={ours.ids['job']}",
    ):
        response = client.get(path, follow_redirects=True)
        assert response.status_code in (404, 422), f"{path}: {response.status_code}"
        assert OURS not in text(response), path


def client_user_id(client) -> int:
    with client.session_transaction() as session:
        return int(session["_user_id"].split(":")[0])


def test_a_member_removed_from_the_project_loses_access_at_once(app, db, ours, persona):
    editor = persona("editor")
    assert editor.get(f"/jobs/{ours.ids['job']}").status_code == 200
    user = db.session.scalar(select(User).where(User.email == "editor@example.com"))
    accounts.remove_member(ours.project, user.public_id)
    response = editor.get(f"/jobs/{ours.ids['job']}")
    # No project left: sent to make one, never shown ours.
    assert response.status_code == 302 and location(response).endswith("/projects")
    assert editor.post(f"/jobs/{ours.ids['job']}/pause").status_code == 302
    assert snapshot(db, ours.project)["jobs"][0][3] == "active"


def test_a_demoted_member_meets_403_on_the_next_request(app, db, ours, persona):
    editor = persona("editor")
    assert editor.get("/jobs/new").status_code == 200
    user = db.session.scalar(select(User).where(User.email == "editor@example.com"))
    accounts.set_role(ours.project, user.public_id, "viewer")
    assert editor.get("/jobs/new").status_code == 403
    assert editor.post(f"/jobs/{ours.ids['job']}/delete").status_code == 403
    assert db.session.scalar(select(Job).where(Job.public_id == ours.ids["job"])) is not None


# --- the API, key by key -----------------------------------------------------------------------


def assert_api_error(response, status: int, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {text(response)[:500]}"
    assert response.mimetype == "application/json", what
    body = response.get_json()
    assert set(body) == {"error"}, what
    error = body["error"]
    assert isinstance(error.get("code"), str) and re.fullmatch(r"[a-z_]+", error["code"]), what
    assert isinstance(error.get("message"), str) and error["message"], what
    assert set(error) <= {"code", "message", "field"}, what


def _api_cases():
    for endpoint in API:
        cases = ["no_key", "unknown_key", "revoked_key"]
        if endpoint.scope is not PUBLIC:
            cases += [f"lower:{s}" for s in SCOPES[: SCOPES.index(endpoint.scope)]]
            cases += [f"enough:{s}" for s in SCOPES[SCOPES.index(endpoint.scope) :]]
            cases.append("other_project_admin")
        else:
            cases = ["no_key"]
        for case in cases:
            yield pytest.param(endpoint, case, id=f"{endpoint}-{case}")


@pytest.mark.parametrize(("endpoint", "case"), list(_api_cases()))
def test_api_route_answers_each_key(app, db, ours, api_key, endpoint, case):
    client = app.test_client()
    what = f"{endpoint} with {case}"
    if case == "no_key":
        headers = {}
    elif case == "unknown_key":
        headers = {"Authorization": "Bearer bsk_" + "x" * 43}
    elif case == "revoked_key":
        headers = api_key("admin")
        keys.revoke_key(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())).first())
    elif case == "other_project_admin":
        other = ensure_project("Elsewhere")
        seed_project(db, other, "Theirs")
        headers = api_key("admin", target=other)
    else:
        headers = api_key(case.split(":")[1])
    if endpoint.prep:
        PREPS[endpoint.prep](ours)
    before = snapshot(db, ours.project)
    body = ours.form(endpoint.body) if endpoint.body is not None else None
    response = client.open(
        ours.path(endpoint.path), method=endpoint.method, json=body, headers=headers
    )
    assert_no_server_error(response, what)

    if endpoint.scope is PUBLIC:
        assert response.status_code == endpoint.ok, what
        return
    if case in ("no_key", "unknown_key", "revoked_key"):
        assert_api_error(response, 401, what)
    elif case.startswith("lower:"):
        assert_api_error(response, 403, what)
    elif case == "other_project_admin":
        if endpoint.names_our_id:
            assert_api_error(response, 404, what)
        else:
            assert response.status_code == endpoint.ok, f"{what}: {text(response)[:500]}"
        assert OURS not in text(response), f"{what} shows our project's data"
    else:
        assert response.status_code == endpoint.ok, f"{what}: {text(response)[:500]}"
        if endpoint.writes:
            assert snapshot(db, ours.project) != before, f"{what} changed nothing"
        return
    assert snapshot(db, ours.project) == before, f"{what} changed our project"


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/no-such-thing", None, 404),
        ("PUT", "/v1/jobs", None, 405),
        ("POST", "/v1/jobs", "{not json", 400),
        ("POST", "/v1/jobs", "[]", 400),
        ("POST", "/v1/jobs", "{}", 422),
        ("GET", "/v1/jobs/job_01J0000000000000000000000Z", None, 404),
        ("GET", "/v1/storage/not-a-key.json", None, 404),
    ],
)
def test_api_errors_past_authentication_keep_the_error_shape(
    app, api_key, method, path, body, status
):
    response = app.test_client().open(
        path, method=method, data=body, content_type="application/json", headers=api_key("admin")
    )
    assert_api_error(response, status, f"{method} {path}")


def test_a_revoked_key_stops_working_at_once(app, db, ours, api_key, client):
    """Revoked in the dashboard or over the API: the next request with it is a 401."""
    for revoke in ("dashboard", "api"):
        headers = api_key("read")
        key = db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())).first()
        assert app.test_client().get("/v1/jobs", headers=headers).status_code == 200
        if revoke == "dashboard":
            assert client.post(f"/settings/api-keys/{key.public_id}/revoke").status_code == 303
        else:
            response = app.test_client().delete(
                f"/v1/api-keys/{key.public_id}", headers=api_key("admin")
            )
            assert response.status_code == 204
        assert_api_error(app.test_client().get("/v1/jobs", headers=headers), 401, revoke)


def test_other_projects_ids_in_api_query_strings_are_404(app, db, ours, api_key):
    other = ensure_project("Elsewhere")
    headers = api_key("admin", target=other)
    response = app.test_client().get(f"/v1/storage?job_id={ours.ids['job']}", headers=headers)
    assert_api_error(response, 404, "storage by our job")
    for name, value in (("job_id", ours.ids["job"]), ("run_id", ours.ids["run"]),
                        ("run_id", ours.ids["query"])):
        response = app.test_client().get(f"/v1/records?q={OURS}&{name}={value}", headers=headers)
        assert_api_error(response, 404, f"records by our {name}")
        assert OURS not in text(response)


def test_an_outsiders_key_cannot_revoke_our_key_or_touch_our_webhook(app, db, ours, api_key):
    headers = api_key("admin", target=ensure_project("Elsewhere"))
    before = snapshot(db, ours.project)
    for method, path in (
        ("DELETE", f"/v1/api-keys/{ours.ids['api_key']}"),
        ("DELETE", f"/v1/webhooks/{ours.ids['webhook']}"),
        ("POST", f"/v1/webhooks/{ours.ids['webhook']}/rotate"),
    ):
        assert_api_error(app.test_client().open(path, method=method, headers=headers), 404, path)
    assert snapshot(db, ours.project) == before


# --- CSRF --------------------------------------------------------------------------------------


@pytest.fixture
def strict(app, db, ours, persona):
    """A second app on the same database with CSRF protection on, signed in as an owner."""
    from webapp import create_app

    strict_app = create_app({"TESTING": True})
    assert strict_app.config.get("WTF_CSRF_ENABLED", True) is not False
    owner = persona("owner")
    with owner.session_transaction() as session:
        user_id = int(session["_user_id"].split(":")[0])
    return login(strict_app.test_client(), db.session.get(User, user_id), ours.project)


WRITES = [page for page in DASHBOARD if page.method != "GET"]


@pytest.mark.parametrize("page", WRITES, ids=[str(p) for p in WRITES])
def test_a_dashboard_post_without_a_csrf_token_is_refused(db, ours, strict, page):
    if page.prep:
        PREPS[page.prep](ours)
    before = snapshot(db, ours.project)
    response = strict.open(ours.path(page.path), method=page.method, data=ours.form(page.data))
    assert response.status_code == 400, f"{page}: {response.status_code}"
    assert "Form expired" in text(response)
    assert snapshot(db, ours.project) == before, f"{page} changed our project without a token"
    # Still signed in (a refused sign-out signs nobody out) and still allowed.
    assert strict.get("/jobs").status_code == 200


def test_a_csrf_token_from_the_page_lets_the_same_post_through(db, ours, strict):
    """The refusals above are about the token, not the form: with it, the post succeeds."""
    html = text(strict.get("/settings/general"))
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    response = strict.post("/settings/general", data={"name": "Renamed", "csrf_token": token})
    assert response.status_code == 303
    assert snapshot(db, ours.project)["project"] == [("Renamed", "None", "None")]
