"""The job's Atom feed: valid Atom 1.0 that feedparser and an XML parser read, of the job's
newest new records (at most 50); opened with an API key or with the job's private token, which
the job's page shows and Rotate replaces at once; whatever a source returned is escaped."""

from __future__ import annotations

import re
from datetime import timedelta
from xml.etree import ElementTree

import feedparser
from conftest import make_job
from helpers import fresh
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from sqlalchemy import select

from webapp.jobs import feed, service
from webapp.jobs.service import ensure_project
from webapp.models import Job, Record
from webapp.runs.lifecycle import claim_run, complete_run
from webapp.timeutil import now

ATOM = "{http://www.w3.org/2005/Atom}"


def record(n: int, **fields) -> dict:
    return {
        "source": "rss",
        "fingerprint": f"fp-{n}",
        "url": f"https://news.example.com/{n}",
        "title": f"Acme story {n}",
        "text": f"About acme, part {n}",
        "author": "Reporter",
        "published_at": now() - timedelta(hours=1, minutes=n),
        "metrics": {},
        "raw": {},
        **fields,
    }


def finish_run(db, job: Job, records: list[dict]):
    run = service.run_now(fresh(db, Job, job.id))
    assert claim_run(run.id)
    assert complete_run(run.id, records, [])
    return run


def feed_url_on_page(client, job: Job) -> str:
    page = HTMLParser(client.get(f"/jobs/{job.public_id}").get_data(as_text=True))
    return page.css_first("#feed-url").attributes["value"]


def get(client, url: str, **kwargs):
    return client.get(url.removeprefix("http://localhost"), **kwargs)


def test_the_feed_is_valid_atom_of_the_newest_new_records_only(app, db, project, api_key, client):
    job = make_job(project)
    finish_run(db, job, [record(n) for n in range(3)])
    # A second run finds two of those again (not new) and one new record.
    second = finish_run(db, job, [record(9, title="Acme story 9"), record(0), record(1)])
    response = app.test_client().get(f"/v1/jobs/{job.public_id}/feed", headers=api_key("read"))
    assert response.status_code == 200
    assert response.mimetype == "application/atom+xml"
    assert response.mimetype_params == {"charset": "utf-8"}

    root = ElementTree.fromstring(response.data)
    assert root.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name

    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Acme mentions · new records"
    self_link = next(link for link in parsed.feed.links if link.rel == "self")
    assert self_link.href == feed_url_on_page(client, job)
    titles = [entry.title for entry in parsed.entries]
    assert titles == ["Acme story 9", "Acme story 2", "Acme story 1", "Acme story 0"]
    newest = parsed.entries[0]
    stored = db.session.scalar(select(Record).where(Record.run_id == second.id, Record.is_new))
    assert newest.id == f"tag:localhost,{job.created_at:%Y-%m-%d}:{stored.public_id}"
    assert newest.link == "https://news.example.com/9"
    assert newest.summary == "About acme, part 9"
    assert newest.author == "Reporter"
    assert newest.published_parsed[:5] == stored.published_at.utctimetuple()[:5]
    assert [tag.term for tag in newest.tags] == ["rss"]
    # Ids are stable: the same records, read again, carry the same ids.
    again = feedparser.parse(
        app.test_client().get(f"/v1/jobs/{job.public_id}/feed", headers=api_key("read")).data
    )
    assert [e.id for e in again.entries] == [e.id for e in parsed.entries]


def test_the_feed_holds_at_most_fifty_entries_and_a_record_without_a_date_takes_its_runs(
    app, db, project, api_key
):
    job = make_job(project)
    finish_run(db, job, [record(n, published_at=None) for n in range(60)])
    parsed = feedparser.parse(
        app.test_client().get(f"/v1/jobs/{job.public_id}/feed", headers=api_key("read")).data
    )
    assert len(parsed.entries) == feed.FEED_ENTRIES == 50
    finished = service.last_runs_of([job])[job.id].finished_at
    assert parsed.entries[0].updated_parsed[:6] == finished.utctimetuple()[:6]


