"""Retention (API.md "Project, retention"): a project's policy deletes old runs with their
records and result files, in small batches, never a run queued or running, never a run half
written; hourly and after each run; the API, Settings → Storage, and disk space given back."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import ROOT, make_job
from feeds import rss_document, wait_until
from redis import Redis
from rq import Queue
from sqlalchemy import func, inspect, select

from webapp.errors import NotFoundError
from webapp.extensions import db as _db
from webapp.ids import new_public_id
from webapp.jobs import service as jobs_service
from webapp.jobs.service import ensure_project
from webapp.models import Job, Project, Record, Run
from webapp.queueing import NOTIFICATIONS_QUEUE
from webapp.runs import rollups
from webapp.runs.lifecycle import complete_run, fail_run
from webapp.scheduling import PRUNE_EVERY_SECONDS, JobScheduler
from webapp.storage import retention
from webapp.storage.service import find_result_file, result_key
from webapp.timeutil import now

OLD = timedelta(days=40)
RECENT = timedelta(days=5)
ROLLUP_MODELS = (rollups.DayRollup, rollups.SourceRollup, rollups.DomainRollup,
                 rollups.AuthorRollup)
on_sqlite = pytest.mark.skipif(
    (os.environ.get("DATABASE_URL") or "sqlite").startswith("postgres"),
    reason="SQLite's own file",
)


# --- helpers ---------------------------------------------------------------------------------


def rows(count: int, tag: str, filler: str = "") -> list[dict]:
    """Records as a run's sources hand them to complete_run."""
    return [
        {
            "source": "rss",
            "fingerprint": f"{tag}-{n}",
            "url": f"https://news.example.com/{tag}/{n}",
            "domain": "news.example.com",
            "title": f"Café ☕ {tag} {n}",
            "text": f"About {tag}. {filler}",
            "author": f"author{n % 3}",
            "metrics": {"score": n},
            "raw": {"id": f"{tag}-{n}"},
        }
        for n in range(count)
    ]


def running(db, project, job, ago: timedelta, query: bool = False) -> Run:
    at = now() - ago
    run = Run(
        public_id=new_public_id("qry" if query else "run"),
        project_id=project.id,
        job_id=None if query else job.id,
        trigger="query" if query else "schedule",
        scheduled_for=at,
        status="running",
        started_at=at,
        params={"prompt": "acme"} if query else None,
    )
    db.session.add(run)
    db.session.commit()
    return run


def completed(db, project, job, ago: timedelta, records: int = 2, query: bool = False) -> Run:
    run = running(db, project, job, ago, query)
    assert complete_run(run.id, rows(records, run.public_id), [])
    return run


def failed(db, project, job, ago: timedelta) -> Run:
    run = running(db, project, job, ago)
    assert fail_run(run.id, "Every source failed.")
    return run


def skipped(db, project, job, ago: timedelta) -> Run:
    at = now() - ago
    run = Run(project_id=project.id, job_id=job.id, trigger="schedule", scheduled_for=at,
              status="skipped", finished_at=at, error="The previous run was still going.")
    db.session.add(run)
    db.session.commit()
    return run


def queued(db, project, job, ago: timedelta) -> Run:
    run = Run(project_id=project.id, job_id=job.id, trigger="schedule",
              scheduled_for=now() - ago, status="queued")
    db.session.add(run)
    db.session.commit()
    return run


def policy(project, days=None, runs_per_job=None) -> None:
    retention.set_retention(project, {"days": days, "runs_per_job": runs_per_job})


def left(db, project) -> set[str]:
    db.session.expire_all()
    found = set(db.session.scalars(select(Run.public_id).where(Run.project_id == project.id)))
    db.session.rollback()
    return found


def records_of(db, runs) -> int:
    ids = [inspect(run).identity[0] for run in runs]  # also of a run deleted since
    return db.session.scalar(select(func.count()).select_from(Record).where(Record.run_id.in_(ids)))


def orphans(db) -> int:
    """Records whose run is gone: a prune must never leave any."""
    return db.session.scalar(
        select(func.count()).select_from(Record).where(Record.run_id.not_in(select(Run.id)))
    )


