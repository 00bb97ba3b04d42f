"""Dashboard → Jobs through the Flask test client: pages, forms, HTMX partials and actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from conftest import make_job
from sqlalchemy import func, select

from webapp.models import Job, Record, Run
from webapp.timeutil import now

T0 = datetime(2026, 5, 1, 3, 17, tzinfo=UTC)
VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
SELF_CLOSING_SIBLINGS = {"option", "li", "p", "td", "th", "tr"}
POLLING = 'hx-trigger="every 2s"'


# --- a small HTML reader (stdlib only) -------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict
    parent: Node | None
    children: list = field(default_factory=list)  # Node or str

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    def ancestors(self) -> list[Node]:
        found, node = [], self.parent
        while node is not None:
            found.append(node)
            node = node.parent
        return found

    def find_all(self, tag: str) -> list[Node]:
        """Descendant elements with this tag, in document order."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if child.tag == tag:
                    found.append(child)
                found += child.find_all(tag)
        return found

    def previous_element(self) -> Node | None:
        siblings = [c for c in self.parent.children if isinstance(c, Node)]
        index = siblings.index(self)
        return siblings[index - 1] if index else None


class Page(HTMLParser):
    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root
        self.all: list[Node] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag in SELF_CLOSING_SIBLINGS and self.current.tag == tag:
            self.current = self.current.parent  # <option>a<option>b: the first one ended
        node = Node(tag, {k: (v if v is not None else "") for k, v in attrs}, self.current)
        self.current.children.append(node)
        self.all.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.current = self.current.parent

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)

    def by_id(self, element_id: str) -> Node:
        matches = [n for n in self.all if n.attrs.get("id") == element_id]
        assert len(matches) == 1, f"{len(matches)} elements with id {element_id!r}"
        return matches[0]

    def has_id(self, element_id: str) -> bool:
        return any(n.attrs.get("id") == element_id for n in self.all)

    def select(self, tag: str, **attrs) -> list[Node]:
        return [
            n
            for n in self.all
            if n.tag == tag and all(n.attrs.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]


def page(response) -> Page:
    return Page(response.get_data(as_text=True))


# --- helpers ---------------------------------------------------------------------------------


def form_data(**overrides) -> dict:
    data = {
        "name": "Acme mentions",
        "prompt": '"acme corp" OR acmecorp -jobs',
        "sources": "https://news.example.com/feed.xml",
        "limit": "100",
        "date_range": "",
        "schedule_kind": "every_hour",
        "daily_at": "08:00",
        "cron": "",
        "timezone": "UTC",
    }
    data.update(overrides)
    return data


def add_run(db, job, status="completed", **values) -> Run:
    started = values.pop("started_at", now() - timedelta(minutes=30))
    run = Run(
        project_id=job.project_id,
        job_id=job.id,
        trigger=values.pop("trigger", "schedule"),
        scheduled_for=values.pop("scheduled_for", started),
        status=status,
        started_at=None if status in ("queued", "skipped") else started,
        finished_at=started + timedelta(seconds=3) if status in ("completed", "failed") else None,
        **values,
    )
    db.session.add(run)
    db.session.commit()
    return run


def add_record(db, run, position=0, **values) -> Record:
    data = {
        "source": "rss",
        "fingerprint": f"fp-{run.id}-{position}",
        "url": f"https://news.example.com/a/{position}",
        "title": f"Acme story {position}",
        "text": "Acme did a thing.",
        "author": "Reporter",
        "published_at": datetime(2026, 4, 30, 8, 0, tzinfo=UTC),
        "is_new": True,
    }
    data.update(values)
    record = Record(
        run_id=run.id, job_id=run.job_id, project_id=run.project_id, position=position, **data
    )
    db.session.add(record)
    db.session.commit()
    return record


def fresh(db, job) -> Job:
    db.session.expire_all()
    return db.session.get(Job, job.id)


def htmx_headers(job) -> dict:
    return {"HX-Request": "true", "HX-Target": f"job-{job.public_id}"}


# --- job list and New Job --------------------------------------------------------------------


def test_root_redirects_to_the_job_list(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/jobs")


def test_empty_job_list_invites_to_create_the_first_job(client):
    response = client.get("/jobs")
    assert response.status_code == 200
    doc = page(response)
    assert "No jobs yet" in doc.root.text
    assert doc.select("table") == []
    links = [a.attrs["href"] for a in doc.select("a") if "Create your first job" in a.text]
    assert links == ["/jobs/new"]


def test_job_list_shows_each_job_with_state_and_schedule_in_words(client, db, project):
    job = make_job(project, name="Rocket watch", schedule="0 8 * * *", timezone="Europe/Berlin")
    run = add_run(db, job, record_count=12, new_count=4)
    assert run.status == "completed"
    doc = page(client.get("/jobs"))
    row = doc.by_id(f"job-{job.public_id}")
    assert "Rocket watch" in row.text
    assert "active" in row.text
    assert "At 08:00 (Europe/Berlin)" in row.text
    assert "12 (4 new)" in row.text
    assert [a.attrs["href"] for a in doc.select("a") if a.text == "New Job"] == ["/jobs/new"]


def test_new_job_form_renders_fields_defaults_and_a_live_preview(client):
    with time_machine.travel(T0, tick=False):
        response = client.get("/jobs/new")
    assert response.status_code == 200
    doc = page(response)
    form = doc.select("form", class_="job-form")[0]
    assert form.attrs["action"] == "/jobs/new" and form.attrs["method"] == "post"
    for name in (
        "name",
        "prompt",
        "sources",
        "limit",
        "date_range",
        "schedule_kind",
        "daily_at",
        "cron",
        "timezone",
    ):
        assert doc.by_id(name).attrs["name"] == name
    assert doc.by_id("limit").attrs["value"] == "100"
    assert doc.by_id("timezone").attrs["value"] == "UTC"
    selected = [
        o.attrs["value"]
        for o in doc.by_id("schedule_kind").children
        if isinstance(o, Node) and "selected" in o.attrs
    ]
    assert selected == ["every_hour"]
    assert doc.select("input", name="csrf_token")
    preview = doc.by_id("schedule-preview")
    assert "Every hour" in preview.text
    times = [t.attrs["datetime"] for t in preview.find_all("time")]
    assert times == [f"2026-05-01T0{h}:00:00Z" for h in range(4, 9)]
    assert doc.by_id("prompt-plan").text == "Searching for: everything the sources return"


def test_invalid_post_rerenders_422_with_each_message_next_to_its_field(client, db):
    typed = form_data(
        name="",
        prompt='<b>"acme corp"</b> -jobs',
        sources="",
        limit="0",
        schedule_kind="cron",
        cron="61 * * * *",
        date_range="7d",
    )
    response = client.post("/jobs/new", data=typed)
    assert response.status_code == 422
    doc = page(response)
    assert "Please correct the fields marked below." in doc.root.text
    expected = {
        "name": "Give the job a name.",
        "sources": "Add at least one source",
        "limit": "limit must be a whole number from 1 to 1000.",
        "schedule": "minute field '61' is not valid",
    }
    for name, message in expected.items():
        error = doc.by_id(f"{name}-error")
        assert message in error.text, (name, error.text)
    # Each message sits right under its own field, which points at it.
    for name in ("name", "sources", "limit"):
        control = doc.by_id(name)
        assert control.attrs.get("aria-invalid") == "true"
        assert control.attrs.get("aria-describedby") == f"{name}-error"
        assert doc.by_id(f"{name}-error").previous_element() is control
    schedule_box = doc.select("fieldset", class_="schedule")[0]
    assert schedule_box in doc.by_id("schedule-error").ancestors()
    assert not doc.has_id("prompt-error") and not doc.has_id("timezone-error")
    # What the person typed is kept.
    assert doc.by_id("prompt").text == '<b>"acme corp"</b> -jobs'
    assert doc.by_id("limit").attrs["value"] == "0"
    assert doc.by_id("cron").attrs["value"] == "61 * * * *"
    kinds = {o.attrs["value"]: "selected" in o.attrs for o in doc.select("option")}
    assert kinds["cron"] and kinds["7d"] and not kinds["every_hour"]
    assert (
        "<b>" not in response.get_data(as_text=True).split('id="prompt"')[1].split("</textarea>")[0]
    )
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_invalid_name_and_prompt_keep_the_other_values(client, db):
    response = client.post(
        "/jobs/new",
        data=form_data(
            name="n" * 201,
            prompt="   ",
            sources="https://a.example.com/rss\nhttps://b.example.com/rss",
        ),
    )
    assert response.status_code == 422
    doc = page(response)
    assert "at most 200 characters" in doc.by_id("name-error").text
    assert "Write a prompt" in doc.by_id("prompt-error").text
    assert doc.by_id("prompt").attrs["aria-describedby"] == "prompt-error"
    assert doc.by_id("sources").text == "https://a.example.com/rss https://b.example.com/rss"
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_unknown_timezone_is_reported_by_the_timezone_field(client, db):
    response = client.post("/jobs/new", data=form_data(name="Zoned", timezone="Nope/Zone"))
    assert response.status_code == 422
    doc = page(response)
    assert "Unknown timezone 'Nope/Zone'" in doc.by_id("timezone-error").text
    assert doc.by_id("timezone").attrs["aria-describedby"] == "timezone-error"
    assert doc.by_id("timezone").attrs["value"] == "Nope/Zone"
    assert doc.by_id("name").attrs["value"] == "Zoned"
    assert db.session.scalar(select(func.count(Job.id))) == 0


@pytest.mark.parametrize("limit", ["abc", "-3", "1001", "²", "1e3", "9" * 5000])
def test_a_bad_limit_is_a_form_error_not_a_crash(client, db, limit):
    response = client.post("/jobs/new", data=form_data(limit=limit))
    assert response.status_code == 422
    assert "1 to 1000" in page(response).by_id("limit-error").text
    assert db.session.scalar(select(func.count(Job.id))) == 0


def test_valid_post_creates_the_job_and_redirects_to_its_page(client, db):
    data = form_data(
        name="Acme <daily>",
        sources="https://a.example.com/rss\n\n  https://b.example.com/atom  \n",
        limit="50",
        date_range="7d",
        schedule_kind="daily_at",
        daily_at="08:30",
        timezone="Europe/Berlin",
    )
    response = client.post("/jobs/new", data=data)
    assert response.status_code == 303
    job = db.session.scalars(select(Job)).one()
    assert response.headers["Location"].endswith(f"/jobs/{job.public_id}")
    assert (job.name, job.limit, job.date_range) == ("Acme <daily>", 50, {"last": "7d"})
    assert (job.schedule_type, job.schedule_value, job.timezone) == (
        "cron",
        "30 8 * * *",
        "Europe/Berlin",
    )
    assert [s["url"] for s in job.sources] == [
        "https://a.example.com/rss",
        "https://b.example.com/atom",
    ]
    assert job.state == "active" and job.next_run_at > now()
    shown = client.get(response.headers["Location"])
    doc = page(shown)
    assert "created" in doc.select("p", class_="flash")[0].text
    assert doc.select("h1")[0].text == "Acme <daily>"
    assert "No runs yet" in doc.by_id("run-history").text
    assert "At 08:30 (Europe/Berlin)" in doc.by_id("job-status").text


# --- live partials ---------------------------------------------------------------------------


def test_schedule_preview_shows_the_schedule_in_words_and_the_next_five_times(client):
    with time_machine.travel(T0, tick=False):
        response = client.post(
            "/schedule/preview",
            data={"schedule_kind": "cron", "cron": "0 8 * * 1-5", "timezone": "Europe/Berlin"},
        )
    assert response.status_code == 200
    doc = page(response)
    preview = doc.by_id("schedule-preview")
    assert "08:00" in preview.text and "(Europe/Berlin)" in preview.text
    times = preview.find_all("time")
    assert [t.attrs["datetime"] for t in times] == [
        "2026-05-01T06:00:00Z",  # Friday 08:00 CEST
        "2026-05-04T06:00:00Z",
        "2026-05-05T06:00:00Z",
        "2026-05-06T06:00:00Z",
        "2026-05-07T06:00:00Z",
    ]
    assert times[0].text == "2026-05-01 08:00 CEST"
    assert "(in 2 h)" in preview.text
    assert "<html" not in response.get_data(as_text=True)  # a fragment, not a page


def test_schedule_preview_of_a_daily_at_time(client):
    with time_machine.travel(T0, tick=False):
        response = client.post(
            "/schedule/preview", data={"schedule_kind": "daily_at", "daily_at": "21:45"}
        )
    doc = page(response)
    assert "At 21:45" in doc.by_id("schedule-preview").text
    assert len(doc.by_id("schedule-preview").find_all("time")) == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schedule_kind": "cron", "cron": "61 * * * *"}, "minute field '61' is not valid"),
        ({"schedule_kind": "cron", "cron": "* * *"}, "has 3"),
        ({"schedule_kind": "cron", "cron": "0 0 30 2 *"}, "never matches"),
        ({"schedule_kind": "daily_at", "daily_at": "25:00"}, "is not a time of day"),
        ({"schedule_kind": "every_hour", "timezone": "Nope/Zone"}, "Unknown timezone"),
    ],
)
def test_schedule_preview_shows_the_precise_error(client, data, message):
    response = client.post("/schedule/preview", data=data)
    assert response.status_code == 200
    doc = page(response)
    assert message in doc.by_id("schedule-preview-error").text
    assert doc.by_id("schedule-preview").find_all("time") == []