def test_hostile_text_from_a_source_is_escaped_and_only_web_links_are_kept(
    app, db, project, api_key
):
    job = make_job(project)
    hostile = record(
        1,
        title="<script>alert('t')</script> & <b>bold</b>\x0b",
        text="]]></summary><entry><title>Injected</title></entry> <img src=x onerror=alert(1)>",
        author="<i>Evil</i> & co",
        url="javascript:alert(document.cookie)",
    )
    finish_run(db, job, [hostile, record(2, url="ftp://files.example.com/x", title=None, text="")])
    response = app.test_client().get(f"/v1/jobs/{job.public_id}/feed", headers=api_key("read"))
    assert response.status_code == 200
    raw = response.get_data(as_text=True)
    assert "<script>" not in raw and "<img" not in raw and "<b>" not in raw and "<i>" not in raw
    root = ElementTree.fromstring(response.data)
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2  # nothing was injected as an entry of its own
    # The only links are the feed's own, the job's page, and the records' dashboard pages.
    links = [link.get("href") for link in root.iter(f"{ATOM}link")]
    assert len(links) == 4
    assert all(href.startswith("http://localhost/") for href in links)
    first = entries[1]  # record 1 (newest first: record 2 was stored after it)
    first_id = db.session.scalar(select(Record.public_id).where(Record.fingerprint == "fp-1"))
    assert first.find(f"{ATOM}link").get("href") == f"http://localhost/storage/records/{first_id}"
    assert first.find(f"{ATOM}title").text == "<script>alert('t')</script> & <b>bold</b>"
    assert first.find(f"{ATOM}title").get("type") is None  # Atom's default: plain text
    assert first.find(f"{ATOM}summary").text.startswith("]]></summary><entry>")
    assert first.find(f"{ATOM}summary").get("type") == "text"
    assert first.find(f"{ATOM}author/{ATOM}name").text == "<i>Evil</i> & co"
    # Without a title or text, the URL's text names the record; it is not made a link.
    assert entries[0].find(f"{ATOM}title").text == "ftp://files.example.com/x"
    assert entries[0].find(f"{ATOM}summary") is None
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0
    assert parsed.entries[1].title == "<script>alert('t')</script> & <b>bold</b>"


def test_a_key_of_any_scope_reads_the_feed_and_another_projects_job_is_404(app, project, api_key):
    job = make_job(project)
    client = app.test_client()
    url = f"/v1/jobs/{job.public_id}/feed"
    for scope in ("read", "write", "admin"):
        assert client.get(url, headers=api_key(scope)).status_code == 200, scope
    missing = client.get(url)
    assert missing.status_code == 401
    assert missing.get_json()["error"]["code"] == "unauthorized"
    theirs = client.get(url, headers=api_key("admin", target=ensure_project("Elsewhere")))
    assert theirs.status_code == 404
    assert theirs.get_json()["error"] == {
        "code": "not_found",
        "message": "No job with this id in this project.",
    }


def test_the_private_url_opens_without_a_key_and_a_wrong_token_is_404(
    app, db, project, client, api_key
):
    job = make_job(project)
    other = make_job(project, name="Other job")
    finish_run(db, job, [record(1)])
    url = feed_url_on_page(client, job)
    assert url.startswith(f"http://localhost/v1/jobs/{job.public_id}/feed?token=")
    token = url.split("token=", 1)[1]
    anonymous = app.test_client()
    opened = get(anonymous, url)
    assert opened.status_code == 200
    assert [e.title for e in feedparser.parse(opened.data).entries] == ["Acme story 1"]
    # The token is kept encrypted, and the page shows the same URL every time.
    stored = fresh(db, Job, job.id).feed_token_encrypted
    assert token not in stored and feed.feed_token(fresh(db, Job, job.id)) == token
    assert feed_url_on_page(client, job) == url
    another_project = get(
        anonymous,
        f"/v1/jobs/{job.public_id}/feed",
        headers=api_key("read", target=ensure_project("Elsewhere")),
    )
    for wrong in (
        f"/v1/jobs/{job.public_id}/feed?token={token[:-1]}x",
        f"/v1/jobs/{other.public_id}/feed?token={token}",  # another job's token
        f"/v1/jobs/job_01J0000000000000000000000Z/feed?token={token}",
        f"/v1/jobs/{job.public_id}%00/feed?token={token}",
    ):
        refused = get(anonymous, wrong)
        assert refused.status_code == 404, wrong
        if "%00" not in wrong:
            assert refused.get_json() == another_project.get_json(), wrong
    # An empty token is no token: the feed asks for a key.
    assert get(anonymous, f"/v1/jobs/{job.public_id}/feed?token=").status_code == 401