def rollup_rows(db, project_id: int) -> dict:
    db.session.expire_all()
    found = {}
    for model in ROLLUP_MODELS:
        columns = [c for c in model.__table__.columns]
        found[model.__tablename__] = sorted(
            tuple(map(str, row))
            for row in db.session.execute(select(*columns).where(model.project_id == project_id))
        )
    return found


def assert_rollups_match_the_records(db, project) -> None:
    """The rollups as the prunes left them are what counting the remaining records gives."""
    kept = rollup_rows(db, project.id)
    rollups.rebuild(project.id)
    db.session.commit()
    assert rollup_rows(db, project.id) == kept


def expected_bytes(records: list[dict]) -> int:
    """storage_bytes as documented: each record's text and JSON as the database keeps them."""
    total = 0
    for record in records:
        for name in ("source", "url", "title", "text", "author"):
            if record.get(name) is not None:
                total += len(record[name].encode("utf-8"))
        for name in ("metrics", "raw"):
            total += len(json.dumps(record.get(name, {})).encode("utf-8"))
    return total


@pytest.fixture
def job(project):
    return make_job(project, name="Acme")


# --- what a prune deletes --------------------------------------------------------------------


def test_days_prunes_old_runs_skipped_runs_and_queries_with_their_records_and_files(
    db, project, job, client, api_key
):
    other = make_job(project, name="Other")
    old = [
        completed(db, project, job, OLD),
        failed(db, project, other, OLD + timedelta(hours=1)),
        skipped(db, project, job, OLD + timedelta(hours=2)),
        completed(db, project, None, OLD + timedelta(hours=3), query=True),
    ]
    young = [
        completed(db, project, job, RECENT),
        skipped(db, project, other, RECENT),
        completed(db, project, None, RECENT, query=True),
    ]
    keys = [result_key(run) for run in (old[0], old[3])]
    policy(project, days=30)

    result = retention.prune_project(project.id)

    assert (result.runs, result.records) == (4, 4)
    assert left(db, project) == {run.public_id for run in young}
    assert records_of(db, old) == 0 and records_of(db, young) == 4 and orphans(db) == 0
    for key in keys:  # a result file is its run's records: both are gone
        with pytest.raises(NotFoundError):
            find_result_file(db.session.get(Project, project.id), key)
        assert client.get(f"/v1/storage/{key}", headers=api_key("read")).status_code == 404
    listed = client.get("/v1/storage", headers=api_key("read")).get_json()["data"]
    assert {item["key"] for item in listed} == {result_key(young[0]), result_key(young[2])}
    assert_rollups_match_the_records(db, project)


def test_runs_per_job_keeps_each_jobs_newest_finished_runs_and_leaves_queries_to_days(
    db, project, job
):
    other = make_job(project, name="Other")
    mine = [completed(db, project, job, timedelta(hours=10 - n)) for n in range(4)]
    mine.insert(1, skipped(db, project, job, timedelta(hours=9, minutes=30)))
    theirs = [failed(db, project, other, timedelta(hours=9)),
              completed(db, project, other, timedelta(hours=8))]
    queries = [completed(db, project, None, OLD, query=True) for _ in range(3)]
    kept = {run.public_id for run in (*mine[-2:], *theirs, *queries)}
    policy(project, runs_per_job=2)

    result = retention.prune_project(project.id)

    assert result.runs == 3  # the two oldest of mine and the skipped run between them
    assert left(db, project) == kept
    assert orphans(db) == 0
    assert_rollups_match_the_records(db, project)


def test_a_policy_of_nulls_keeps_everything(db, project, job):
    runs = [completed(db, project, job, OLD), completed(db, project, None, OLD, query=True)]
    policy(project, days=30, runs_per_job=1)
    policy(project)  # both back to null
    assert retention.prune_project(project.id).runs == 0
    assert left(db, project) == {run.public_id for run in runs}


def test_queued_and_running_runs_are_never_touched(db, project, job):
    other = make_job(project, name="Other")
    done = completed(db, project, job, OLD + timedelta(hours=1))
    waiting = queued(db, project, job, OLD)
    going = running(db, project, other, OLD)
    query = running(db, project, None, OLD, query=True)
    kept = {waiting.public_id, going.public_id, query.public_id}
    policy(project, days=1, runs_per_job=1)

    retention.prune_project(project.id)

    assert left(db, project) == kept
    assert records_of(db, [done]) == 0
    assert orphans(db) == 0


