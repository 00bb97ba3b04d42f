"""Dashboard → Jobs: filters and search, row actions in place, and the day's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from conftest import make_job
from webapp.models import Run


def test_state_filter_and_search_narrow_the_list(client, project, db):
    make_job(project, name="Acme rockets", prompt="acme rocket")
    paused = make_job(project, name="Globex watch", prompt="globex")
    from webapp.jobs.service import pause_job

    pause_job(paused)
    make_job(project, name="Initech", prompt="tps reports 100%")
    everything = client.get("/jobs").text
    assert all(name in everything for name in ("Acme rockets", "Globex watch", "Initech"))
    only_paused = client.get("/jobs?state=paused").text
    assert "Globex watch" in only_paused and "Acme rockets" not in only_paused
    by_prompt = client.get("/jobs?q=ROCKET").text
    assert "Acme rockets" in by_prompt and "Initech" not in by_prompt
    literal_percent = client.get("/jobs?q=100%25").text
    assert "Initech" in literal_percent and "Acme rockets" not in literal_percent
    nothing = client.get("/jobs?q=zzz")
    assert "No jobs match" in nothing.text and "Show all jobs" in nothing.text


def test_job_list_pages_through_many_jobs(client, project):
    for index in range(55):
        make_job(project, name=f"job {index:02d}")
    first = client.get("/jobs").text
    second = client.get("/jobs?page=2").text
    assert "job 54" in first and "job 05" in first and "job 04" not in first
    assert "job 04" in second and "job 00" in second and "job 54" not in second


def test_delete_from_a_row_removes_it_in_place(client, project, db):
    job = make_job(project)
    response = client.post(
        f"/jobs/{job.public_id}/delete",
        headers={"HX-Request": "true", "HX-Target": f"job-{job.public_id}"},
    )
    assert response.status_code == 200 and response.text == ""
    assert client.get(f"/jobs/{job.public_id}").status_code == 404


def test_rows_ask_for_confirmation_before_deleting(client, project):
    make_job(project, name="Careful")
    assert 'hx-confirm="Delete “Careful” with all its runs and records?"' in client.get("/jobs").text


def test_timeline_lists_todays_runs_and_the_slots_left_before_midnight(client, project, db):
    with time_machine.travel(datetime(2026, 11, 29, 20, 30, tzinfo=UTC), tick=False):
        job = make_job(project, schedule="every_hour")
        assert job.next_run_at == datetime(2026, 11, 29, 21, tzinfo=UTC)
        for hour, status in ((18, "completed"), (19, "failed")):
            slot = datetime(2026, 11, 29, hour, tzinfo=UTC)
            db.session.add(Run(project_id=project.id, job_id=job.id, trigger="schedule",
                               scheduled_for=slot, status=status, started_at=slot,
                               finished_at=slot + timedelta(seconds=5), record_count=4, new_count=1))
        yesterday = datetime(2026, 11, 28, 23, tzinfo=UTC)
        db.session.add(Run(project_id=project.id, job_id=job.id, trigger="schedule",
                           scheduled_for=yesterday, status="completed", started_at=yesterday,
                           finished_at=yesterday))
        db.session.commit()
        page = client.get(f"/jobs/{job.public_id}").text
        done, upcoming = page.split("<h3>Done today</h3>")[1].split("<h3>Upcoming</h3>")
        assert done.count("<li>") == 2 and "18:00" in done and "19:00" in done and "23:00" not in done
        assert "4 records, 1 new" in done
        upcoming = upcoming.split("</section>")[0]
        assert [t for t in ("21:00", "22:00", "23:00") if t in upcoming] == ["21:00", "22:00", "23:00"]
        assert upcoming.count("<li>") == 3

        client.set_cookie("tz", "Asia/Tokyo")  # 05:30 on 30 November in Tokyo
        tokyo = client.get(f"/jobs/{job.public_id}").text
        tokyo_upcoming = tokyo.split("<h3>Upcoming</h3>")[1].split("</section>")[0]
        assert "Today <small>(Asia/Tokyo)</small>" in tokyo
        assert tokyo_upcoming.count("<li>") == 18  # 06:00 … 23:00 Tokyo time
        assert "06:00" in tokyo_upcoming and "23:00" in tokyo_upcoming


def test_a_paused_job_has_nothing_upcoming_and_says_why(client, project):
    job = make_job(project)
    from webapp.jobs.service import pause_job

    pause_job(job)
    page = client.get(f"/jobs/{job.public_id}").text
    assert "Nothing scheduled: the job is paused" in page


def test_an_unknown_timezone_cookie_falls_back_to_utc(client, project):
    job = make_job(project)
    client.set_cookie("tz", "Mars/Olympus")
    page = client.get(f"/jobs/{job.public_id}")
    assert page.status_code == 200 and "Today <small>(UTC)</small>" in page.text


def test_the_form_offers_sources_to_pick_and_takes_configured_ones_as_lines(client, project, db, monkeypatch):
    monkeypatch.delenv("BYTESTACK_YOUTUBE_API_KEY", raising=False)
    form = client.get("/jobs/new").text
    assert 'name="source_ids" value="hackernews"' in form
    youtube = form.split('value="youtube"', 1)[1].split("</label>", 1)[0]
    assert "disabled" in youtube  # needs a key first
    assert 'value="linkedin"' not in form  # no public API: not offered
    web = '{"type": "web", "url": "https://example.com/blog", "item": "article", "title": "h2", "link": "a"}'
    response = client.post("/jobs/new", data={
        "name": "Picked", "prompt": "acme", "source_ids": ["hackernews", "reddit"],
        "sources": f"https://example.com/feed.xml\n{web}", "schedule_kind": "daily",
        "timezone": "UTC", "limit": "50",
    })
    assert response.status_code == 303
    from sqlalchemy import select

    from webapp.models import Job

    job = db.session.scalars(select(Job).where(Job.name == "Picked")).one()
    assert [s["type"] for s in job.sources] == ["hackernews", "reddit", "rss", "web"]
    assert job.sources[3]["item"] == "article"
    edit = client.get(f"/jobs/{job.public_id}/edit").text
    assert 'value="hackernews"\n        checked' in edit or 'value="hackernews" checked' in " ".join(edit.split())
    assert "https://example.com/feed.xml" in edit and "&#34;item&#34;: &#34;article&#34;" in edit


def test_a_bad_json_source_line_is_explained_next_to_the_field(client):
    response = client.post("/jobs/new", data={
        "name": "Bad", "prompt": "acme", "sources": '{"type": "web", "url": ', "schedule_kind": "daily",
    })
    assert response.status_code == 422
    assert 'id="sources-error"' in response.text