def test_prompt_plan_partial_shows_what_will_be_searched(client):
    response = client.post(
        "/prompt/plan", data={"prompt": '"Acme Corp" OR acmecorp -jobs on reddit'}
    )
    assert response.status_code == 200
    plan = page(response).by_id("prompt-plan")
    assert plan.text == 'Searching for: "acme corp" OR acmecorp, excluding jobs, on reddit'
    empty = page(client.post("/prompt/plan", data={})).by_id("prompt-plan")
    assert empty.text == "Searching for: everything the sources return"
    hostile = client.post("/prompt/plan", data={"prompt": "<script>alert(1)</script>"})
    assert "<script>" not in hostile.get_data(as_text=True)


# --- a job's page and its actions ------------------------------------------------------------


def test_job_page_shows_the_run_history_newest_first(client, db, project):
    job = make_job(project, name="History")
    done = add_run(
        db, job, "completed", record_count=7, new_count=3, started_at=now() - timedelta(hours=2)
    )
    failed = add_run(
        db,
        job,
        "failed",
        error="Every source failed. HTTP 500",
        started_at=now() - timedelta(hours=1),
    )
    skipped = add_run(db, job, "skipped", error="Skipped: the previous run was still running.")
    doc = page(client.get(f"/jobs/{job.public_id}"))
    rows = [r for r in doc.by_id("run-history").find_all("tr") if "id" in r.attrs]
    assert [r.attrs["id"] for r in rows] == [
        f"run-{skipped.public_id}",
        f"run-{failed.public_id}",
        f"run-{done.public_id}",
    ]
    cells = [[c.text for c in row.children if isinstance(c, Node)] for row in rows]
    assert cells[2][1:6] == ["schedule", "completed", "3.0 s", "7", "3"]
    assert cells[1][2] == "failed" and cells[1][6] == "Every source failed. HTTP 500"
    assert cells[0][2] == "skipped" and "still running" in cells[0][6]
    assert rows[2].find_all("a")[0].attrs["href"] == f"/runs/{done.public_id}"