def test_a_job_keeps_its_newest_finished_run_while_another_goes_on(db, project, job):
    newest = [completed(db, project, job, timedelta(hours=3 - n)) for n in range(3)][-1]
    going = running(db, project, job, timedelta(minutes=5))
    kept = {newest.public_id, going.public_id}
    policy(project, runs_per_job=1)

    retention.prune_project(project.id)

    assert left(db, project) == kept
    assert complete_run(going.id, rows(3, "late"), [])  # the run it did not touch completes
    assert records_of(db, [going]) == 3


# --- batches and runs written meanwhile ------------------------------------------------------


@pytest.fixture
def batches(monkeypatch):
    """Small batches, and the (runs, records) each one deleted, in order."""
    monkeypatch.setattr(retention, "BATCH_RUNS", 3)
    monkeypatch.setattr(retention, "BATCH_RECORDS", 5)
    done: list[tuple[int, int]] = []
    delete_runs = retention.delete_runs

    def counted(run_ids):
        result = delete_runs(run_ids)
        done.append(result)
        return result

    monkeypatch.setattr(retention, "delete_runs", counted)
    return done


def test_a_prune_deletes_in_batches_of_few_runs_and_few_records(db, project, job, batches):
    heavy = completed(db, project, job, OLD + timedelta(hours=9), records=8)
    for n in range(7):
        completed(db, project, job, OLD + timedelta(hours=n), records=2)
    kept = completed(db, project, job, RECENT)
    policy(project, days=30)

    result = retention.prune_project(project.id)

    # Oldest first: the heavy run alone (it exceeds the record budget, but a batch always takes
    # one run), then at most 5 records' worth of runs at a time.
    assert batches == [(1, 8), (2, 4), (2, 4), (2, 4), (1, 2)]
    assert (result.runs, result.records) == (8, 22)
    assert left(db, project) == {kept.public_id}
    assert records_of(db, [heavy]) == 0 and orphans(db) == 0
    assert_rollups_match_the_records(db, project)


def test_pruning_again_deletes_nothing_more(db, project, job):
    for n in range(4):
        completed(db, project, job, OLD + timedelta(hours=n))
    kept = completed(db, project, job, RECENT)
    policy(project, days=30)
    assert retention.prune_project(project.id).runs == 4
    rolled = rollup_rows(db, project.id)
    again = retention.prune_project(project.id)
    assert (again.runs, again.records) == (0, 0)
    assert left(db, project) == {kept.public_id}
    assert rollup_rows(db, project.id) == rolled
    assert retention.delete_runs([inspect(kept).identity[0] + 1000]) == (0, 0)


def _complete_elsewhere(app, run_id: int, records: list[dict], results: list) -> threading.Thread:
    """Complete a run from another thread, with its own session and connection."""

    def work():
        with app.app_context():
            try:
                results.append(complete_run(run_id, records, []))
            except Exception as exc:  # shown by the assertions
                results.append(exc)
            finally:
                _db.session.remove()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_a_run_completing_between_batches_is_pruned_whole_or_not_at_all(
    app, db, project, job, batches, monkeypatch
):
    """An old run still going when the prune starts completes after its first batch: the later
    batches claim it as completed, with all its records, and the rollups stay right."""
    other = make_job(project, name="Other")
    for n in range(6):
        completed(db, project, other, OLD + timedelta(hours=n))
    late = running(db, project, job, OLD)
    late_id = late.id
    policy(project, days=30)
    results: list = []
    delete_runs = retention.delete_runs

    def then_complete(run_ids):
        answer = delete_runs(run_ids)
        if not results:
            _complete_elsewhere(app, late_id, rows(4, "late"), results).join(30)
        return answer

    monkeypatch.setattr(retention, "delete_runs", then_complete)

    result = retention.prune_project(project.id)

    assert results == [True]
    assert (result.runs, result.records) == (7, 16)
    assert left(db, project) == set()
    assert orphans(db) == 0
    assert_rollups_match_the_records(db, project)