def test_rotate_replaces_the_url_at_once_and_only_editors_may_rotate(app, db, project, persona):
    job = make_job(project)
    viewer, editor = persona("viewer"), persona("editor")
    old = feed_url_on_page(viewer, job)
    viewer_page = HTMLParser(viewer.get(f"/jobs/{job.public_id}").get_data(as_text=True))
    assert viewer_page.css_first("a[type='application/atom+xml']").attributes["href"] == old
    assert viewer_page.css_first(f"form[action='/jobs/{job.public_id}/feed/rotate']") is None
    assert viewer.post(f"/jobs/{job.public_id}/feed/rotate").status_code == 403
    assert feed_url_on_page(viewer, job) == old

    rotated = editor.post(f"/jobs/{job.public_id}/feed/rotate")
    assert rotated.status_code == 303
    assert rotated.headers["Location"].endswith(f"/jobs/{job.public_id}#feed")
    new = feed_url_on_page(editor, job)
    assert new != old
    anonymous = app.test_client()
    assert get(anonymous, old).status_code == 404
    assert get(anonymous, new).status_code == 200
    assert feedparser.parse(get(anonymous, new).data).feed.links[0].href == new


def test_rotate_needs_the_forms_csrf_token(app, db, project, persona):
    job = make_job(project)
    editor = persona("editor")
    old = feed_url_on_page(editor, job)
    app.config["WTF_CSRF_ENABLED"] = True
    try:
        refused = editor.post(f"/jobs/{job.public_id}/feed/rotate")
        assert refused.status_code == 400
        assert feed_url_on_page(editor, job) == old
        html = editor.get(f"/jobs/{job.public_id}").get_data(as_text=True)
        form = re.search(
            rf'action="/jobs/{job.public_id}/feed/rotate".*?name="csrf_token" value="([^"]+)"',
            html,
            re.DOTALL,
        )
        accepted = editor.post(
            f"/jobs/{job.public_id}/feed/rotate", data={"csrf_token": form.group(1)}
        )
        assert accepted.status_code == 303
    finally:
        app.config["WTF_CSRF_ENABLED"] = False
    assert feed_url_on_page(editor, job) != old


def test_an_unchanged_feed_answers_304_and_a_new_run_changes_it(app, db, project, api_key):
    job = make_job(project)
    finish_run(db, job, [record(1)])
    client, headers = app.test_client(), api_key("read")
    url = f"/v1/jobs/{job.public_id}/feed"
    first = client.get(url, headers=headers)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    assert client.get(url, headers={**headers, "If-None-Match": etag}).status_code == 304
    finish_run(db, job, [record(2)])
    changed = client.get(url, headers={**headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert len(feedparser.parse(changed.data).entries) == 2


def test_the_document_describes_the_feed(app):
    document = app.test_client().get("/v1/openapi.json").get_json()
    operation = document["paths"]["/v1/jobs/{job_id}/feed"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["application/atom+xml"]
    assert {p["name"] for p in operation["parameters"]} == {"job_id", "token"}
    assert {"401", "404"} <= set(operation["responses"])
    assert "`read`" in operation["description"]