def test_unknown_job_page_is_a_404_page(client):
    response = client.get("/jobs/job_nope")
    assert response.status_code == 404
    assert "text/html" in response.headers["Content-Type"]
    assert client.get("/runs/run_nope").status_code == 404


def test_a_job_of_another_project_is_not_shown(client, db):
    from webapp.jobs.service import ensure_project

    theirs = make_job(ensure_project("Other"), name="Secret")
    assert client.get(f"/jobs/{theirs.public_id}").status_code == 404
    assert client.post(f"/jobs/{theirs.public_id}/pause").status_code == 404
    assert "Secret" not in client.get("/jobs").get_data(as_text=True)
    assert fresh(db, theirs).state == "active"


@pytest.mark.parametrize("page_number", ["0", "-4", "abc", "9" * 30])
def test_odd_page_numbers_do_not_break_job_and_run_pages(client, db, project, page_number):
    job = make_job(project)
    run = add_run(db, job)
    assert client.get(f"/jobs/{job.public_id}?page={page_number}").status_code == 200
    assert client.get(f"/runs/{run.public_id}?page={page_number}").status_code == 200


def test_pause_and_resume_by_plain_post_redirect_back(client, db, project):
    job = make_job(project)
    paused = client.post(f"/jobs/{job.public_id}/pause")
    assert paused.status_code == 303
    assert paused.headers["Location"].endswith(f"/jobs/{job.public_id}")
    assert (fresh(db, job).state, fresh(db, job).next_run_at) == ("paused", None)
    shown = page(client.get(paused.headers["Location"]))
    assert "Job paused" in shown.select("p", class_="flash")[0].text
    resumed = client.post(
        f"/jobs/{job.public_id}/resume", headers={"Referer": "http://localhost/jobs"}
    )
    assert resumed.status_code == 303
    assert resumed.headers["Location"] == "http://localhost/jobs"
    assert fresh(db, job).state == "active" and fresh(db, job).next_run_at is not None