def test_a_run_completing_while_a_batch_deletes_neither_blocks_nor_breaks_the_prune(
    app, db, project, job, monkeypatch
):
    """The run's completion is written while a batch's transaction is open (on SQLite it waits
    for the batch's commit; on PostgreSQL it goes on beside it): both succeed, the run is kept
    whole (it is the job's newest) and the older runs are gone with their records."""
    for n in range(4):
        completed(db, project, job, timedelta(hours=10 - n))
    late = running(db, project, job, timedelta(hours=1))
    late_id = late.public_id
    policy(project, runs_per_job=2)
    results: list = []
    threads: list[threading.Thread] = []
    subtract = rollups.subtract_runs

    def subtract_and_complete(run_ids):
        if not threads:
            threads.append(_complete_elsewhere(app, late.id, rows(5, "late"), results))
        subtract(run_ids)

    monkeypatch.setattr(rollups, "subtract_runs", subtract_and_complete)

    result = retention.prune_project(project.id)
    threads[0].join(30)

    assert results == [True]
    assert result.runs == 2
    assert len(left(db, project)) == 3 and late_id in left(db, project)
    assert records_of(db, [late]) == 5 and orphans(db) == 0
    assert_rollups_match_the_records(db, project)
    # The next prune (queued after that run) keeps the newest two.
    assert retention.prune_project(project.id).runs == 1


# A prune in a process of its own, its batches small and slow (each waits inside its
# transaction): it makes the file named by its third argument once ready, and starts when the
# one named by its second appears.
PRUNE_SCRIPT = """
import sys, time
from pathlib import Path
from webapp import create_app
from webapp.runs import rollups
from webapp.storage import retention
retention.BATCH_RUNS = 2
subtract = rollups.subtract_runs
def slowly(run_ids):
    subtract(run_ids)
    time.sleep(0.05)
rollups.subtract_runs = slowly
app = create_app()
with app.app_context():
    go = Path(sys.argv[2])
    Path(sys.argv[3]).touch()
    while not go.exists():
        time.sleep(0.01)
    started = time.time()
    result = retention.prune_project(int(sys.argv[1]))
    print(result.runs, result.records, started, time.time())
"""


