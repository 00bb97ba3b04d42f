"""Dashboard → Jobs: filters and search, row actions in place, and the day's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from conftest import make_job

from webapp.models import Run


def listed(client, url: str) -> str:
    """The job list of a page, without the day's timeline above it (which names jobs too)."""
    return client.get(url).text.split('<div id="job-results">', 1)[1]


def test_state_filter_and_search_narrow_the_list(client, project, db):
    make_job(project, name="Acme rockets", prompt="acme rocket")
    paused = make_job(project, name="Globex watch", prompt="globex")
    from webapp.jobs.service import pause_job

    pause_job(paused)
    make_job(project, name="Initech", prompt="tps reports 100%")
    everything = listed(client, "/jobs")
    assert all(name in everything for name in ("Acme rockets", "Globex watch", "Initech"))
    only_paused = listed(client, "/jobs?state=paused")
    assert "Globex watch" in only_paused and "Acme rockets" not in only_paused
    by_prompt = listed(client, "/jobs?q=ROCKET")
    assert "Acme rockets" in by_prompt and "Initech" not in by_prompt
    literal_percent = listed(client, "/jobs?q=100%25")
    assert "Initech" in literal_percent and "Acme rockets" not in literal_percent
    nothing = listed(client, "/jobs?q=zzz")
    assert "No jobs match" in nothing and "Show all jobs" in nothing


def test_job_list_pages_through_many_jobs(client, project):
    for index in range(55):
        make_job(project, name=f"job {index:02d}")
    first = listed(client, "/jobs")
    second = listed(client, "/jobs?page=2")
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
    assert 'value="hackernews" checked' in " ".join(edit.split())
    assert "https://example.com/feed.xml" in edit and "&#34;item&#34;: &#34;article&#34;" in edit


def test_a_bad_json_source_line_is_explained_next_to_the_field(client):
    response = client.post("/jobs/new", data={
        "name": "Bad", "prompt": "acme", "sources": '{"type": "web", "url": ', "schedule_kind": "daily",
    })
    assert response.status_code == 422
    assert 'id="sources-error"' in response.text


# --- partials, polls and what the views hand the templates -----------------------------------

NOON = datetime(2026, 12, 1, 11, 30, tzinfo=UTC)  # 12:30 in Berlin, 06:30 in New York


def add_run(db, job, status="completed", finished=None, **values) -> Run:
    finished = finished or NOON - timedelta(minutes=5)
    started = values.pop("started_at", finished - timedelta(seconds=4))
    run = Run(project_id=job.project_id, job_id=job.id, trigger="schedule", status=status,
              scheduled_for=values.pop("scheduled_for", started),
              started_at=None if status == "queued" else started,
              finished_at=finished if status in ("completed", "failed", "skipped") else None,
              **values)
    db.session.add(run)
    db.session.commit()
    return run


def hx_get_of(html: str, element_id: str) -> str:
    """The URL an element polls or refreshes from (hx-get), unescaped."""
    import html as html_lib
    import re

    tag = re.search(rf'<[a-z]+ id="{element_id}"[^>]*>', html, re.DOTALL).group(0)
    return html_lib.unescape(re.search(r'hx-get="([^"]+)"', tag).group(1))


def section(html: str, element_id: str) -> str:
    start = html.index(f'id="{element_id}"')
    return html[start:html.index("</section>", start)]