def test_actions_with_htmx_return_the_row_partial(client, db, project):
    job = make_job(project, name="Row job")
    paused = client.post(f"/jobs/{job.public_id}/pause", headers=htmx_headers(job))
    assert paused.status_code == 200
    doc = page(paused)
    row = doc.by_id(f"job-{job.public_id}")
    assert row.tag == "tr" and doc.select("html") == []
    assert "paused" in row.text and "Resume" in row.text and "Pause" not in row.text
    resumed = page(client.post(f"/jobs/{job.public_id}/resume", headers=htmx_headers(job)))
    row = resumed.by_id(f"job-{job.public_id}")
    assert "active" in row.text and "Pause" in row.text
    assert POLLING not in paused.get_data(as_text=True)
    ran = client.post(f"/jobs/{job.public_id}/run", headers=htmx_headers(job))
    assert ran.status_code == 200
    assert POLLING in ran.get_data(as_text=True)  # the queued run is followed live
    assert db.session.scalar(select(func.count(Run.id)).where(Run.job_id == job.id)) == 1


def test_actions_from_the_status_panel_return_the_status_panel(client, db, project):
    job = make_job(project)
    headers = {"HX-Request": "true", "HX-Target": "job-status"}
    response = client.post(f"/jobs/{job.public_id}/pause", headers=headers)
    assert response.status_code == 200
    doc = page(response)
    panel = doc.by_id("job-status")
    assert panel.tag == "section"
    assert not doc.has_id(f"job-{job.public_id}")
    assert "paused" in panel.text and "Resume" in panel.text
    assert fresh(db, job).state == "paused"