def test_two_prunes_at_once_in_two_processes_delete_each_run_once(
    app, db, project, job, test_env, tmp_path
):
    other = make_job(project, name="Other")
    for n in range(12):
        completed(db, project, job if n % 2 else other, OLD - timedelta(hours=n), records=3)
    kept = completed(db, project, job, RECENT)
    policy(project, days=30)
    go, ready = tmp_path / "go", [tmp_path / "ready-1", tmp_path / "ready-2"]
    prunes = [
        subprocess.Popen(
            [sys.executable, "-c", PRUNE_SCRIPT, str(project.id), str(go), str(mine)],
            env={**os.environ, **test_env}, cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for mine in ready
    ]
    wait_until(lambda: all(path.exists() for path in ready), 60, message="both prunes ready")
    go.touch()
    answers = [prune.communicate(timeout=120) for prune in prunes]
    assert [prune.returncode for prune in prunes] == [0, 0], [err for _, err in answers]
    (runs_1, records_1, start_1, end_1), (runs_2, records_2, start_2, end_2) = [
        [float(value) for value in out.split()[-4:]] for out, _ in answers
    ]

    assert start_1 < end_2 and start_2 < end_1  # the two prunes ran at the same time
    assert runs_1 + runs_2 == 12  # and each run was deleted by one of them
    assert records_1 + records_2 == 36
    assert left(db, project) == {kept.public_id}
    assert orphans(db) == 0
    assert_rollups_match_the_records(db, project)  # no run taken out of them twice


# --- what the project stores -----------------------------------------------------------------


def test_storage_bytes_are_the_records_text_and_json_measured_or_not(db, project, job):
    first = rows(3, "first", filler="ünïcode " * 20)
    second = rows(2, "second")
    for records in (first, second):
        run = running(db, project, job, RECENT)
        assert complete_run(run.id, records, [])
    failed(db, project, job, RECENT)
    expected = expected_bytes(first + second)

    unmeasured = retention.usage(db.session.get(Project, project.id))
    assert retention.measure_runs(project.id) == 2
    measured = retention.usage(db.session.get(Project, project.id))

    assert unmeasured == measured == retention.Usage(record_count=5, storage_bytes=expected)
    assert db.session.scalar(select(func.count()).where(Run.stored_bytes.is_not(None))) == 2
    assert retention.measure_runs(project.id) == 0


def test_a_prune_measures_the_runs_it_keeps_and_the_size_goes_down(db, project, job):
    old = completed(db, project, job, OLD, records=4)
    young = completed(db, project, job, RECENT, records=3)
    before = retention.usage(db.session.get(Project, project.id))
    policy(project, days=30)
    retention.prune_project(project.id)
    after = retention.usage(db.session.get(Project, project.id))
    assert before.record_count == 7 and after.record_count == 3
    assert after.storage_bytes == expected_bytes(rows(3, young.public_id)) < before.storage_bytes
    assert db.session.get(Run, young.id).stored_bytes == after.storage_bytes
    assert records_of(db, [old]) == 0


# --- the API ---------------------------------------------------------------------------------


def test_get_project_shows_the_policy_records_and_size(client, db, project, job, api_key):
    completed(db, project, job, RECENT, records=3)
    completed(db, project, None, RECENT, records=2, query=True)
    expected = retention.usage(db.session.get(Project, project.id))
    response = client.get("/v1/project", headers=api_key("read"))
    assert response.status_code == 200
    assert response.get_json() == {
        "id": project.public_id,
        "name": project.name,
        "retention": {"days": None, "runs_per_job": None},
        "record_count": 5,
        "storage_bytes": expected.storage_bytes,
    }
    assert expected.storage_bytes > 0


def test_patch_project_changes_the_fields_sent_and_null_keeps_everything(
    client, db, project, api_key
):
    admin = api_key("admin")
    answer = client.patch("/v1/project", json={"retention": {"days": 30}}, headers=admin)
    assert answer.status_code == 200
    assert answer.get_json()["retention"] == {"days": 30, "runs_per_job": None}
    answer = client.patch("/v1/project", json={"retention": {"runs_per_job": 50}}, headers=admin)
    assert answer.get_json()["retention"] == {"days": 30, "runs_per_job": 50}
    answer = client.patch("/v1/project", json={"retention": {"days": None}}, headers=admin)
    assert answer.get_json()["retention"] == {"days": None, "runs_per_job": 50}
    assert client.get("/v1/project", headers=api_key("read")).get_json()["retention"] == {
        "days": None, "runs_per_job": 50,
    }
    db.session.expire_all()
    stored = db.session.get(Project, project.id)
    assert (stored.retention_days, stored.retention_runs_per_job) == (None, 50)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "retention"),
        ({"retention": 30}, "retention"),
        ({"retention": None}, "retention"),
        ({"retention": {"days": 0}}, "retention.days"),
        ({"retention": {"days": 3651}}, "retention.days"),
        ({"retention": {"days": "a month"}}, "retention.days"),
        ({"retention": {"days": 1.5}}, "retention.days"),
        ({"retention": {"days": True}}, "retention.days"),
        ({"retention": {"runs_per_job": 0}}, "retention.runs_per_job"),
        ({"retention": {"runs_per_job": 100_001}}, "retention.runs_per_job"),
        ({"retention": {"weeks": 2}}, "retention.weeks"),
        ({"retention": {"days": "3\x00"}}, "retention"),  # NUL: refused before any rule
        ({"name": "Renamed", "retention": {}}, "name"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_changes_nothing(
    client, db, project, api_key, body, field
):
    policy(project, days=7)
    answer = client.patch("/v1/project", json=body, headers=api_key("admin"))
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_field", field)
    assert error["message"]
    db.session.expire_all()
    assert db.session.get(Project, project.id).retention_days == 7


def test_reading_needs_a_read_key_and_changing_an_admin_key(client, db, project, api_key):
    assert client.get("/v1/project").status_code == 401
    assert client.get("/v1/project", headers=api_key("read")).status_code == 200
    for scope in ("read", "write"):
        refused = client.patch("/v1/project", json={"retention": {"days": 1}},
                               headers=api_key(scope))
        assert refused.status_code == 403
    db.session.expire_all()
    assert db.session.get(Project, project.id).retention_days is None


def test_the_openapi_document_describes_the_project_and_what_storage_bytes_counts(client):
    document = client.get("/v1/openapi.json").get_json()
    assert set(document["paths"]["/v1/project"]) == {"get", "patch"}
    project = document["components"]["schemas"]["Project"]
    assert set(project["required"]) == {"id", "name", "retention", "record_count",
                                       "storage_bytes"}
    assert "text and JSON" in project["properties"]["storage_bytes"]["description"]
    days = document["components"]["schemas"]["RetentionUpdate"]["properties"]["days"]
    assert days["maximum"] == 3650 and days["minimum"] == 1 and days["nullable"] is True


# --- Settings → Storage ----------------------------------------------------------------------


def test_settings_storage_shows_the_records_size_and_policy_and_changes_it(
    client, db, project, job
):
    completed(db, project, job, RECENT, records=3)
    page = client.get("/settings/storage").get_data(as_text=True)
    assert '<dd id="record-count">3</dd>' in page
    assert "Every run is kept" in page
    size = retention.usage(db.session.get(Project, project.id)).storage_bytes
    assert f"{size} Bytes" in page

    saved = client.post("/settings/storage/retention", data={"days": "30", "runs_per_job": ""})
    assert saved.status_code == 303
    db.session.expire_all()
    stored = db.session.get(Project, project.id)
    assert (stored.retention_days, stored.retention_runs_per_job) == (30, None)
    page = client.get("/settings/storage").get_data(as_text=True)
    assert "The retention policy is saved." in page
    assert "Runs older than 30 days are deleted" in page
    assert 'name="days" type="number" inputmode="numeric" min="1" max="3650" value="30"' in page

    client.post("/settings/storage/retention", data={"days": "", "runs_per_job": "1"})
    page = client.get("/settings/storage").get_data(as_text=True)
    assert "each job keeps its newest 1 run<" in page.replace("\n", "")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"days": "0", "runs_per_job": ""}, "days"),
        ({"days": "ten", "runs_per_job": ""}, "days"),
        ({"days": "99999999999999999999", "runs_per_job": ""}, "days"),
        ({"days": "", "runs_per_job": "-3"}, "runs_per_job"),
        ({"days": "", "runs_per_job": "2\x00"}, "runs_per_job"),
    ],
)
def test_a_bad_policy_re_renders_the_form_with_the_message_beside_the_field(
    client, db, project, form, field
):
    answer = client.post("/settings/storage/retention", data=form)
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    assert f'<p class="error" id="{field}-error">' in page
    assert f'aria-describedby="{field}-error"' in page
    db.session.expire_all()
    assert db.session.get(Project, project.id).retention_days is None