def test_the_filter_answers_htmx_with_the_list_alone_and_the_address_bar_its_filters(client, project):
    make_job(project, name="Acme rockets", prompt="acme rocket")
    make_job(project, name="Globex watch", prompt="globex")
    htmx = {"HX-Request": "true", "HX-Target": "job-results"}
    partial = client.get("/jobs?q=rocket&state=", headers=htmx)
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<div id="job-results">') and "<html" not in partial.text
    assert "Acme rockets" in partial.text and "Globex watch" not in partial.text
    assert 'id="timeline"' not in partial.text
    assert partial.headers["HX-Push-Url"] == "/jobs?q=rocket"
    assert "HX-Request" in partial.headers["Vary"]
    full = client.get("/jobs?q=rocket")
    assert "<html" in full.text and 'id="timeline"' in full.text
    assert "HX-Request" in full.headers["Vary"]
    restore = client.get("/jobs?q=rocket", headers={**htmx, "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text  # Back with an empty htmx cache asks for the page


def test_the_run_history_is_the_job_pages_partial_with_an_endpoint_of_its_own(client, project, db):
    with time_machine.travel(NOON, tick=False):
        job = make_job(project, name="History")
        for minutes in range(30):
            add_run(db, job, finished=NOON - timedelta(hours=1, minutes=minutes))
        page = client.get(f"/jobs/{job.public_id}").text
        alone = client.get(f"/jobs/{job.public_id}/runs")
        older = client.get(f"/jobs/{job.public_id}/runs?page=2").text
    assert alone.status_code == 200 and "<html" not in alone.text
    assert alone.text.lstrip().startswith('<section id="run-history"')
    assert alone.text.strip() in page  # one template for both
    assert alone.text.count('<tr id="run-') == 25 and older.count('<tr id="run-') == 5
    assert hx_get_of(page, "run-history") == f"/jobs/{job.public_id}/runs"
    assert 'hx-trigger="runs-changed from:body"' in section(page, "run-history")
    assert "hx-get" not in section(older, "run-history")  # older pages do not change
    assert "hx-select" not in page


def test_a_status_poll_is_one_small_response_that_announces_when_runs_changed(client, project, db):
    with time_machine.travel(NOON, tick=False):
        job = make_job(project)
        run = add_run(db, job, "running", started_at=NOON - timedelta(seconds=20))
        job.state = "running"
        db.session.commit()
        page = client.get(f"/jobs/{job.public_id}").text
        poll_url = hx_get_of(page, "job-status")
        assert poll_url.startswith(f"/jobs/{job.public_id}/status?seen=")
        assert 'hx-trigger="every 2s"' in page.split('id="job-status"', 1)[1].split(">", 1)[0]

        quiet = client.get(poll_url)
        assert quiet.status_code == 200 and "HX-Trigger" not in quiet.headers
        assert "<html" not in quiet.text and 'id="run-history"' not in quiet.text
        assert 'id="timeline"' not in quiet.text
        assert len(quiet.data) < 4000

        run.status, run.finished_at, run.record_count = "completed", NOON, 9
        job.state = "active"
        db.session.commit()
        changed = client.get(poll_url)
        assert changed.headers["HX-Trigger"] == "runs-changed"  # history and timeline redraw
        assert 'hx-trigger="every 2s"' not in changed.text  # and the panel stops polling
        assert "HX-Trigger" not in client.get(hx_get_of(changed.text, "job-status")).headers


def test_rows_announce_changed_runs_for_the_projects_timeline(client, project, db):
    with time_machine.travel(NOON, tick=False):
        job = make_job(project)
        add_run(db, job, "queued")
        page = client.get("/jobs").text
        row_url = hx_get_of(page, f"job-{job.public_id}")
        assert "HX-Trigger" not in client.get(row_url).headers
        assert hx_get_of(page, "timeline") == "/jobs/today"
        assert "runs-changed from:body" in section(page, "timeline")
        db.session.execute(Run.__table__.update().values(status="running", started_at=NOON))
        db.session.commit()
        assert client.get(row_url).headers["HX-Trigger"] == "runs-changed"
        today = client.get("/jobs/today")
        assert today.text.lstrip().startswith("<section id=\"timeline\"") and "<html" not in today.text


def _statements(db, client, url: str) -> int:
    from sqlalchemy import event

    executed = []

    def count(*_args):
        executed.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(executed)


def test_the_job_list_and_a_jobs_page_cost_the_same_queries_for_few_or_many(client, project, db):
    with time_machine.travel(NOON, tick=False):
        jobs = [make_job(project, name=f"job {n}") for n in range(3)]
        for job in jobs:  # more runs today than the strip lists, so it counts the others
            for minutes in range(5):
                add_run(db, job, finished=NOON - timedelta(minutes=40 + minutes))
        few = _statements(db, client, "/jobs")
        one_run = _statements(db, client, f"/jobs/{jobs[0].public_id}")
        for n in range(3, 30):
            add_run(db, make_job(project, name=f"job {n}"), record_count=n)
        for minutes in range(20):
            add_run(db, jobs[0], finished=NOON - timedelta(minutes=10 + minutes))
        assert _statements(db, client, "/jobs") == few  # no query per row: templates ask nothing
        assert _statements(db, client, f"/jobs/{jobs[0].public_id}") == one_run


def test_the_jobs_page_shows_every_jobs_day_in_the_viewers_zone(client, project, db):
    from webapp.jobs.service import ensure_project, pause_job

    with time_machine.travel(NOON, tick=False):
        berlin = make_job(project, name="Berlin morning", schedule="0 8 * * *",
                          timezone="Europe/Berlin")
        hourly = make_job(project, name="Hourly", schedule="every_hour")
        pause_job(make_job(project, name="Resting", schedule="every_hour"))
        make_job(ensure_project("Elsewhere"), name="Not ours", schedule="every_hour")
        add_run(db, berlin, finished=datetime(2026, 12, 1, 7, 21, 30, tzinfo=UTC), record_count=3)
        client.set_cookie("tz", "America/New_York")
        day = section(client.get("/jobs").text, "timeline")
    assert "Today <small>(America/New_York)</small>" in day
    done, upcoming = day.split("<h3>Upcoming</h3>")
    assert done.count("<li>") == 1 and "02:21" in done and "Berlin morning" in done
    assert "2026-12-01 02:21 EST · 2026-12-01 08:21 CET (Europe/Berlin)" in done
    # New York's day ends at 05:00 UTC: Hourly has 17 slots left (12:00 … 04:00 UTC), of which
    # the strip shows a dozen; Berlin's next 08:00 (07:00 UTC) falls on New York's tomorrow.
    assert upcoming.count("<li>") == 12 and "… and more until midnight" in upcoming
    assert upcoming.count("Hourly") == 12 and "Berlin morning" not in upcoming
    assert ">07:00</time>" in upcoming and ">18:00</time>" in upcoming
    assert ">19:00</time>" not in upcoming
    assert "Resting" not in day and "Not ours" not in day
    assert f'href="/jobs/{hourly.public_id}"' in upcoming


def test_a_running_run_shows_its_progress_and_it_stops_with_the_run(client, project, db):
    with time_machine.travel(NOON, tick=False):
        job = make_job(project)
        run = add_run(db, job, "running", started_at=NOON - timedelta(seconds=95),
                      progress={"sources_done": 2, "sources_total": 5, "records": 37})
        job.state = "running"
        db.session.commit()
        panel = client.get(f"/jobs/{job.public_id}/status").text
        assert "running for <span class=\"elapsed\">1 min 35 s</span>" in panel
        assert "2 of 5 sources done" in panel and "37 records so far" in panel
        assert '<progress max="5" value="2"' in panel
        row = client.get(f"/jobs/{job.public_id}/row").text
        assert "2/5 sources · 37 records" in row

        run.progress = None  # before the worker's first update
        db.session.commit()
        panel = client.get(f"/jobs/{job.public_id}/status").text
        assert "running for" in panel and "sources done" not in panel and "<progress" not in panel

        run.status, run.finished_at, run.record_count = "completed", NOON, 40
        run.progress = {"sources_done": 5, "sources_total": 5, "records": 40}
        job.state = "active"
        db.session.commit()
        panel = client.get(f"/jobs/{job.public_id}/status").text
        row = client.get(f"/jobs/{job.public_id}/row").text
    assert 'id="run-progress"' not in panel and "sources done" not in panel
    assert "sources ·" not in row and "40 <small>(0 new)</small>" in row


def test_a_queued_run_says_it_waits_for_a_worker(client, project, db):
    job = make_job(project)
    add_run(db, job, "queued")
    panel = client.get(f"/jobs/{job.public_id}/status").text
    assert "is queued, waiting for a worker" in panel
    assert "queued" in client.get(f"/jobs/{job.public_id}/row").text


def test_times_are_in_the_viewers_zone_with_the_jobs_own_on_hover(client, project, db):
    with time_machine.travel(NOON, tick=False):
        client.set_cookie("tz", "America/New_York")
        created = client.post("/jobs/new", data={
            "name": "Berlin morning", "prompt": "acme", "sources": "https://example.com/feed.xml",
            "schedule_kind": "daily_at", "daily_at": "08:00", "timezone": "Europe/Berlin",
            "limit": "10",
        }, follow_redirects=True)
        from sqlalchemy import select

        from webapp.models import Job

        job = db.session.scalars(select(Job)).one()
        add_run(db, job, finished=datetime(2026, 12, 1, 7, 21, 30, tzinfo=UTC),
                started_at=datetime(2026, 12, 1, 7, 21, tzinfo=UTC))
        page = client.get(f"/jobs/{job.public_id}").text
        rows = listed(client, "/jobs")
    # 08:00 in Berlin is 07:00 UTC and 02:00 in New York: the flash says the viewer's time.
    assert "Next run 2026-12-02 02:00 EST." in created.text
    history = section(page, "run-history")
    assert ">2026-12-01 02:21 EST</time>" in history
    assert 'title="2026-12-01 02:21 EST · 2026-12-01 08:21 CET (Europe/Berlin)"' in history
    status = section(page, "job-status")
    assert 'title="2026-12-02 02:00 EST · 2026-12-02 08:00 CET (Europe/Berlin)"' in status
    assert 'title="2026-12-02 02:00 EST · 2026-12-02 08:00 CET (Europe/Berlin)"' in rows
    assert "UTC" not in history + status


def test_a_busy_day_lists_the_latest_runs_and_counts_the_earlier_ones(client, project, db):
    with time_machine.travel(NOON, tick=False):
        job = make_job(project, schedule="* * * * *")
        for minutes in range(50):
            add_run(db, job, finished=NOON - timedelta(minutes=60 - minutes), record_count=minutes)
        done = section(client.get(f"/jobs/{job.public_id}").text, "timeline").split("<h3>Upcoming")[0]
    assert done.count("<li>") == 48 and "… 2 earlier" in done
    assert "10:30" not in done and "10:32" in done and "11:19" in done