def test_run_now_queues_a_run_and_a_second_press_explains_the_conflict(client, db, project):
    job = make_job(project)
    first = client.post(f"/jobs/{job.public_id}/run")
    assert first.status_code == 303
    runs = db.session.scalars(select(Run).where(Run.job_id == job.id)).all()
    assert [(r.status, r.trigger) for r in runs] == [("queued", "manual")]
    assert "Run queued." in page(client.get(first.headers["Location"])).root.text
    second = client.post(f"/jobs/{job.public_id}/run")
    assert second.status_code == 303
    flashed = page(client.get(second.headers["Location"])).select("p", class_="flash")
    assert "already running" in flashed[0].text
    assert db.session.scalar(select(func.count(Run.id)).where(Run.job_id == job.id)) == 1


def test_delete_by_plain_post_and_by_htmx(client, db, project):
    job = make_job(project, name="Doomed")
    run = add_run(db, job)
    add_record(db, run)
    response = client.post(f"/jobs/{job.public_id}/delete")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/jobs")
    assert "deleted" in page(client.get("/jobs")).select("p", class_="flash")[0].text
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Job.id))) == 0
    assert db.session.scalar(select(func.count(Run.id))) == 0
    assert db.session.scalar(select(func.count(Record.id))) == 0
    other = make_job(project, name="Doomed too")
    gone = client.post(f"/jobs/{other.public_id}/delete", headers=htmx_headers(other))
    assert gone.status_code == 200 and gone.get_data() == b""
    assert db.session.scalar(select(func.count(Job.id))) == 0
    assert client.post(f"/jobs/{other.public_id}/delete").status_code == 404