def test_only_an_owner_may_change_the_policy(persona, db, project):
    for role in ("viewer", "editor"):
        answer = persona(role).post("/settings/storage/retention", data={"days": "1"})
        assert answer.status_code == 403
    db.session.expire_all()
    assert db.session.get(Project, project.id).retention_days is None


# --- when it runs ----------------------------------------------------------------------------


def queued_prunes(redis: Redis) -> list[str]:
    return sorted(
        job_id for job_id in Queue(NOTIFICATIONS_QUEUE, connection=redis).job_ids
        if job_id.startswith("prune-")
    )


def test_the_maintenance_pass_queues_a_prune_of_each_project_with_a_policy_hourly(
    app, db, project, redis_url
):
    redis = Redis.from_url(redis_url)
    strict = ensure_project("Strict")
    policy(strict, runs_per_job=3)
    ensure_project("Keeps everything")
    redis.flushall()  # the prune the policy change queued
    scheduler = JobScheduler(app, connection=redis, interval=0.05)

    scheduler.maintain()
    assert queued_prunes(redis) == [f"prune-{strict.id}"]
    redis.flushall()
    scheduler._last_pass = 0.0  # the next reconcile pass is due; the next prune is not
    scheduler.maintain()
    assert queued_prunes(redis) == []
    scheduler._last_pass = 0.0
    scheduler._last_prune -= PRUNE_EVERY_SECONDS
    scheduler.maintain()
    assert queued_prunes(redis) == [f"prune-{strict.id}"]


def test_a_finished_run_and_a_policy_change_queue_a_prune_of_the_project(
    db, project, job, redis_url
):
    redis = Redis.from_url(redis_url)
    completed(db, project, job, RECENT)
    assert queued_prunes(redis) == [f"prune-{project.id}"]
    redis.flushall()
    failed(db, project, job, RECENT)
    assert queued_prunes(redis) == [f"prune-{project.id}"]
    redis.flushall()
    policy(project, days=3)
    assert queued_prunes(redis) == [f"prune-{project.id}"]


