"""One-off queries: POST /v1/queries runs once on a real worker; GET shows status and results."""

from __future__ import annotations

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
        "/v1/queries", json={"prompt": "acme", "sources": [{"type": "rss", "url": url}]},
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
        ({"prompt": "a", "sources": ["https://e.com/f"], "date_range": {"last": "soon"}}, "date_range"),
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
        "/v1/queries", json={"prompt": "a", "sources": ["https://e.com/f"]}, headers=api_key("write")
    ).get_json()["id"]
    outsider = api_key("admin", ensure_project("Other"))
    assert client.get(f"/v1/queries/{query_id}", headers=outsider).status_code == 404
    assert client.get(f"/v1/queries/{query_id}", headers=api_key("read")).status_code == 200