def test_edit_form_round_trip(client, db, project):
    job = make_job(
        project,
        name="Editable",
        prompt="acme",
        schedule="every_6_hours",
        sources=["https://a.example.com/rss"],
        limit=40,
        date_range={"last": "24h"},
    )
    doc = page(client.get(f"/jobs/{job.public_id}/edit"))
    assert doc.select("form", class_="job-form")[0].attrs["action"] == f"/jobs/{job.public_id}/edit"
    assert doc.by_id("name").attrs["value"] == "Editable"
    assert doc.by_id("prompt").text == "acme"
    assert doc.by_id("sources").text == "https://a.example.com/rss"
    assert doc.by_id("limit").attrs["value"] == "40"
    selected = {o.attrs["value"] for o in doc.select("option") if "selected" in o.attrs}
    assert selected == {"every_6_hours", "24h"}

    changed = form_data(
        name="Edited",
        prompt="rocket",
        sources="https://b.example.com/rss",
        limit="15",
        date_range="",
        schedule_kind="daily_at",
        daily_at="07:45",
        timezone="Europe/Berlin",
    )
    saved = client.post(f"/jobs/{job.public_id}/edit", data=changed)
    assert saved.status_code == 303
    assert saved.headers["Location"].endswith(f"/jobs/{job.public_id}")
    job = fresh(db, job)
    assert (job.name, job.prompt, job.limit, job.date_range) == ("Edited", "rocket", 15, None)
    assert (job.schedule_value, job.timezone) == ("45 7 * * *", "Europe/Berlin")
    assert job.sources == [{"type": "rss", "url": "https://b.example.com/rss"}]
    again = page(client.get(f"/jobs/{job.public_id}/edit"))
    assert again.by_id("daily_at").attrs["value"] == "07:45"
    assert again.by_id("timezone").attrs["value"] == "Europe/Berlin"
    selected = {o.attrs["value"] for o in again.select("option") if "selected" in o.attrs}
    assert selected == {"daily_at", ""}


def test_invalid_edit_rerenders_with_errors_and_changes_nothing(client, db, project):
    job = make_job(project, name="Stable", schedule="daily")
    response = client.post(
        f"/jobs/{job.public_id}/edit",
        data=form_data(name="", schedule_kind="cron", cron="* * * * * *"),
    )
    assert response.status_code == 422
    doc = page(response)
    assert doc.by_id("name-error").text == "Give the job a name."
    assert "5 fields" in doc.by_id("schedule-error").text
    assert doc.by_id("cron").attrs["value"] == "* * * * * *"
    job = fresh(db, job)
    assert (job.name, job.schedule_value) == ("Stable", "daily")