def test_a_failing_prune_never_touches_the_run_that_queued_it(db, project, job, monkeypatch):
    def broken(project_id):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(retention, "prune_project", broken)
    run_id = completed(db, project, job, RECENT).id
    with pytest.raises(RuntimeError):
        retention.prune_task(project.id)
    assert db.session.get(Run, run_id).status == "completed"
    assert db.session.scalar(select(func.count()).where(Record.run_id == run_id)) == 2


def test_a_real_scheduler_and_notifications_worker_prune_a_project_hourly(
    db, project, job, processes
):
    old = completed(db, project, job, OLD)
    kept = completed(db, project, job, RECENT)
    policy(project, days=30)
    Redis.from_url(processes.env["REDIS_URL"]).flushall()  # only the hourly pass queues it
    processes.scheduler()
    processes.notifier()
    wait_until(lambda: left(db, project) == {kept.public_id}, 60, message="the old run pruned")
    assert records_of(db, [old]) == 0
    assert f"pruned project {project.id}: 1 runs, 2 records" in processes.log("notifier")


def test_each_run_through_a_real_worker_prunes_its_project_after_it(
    db, project, feed_server, processes
):
    url = feed_server.serve(
        "/feed.xml",
        rss_document([{"title": f"Acme {n}", "link": f"https://news.example.com/{n}"}
                      for n in range(3)]),
    )
    job = make_job(project, sources=[url], prompt="acme", date_range={"last": "7d"})
    policy(project, runs_per_job=1)
    processes.worker()
    processes.notifier()

    def completed_runs() -> list[Run]:
        db.session.expire_all()
        found = db.session.scalars(
            select(Run).where(Run.job_id == job.id, Run.status == "completed")
        ).all()
        db.session.rollback()
        return found

    first = jobs_service.run_now(job)
    wait_until(lambda: len(completed_runs()) == 1, 60, message="the first run")
    assert records_of(db, [first]) == 3
    second = jobs_service.run_now(db.session.get(Job, job.id))
    wait_until(lambda: left(db, project) == {second.public_id}, 60,
               message="the first run pruned after the second")
    assert records_of(db, [first]) == 0 and records_of(db, [second]) == 3
    assert db.session.get(Run, second.id).stored_bytes > 0  # measured by the same prune
    assert_rollups_match_the_records(db, project)


# --- disk space ------------------------------------------------------------------------------


def _pages(db) -> tuple[int, int]:
    with db.engine.connect() as connection:
        return (connection.exec_driver_sql("PRAGMA page_count").scalar(),
                connection.exec_driver_sql("PRAGMA freelist_count").scalar())


@on_sqlite
def test_a_new_sqlite_database_has_incremental_auto_vacuum(db):
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA auto_vacuum").scalar() == 2


@on_sqlite
def test_pruning_gives_sqlite_pages_back_and_the_file_shrinks(db, project, job, test_env):
    for n in range(4):  # some 3 MB of records
        run = running(db, project, job, OLD + timedelta(hours=n))
        assert complete_run(run.id, rows(400, f"old{n}", filler="x" * 2000), [])
    completed(db, project, job, RECENT)
    path = Path(test_env["DATABASE_URL"].removeprefix("sqlite:///"))

    def file_size() -> int:
        with db.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return path.stat().st_size

    pages_before, _ = _pages(db)
    size_before = file_size()
    policy(project, days=30)
    retention.prune_project(project.id)
    pages_after, free_after = _pages(db)

    assert free_after == 0  # nothing kept for reuse: handed back
    assert pages_after < pages_before / 4
    assert file_size() < size_before / 4


@on_sqlite
def test_the_migration_turns_an_older_sqlite_file_to_incremental_auto_vacuum(
    tmp_path, monkeypatch
):
    from flask_migrate import upgrade

    from webapp import create_app

    path = tmp_path / "older.sqlite3"
    older = sqlite3.connect(path)
    older.execute("CREATE TABLE made_before (x)")  # a table first: auto_vacuum stays off
    older.commit()
    assert older.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    older.close()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    app = create_app({"TESTING": True})
    with app.app_context():
        upgrade()
        _db.engine.dispose()
    converted = sqlite3.connect(path)
    assert converted.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    assert converted.execute("SELECT count(*) FROM made_before").fetchone() == (0,)
    converted.close()
