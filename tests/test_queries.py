"""One-off queries: POST /v1/queries runs once on a real worker; GET shows status and results."""

from __future__ import annotations

import json

import pytest

from feeds import rss_document, wait_until

ITEMS = [
    {"title": "Acme opens a lab", "link": "https://news.example.com/q/1"},
    {"title": "Nothing to see", "link": "https://news.example.com/q/2"},
]


def test_query_runs_once_and_returns_matching_records(client, api_key, feed_server, processes):
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    headers = api_key("write")
    processes.worker()
    response = client.post(
        "/v1/queries",
        json={"prompt": "acme", "sources": [{"type": "rss", "url": url}]},
        headers=headers,
    )
    assert response.status_code == 202
    body = response.get_json()
    assert body["id"].startswith("qry_") and body["status"] == "queued"

    def completed():
        result = client.get(f"/v1/queries/{body['id']}", headers=headers).get_json()
        return result if result["status"] == "completed" else None

    result = wait_until(completed, 30, message="the query to complete")
    assert result["record_count"] == 1
    assert [r["title"] for r in result["results"]] == ["Acme opens a lab"]
    assert result["results"][0]["url"] == "https://news.example.com/q/1"


def test_query_whose_only_source_fails_is_failed_with_the_reason(client, api_key, processes):
    headers = api_key("write")
    processes.worker()
    response = client.post(
        "/v1/queries",
        json={"prompt": "acme", "sources": ["http://127.0.0.1:9/closed.xml"]},
        headers=headers,
    )
    query_id = response.get_json()["id"]

    def failed():
        result = client.get(f"/v1/queries/{query_id}", headers=headers).get_json()
        return result if result["status"] == "failed" else None

    result = wait_until(failed, 30)
    assert "127.0.0.1:9" in result["error"]
    assert "results" not in result


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sources": ["https://example.com/f.xml"]}, "prompt"),
        ({"prompt": "acme"}, "sources"),
        ({"prompt": "acme", "sources": []}, "sources"),
        ({"prompt": "acme", "sources": ["https://example.com/f.xml"], "limit": 0}, "limit"),
        ({"prompt": "x" * 2001, "sources": ["https://example.com/f.xml"]}, "prompt"),
        (
            {"prompt": "a", "sources": ["https://e.com/f"], "date_range": {"last": "soon"}},
            "date_range",
        ),
    ],
)
def test_invalid_query_is_refused_with_the_field(client, api_key, body, field):
    response = client.post("/v1/queries", json=body, headers=api_key("write"))
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_a_read_key_cannot_submit_and_other_projects_see_nothing(client, api_key, project):
    from webapp.jobs.service import ensure_project

    response = client.post(
        "/v1/queries", json={"prompt": "a", "sources": ["https://e.com/f"]}, headers=api_key("read")
    )
    assert response.status_code == 403
    query_id = client.post(
        "/v1/queries",
        json={"prompt": "a", "sources": ["https://e.com/f"]},
        headers=api_key("write"),
    ).get_json()["id"]
    outsider = api_key("admin", ensure_project("Other"))
    assert client.get(f"/v1/queries/{query_id}", headers=outsider).status_code == 404
    assert client.get(f"/v1/queries/{query_id}", headers=api_key("read")).status_code == 200


def test_query_page_runs_once_shows_results_and_saves_as_a_job(client, feed_server, processes):
    url = feed_server.serve("/feed.xml", rss_document(ITEMS))
    processes.worker()
    assert client.get("/query").status_code == 200
    response = client.post(
        "/query", data={"prompt": "acme", "sources": url, "limit": "20", "date_range": "7d"}
    )
    assert response.status_code == 303
    page = client.get(response.headers["Location"])
    assert 'hx-trigger="every 2s"' in page.text  # live until the results are in
    status_url = response.headers["Location"] + "/status"

    def done():
        text = client.get(status_url).text
        return text if "Save as job" in text else None

    panel = wait_until(done, 30, message="the results panel")
    assert "Acme opens a lab" in panel and "Nothing to see" not in panel
    assert "every 2s" not in panel  # polling stops with the final state
    save_link = panel.split('href="/jobs/new?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    form = client.get("/jobs/new?" + save_link).text
    assert ">acme</textarea>" in form
    assert url in form
    assert 'value="20"' in form


def test_query_form_errors_are_shown_next_to_their_fields(client):
    response = client.post("/query", data={"prompt": "", "sources": "", "limit": "5000"})
    assert response.status_code == 422
    assert 'id="prompt-error"' in response.text
    assert 'id="sources-error"' in response.text
    assert 'id="limit-error"' in response.text
    assert 'value="5000"' in response.text


WEB = {
    "type": "web",
    "url": "https://news.example.com/list",
    "item": "article",
    "title": "h2",
    "link": "a",
    "date": "time",
}
JSON_API = {
    "type": "json",
    "url": "https://api.example.com/items",
    "items": "data[]",
    "title": "name",
}


def _textarea(html: str, name: str) -> str:
    from html import unescape

    return unescape(html.split(f'id="{name}"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0])


def test_query_page_takes_the_json_source_lines_new_job_takes(client, db):
    from sqlalchemy import select

    from webapp.models import Run

    lines = "\n".join(
        ["hackernews", "https://news.example.com/feed.xml", json.dumps(WEB), json.dumps(JSON_API)]
    )
    response = client.post("/query", data={"prompt": "acme", "sources": lines, "limit": "20"})
    assert response.status_code == 303, response.text
    run = db.session.scalars(select(Run)).one()
    assert run.params["sources"] == [
        {"type": "hackernews"},
        {"type": "rss", "url": "https://news.example.com/feed.xml"},
        WEB,
        JSON_API,
    ]
    assert run.params["limit"] == 20


def test_a_bad_json_source_line_on_the_query_page_is_explained_by_the_sources_field(client):
    broken = json.dumps({"type": "web", "url": "https://news.example.com/list"})  # no selectors
    response = client.post("/query", data={"prompt": "acme", "sources": broken})
    assert response.status_code == 422
    error = response.text.split('id="sources-error"', 1)[1].split("</", 1)[0]
    assert "web" in error and "item" in error


def test_save_as_job_keeps_every_sources_options(client, db, project):
    """A web or json source keeps its selectors and expressions on the way to New Job."""
    from sqlalchemy import select

    from webapp.ids import new_public_id
    from webapp.models import Job, Run
    from webapp.timeutil import now

    sources = [{"type": "hackernews"}, {"type": "rss", "url": "https://e.com/f.xml"}, WEB, JSON_API]
    run = Run(
        public_id=new_public_id("qry"),
        project_id=project.id,
        job_id=None,
        trigger="query",
        status="completed",
        scheduled_for=now(),
        finished_at=now(),
        params={"prompt": "acme", "sources": sources, "limit": 30, "date_range": None},
    )
    db.session.add(run)
    db.session.commit()
    panel = client.get(f"/query/{run.public_id}/status").text
    link = panel.split('href="/jobs/new?', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    form = client.get("/jobs/new?" + link).text
    typed = _textarea(form, "sources")
    assert json.dumps(WEB) in typed and json.dumps(JSON_API) in typed
    saved = client.post(
        "/jobs/new",
        data={
            "name": "Saved",
            "prompt": _textarea(form, "prompt"),
            "sources": typed,
            "limit": "30",
            "schedule_kind": "daily",
            "timezone": "UTC",
        },
    )
    assert saved.status_code == 303, saved.text
    assert db.session.scalars(select(Job)).one().sources == sources