# --- a run's page ----------------------------------------------------------------------------


def test_run_page_lists_its_records(client, db, project):
    job = make_job(project, name="Listing")
    run = add_run(db, job, record_count=3, new_count=1)
    for i in range(3):
        add_record(db, run, i, is_new=i == 0, author=f"Author {i}")
    doc = page(client.get(f"/runs/{run.public_id}"))
    items = doc.select("li", class_="record")
    assert [item.find_all("a")[0].text for item in items] == [
        "Acme story 0",
        "Acme story 1",
        "Acme story 2",
    ]
    assert [bool(item.find_all("span")) for item in items] == [True, False, False]  # "new" badge
    assert items[0].find_all("span")[0].text == "new"
    assert "Author 2" in items[2].text
    assert "3 records" in doc.root.text
    backlink = [a for a in doc.select("a") if "Listing" in a.text]
    assert backlink[0].attrs["href"] == f"/jobs/{job.public_id}"


def test_record_content_is_escaped_and_javascript_links_are_neutralised(client, db, project):
    job = make_job(project)
    run = add_run(db, job, record_count=3)
    script = "<script>alert(1)</script>"
    add_record(
        db,
        run,
        0,
        title=script,
        text=f"text {script}",
        url="javascript:alert(1)",
        author='<img src=x onerror="alert(1)">',
    )
    add_record(db, run, 1, title="Mixed case", url="  JaVaScRiPt:alert(2)")
    add_record(db, run, 2, title="Fine", url="https://news.example.com/ok")
    response = client.get(f"/runs/{run.public_id}")
    html = response.get_data(as_text=True)
    assert script not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and 'onerror="alert' not in html
    assert "javascript:" not in html.lower()
    doc = page(response)
    hrefs = {a.text: a.attrs["href"] for a in doc.select("a", rel="noopener noreferrer nofollow")}
    assert hrefs == {script: "#", "Mixed case": "#", "Fine": "https://news.example.com/ok"}
    assert any(script in n.text for n in doc.select("p"))  # shown as text, not run


def test_a_job_name_with_markup_is_escaped_in_the_list(client, project):
    make_job(project, name="<script>alert(1)</script>")
    html = client.get("/jobs").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- live rows -------------------------------------------------------------------------------


def test_a_running_job_row_polls_every_2s_and_an_active_one_does_not(client, db, project):
    running = make_job(project, name="Busy")
    running.state = "running"
    idle = make_job(project, name="Idle")
    db.session.commit()
    doc = page(client.get("/jobs"))
    busy_row = doc.by_id(f"job-{running.public_id}")
    assert busy_row.attrs.get("hx-trigger") == "every 2s"
    assert busy_row.attrs.get("hx-get").startswith(f"/jobs/{running.public_id}/row?seen=")
    assert busy_row.attrs.get("hx-target") == "this"
    assert busy_row.attrs.get("hx-swap") == "outerHTML"
    assert doc.by_id(f"job-{idle.public_id}").attrs.get("hx-trigger") != "every 2s"
    run_buttons = [b for b in busy_row.find_all("button") if b.text == "Run now"]
    assert "disabled" in run_buttons[0].attrs


def test_a_polled_row_stops_polling_when_the_run_ends(client, db, project):
    job = make_job(project)
    run = add_run(db, job, "running")
    job.state = "running"
    db.session.commit()
    polled = client.get(f"/jobs/{job.public_id}/row")
    assert page(polled).by_id(f"job-{job.public_id}").attrs.get("hx-trigger") == "every 2s"
    run.status, run.finished_at, run.record_count = "completed", now(), 5
    job.state = "active"
    db.session.commit()
    final = page(client.get(f"/jobs/{job.public_id}/row")).by_id(f"job-{job.public_id}")
    assert final.attrs.get("hx-trigger") != "every 2s"
    assert "5" in final.text and "active" in final.text


# --- CSRF ------------------------------------------------------------------------------------


@pytest.fixture
def strict_client(app, owner, project):
    """A second app on the same database and environment, with CSRF protection on."""
    from conftest import login

    from webapp import create_app

    strict = create_app({"TESTING": True})
    assert strict.config.get("WTF_CSRF_ENABLED", True) is not False
    return login(strict.test_client(), owner, project)


def test_a_form_post_without_a_csrf_token_is_refused(strict_client, db, project):
    job = make_job(project)
    refused = strict_client.post("/jobs/new", data=form_data(name="Forged"))
    assert refused.status_code == 400
    assert "Form expired" in refused.get_data(as_text=True)
    refused_action = strict_client.post(f"/jobs/{job.public_id}/pause")
    assert refused_action.status_code == 400
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Job.id))) == 1
    assert fresh(db, job).state == "active"


def test_a_form_post_with_the_page_csrf_token_is_accepted(strict_client, db):
    form = page(strict_client.get("/jobs/new"))
    token = form.select("input", name="csrf_token")[0].attrs["value"]
    accepted = strict_client.post("/jobs/new", data=form_data(name="Real", csrf_token=token))
    assert accepted.status_code == 303
    job = db.session.scalars(select(Job)).one()
    # HTMX sends the same token as a header (hx-headers on <body>).
    paused = strict_client.post(
        f"/jobs/{job.public_id}/pause",
        headers={"HX-Request": "true", "HX-Target": f"job-{job.public_id}", "X-CSRFToken": token},
    )
    assert paused.status_code == 200
    assert fresh(db, job).state == "paused"


def test_the_api_needs_no_csrf_token_on_the_strict_app(strict_client, api_key, db):
    response = strict_client.post(
        "/v1/jobs",
        json={
            "name": "API",
            "prompt": "acme",
            "sources": ["https://a.example.com/rss"],
            "schedule": "daily",
        },
        headers=api_key("write"),
    )
    assert response.status_code == 201


# --- the address bar after boosted navigation ------------------------------------------------


def test_a_boosted_page_names_its_own_url_for_the_address_bar(client, db, project):
    boosted = {"HX-Request": "true", "HX-Boosted": "true"}
    job = make_job(project)
    landed = client.get("/jobs?state=paused", headers=boosted)
    assert landed.headers["HX-Push-Url"] == "/jobs?state=paused"
    assert client.get(f"/jobs/{job.public_id}", headers=boosted).headers["HX-Push-Url"] == (
        f"/jobs/{job.public_id}"
    )
    assert "HX-Push-Url" not in client.get("/jobs").headers  # no htmx: the browser knows
    polled = client.get(f"/jobs/{job.public_id}/row", headers={"HX-Request": "true"})
    assert "HX-Push-Url" not in polled.headers  # a poll is not a navigation
    restore = client.get("/jobs", headers={**boosted, "HX-History-Restore-Request": "true"})
    assert "HX-Push-Url" not in restore.headers


def test_a_settings_form_answered_in_place_shows_its_sections_url(client, db):
    boosted = {"HX-Request": "true", "HX-Boosted": "true"}
    invited = client.post("/settings/invitations", data={"role": "viewer"}, headers=boosted)
    assert invited.status_code == 200 and "/invite/" in invited.text
    assert invited.headers["HX-Push-Url"] == "/settings/members"
    assert 'id="revealed" role="alert" hx-history="false"' in invited.text  # not kept by htmx
    refused = client.post("/settings/invitations", data={"role": "emperor"}, headers=boosted)
    assert refused.status_code == 422 and refused.headers["HX-Push-Url"] == "/settings/members"
