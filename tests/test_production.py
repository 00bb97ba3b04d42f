"""Production as a platform runs it: the default environment of each entry point, SECRET_KEY,
local files, the proxy in front and HSTS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import GUNICORN, platform_env

from webapp.config import ConfigError, environment, load
from webapp.extensions import db as _db
from webapp.launcher import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


# --- which environment, and what production needs --------------------------------------------


@pytest.mark.parametrize(
    "env, default, expected",
    [
        ({}, None, "development"),  # the flask CLI, tests, a bare create_app()
        ({"SERVER_SOFTWARE": "gunicorn/23.0.0"}, None, "production"),  # under gunicorn
        ({}, "production", "production"),  # worker.py and scheduler.py
        ({"BYTESTACK_ENV": "development", "SERVER_SOFTWARE": "gunicorn/23"}, None, "development"),
        ({"BYTESTACK_ENV": "Development"}, "production", "development"),
        ({"BYTESTACK_ENV": "production"}, None, "production"),
    ],
)
def test_each_entry_point_has_its_default_environment_and_the_variable_wins(
    env, default, expected
):
    assert environment(env, default) == expected


def test_an_unknown_environment_is_refused():
    with pytest.raises(ConfigError, match="BYTESTACK_ENV must be development or production"):
        load({"BYTESTACK_ENV": "prod", "SECRET_KEY": "s"})


def test_production_without_a_secret_key_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load({}, str(tmp_path), default_env="production")
    message = str(caught.value)
    assert message.startswith("SECRET_KEY is not set, and production needs it")
    assert "secrets.token_hex(32)" in message and "BYTESTACK_ENV=development" in message
    assert not (tmp_path / "secret_key").exists()  # no key is made up for production


def test_production_defaults(tmp_path):
    config = load({"SECRET_KEY": "s"}, str(tmp_path), default_env="production")
    assert config["BYTESTACK_ENV"] == "production"
    assert config["LOCAL_FILES_DIR"] is None
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]
    assert config["HSTS"] is True
    assert config["TRUSTED_PROXIES"] == 0


def test_development_reads_local_feeds_from_the_instance_folder_only(tmp_path):
    config = load({}, str(tmp_path))
    assert config["LOCAL_FILES_DIR"] == str((tmp_path / "feeds").resolve())
    assert (tmp_path / "feeds").is_dir()
    assert config["HSTS"] is False and not config["SESSION_COOKIE_SECURE"]


def test_local_files_in_production_need_enabling_and_read_one_folder(tmp_path):
    folder = tmp_path / "shared-feeds"
    folder.mkdir()
    env = {"SECRET_KEY": "s", "BYTESTACK_ALLOW_LOCAL_FILES": "1"}
    config = load({**env, "BYTESTACK_LOCAL_FILES_DIR": str(folder)}, str(tmp_path), "production")
    assert config["LOCAL_FILES_DIR"] == str(folder.resolve())
    with pytest.raises(ConfigError, match="BYTESTACK_LOCAL_FILES_DIR must be an existing folder"):
        load({**env, "BYTESTACK_LOCAL_FILES_DIR": str(tmp_path / "missing")}, str(tmp_path))
    off = {"SECRET_KEY": "s", "BYTESTACK_LOCAL_FILES_DIR": str(folder)}
    assert load(off, str(tmp_path), "production")["LOCAL_FILES_DIR"] is None


@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_a_bad_trusted_proxies_value_is_refused(tmp_path, value):
    with pytest.raises(ConfigError, match="BYTESTACK_TRUSTED_PROXIES"):
        load({"BYTESTACK_TRUSTED_PROXIES": value}, str(tmp_path))


# --- the app in production, behind a proxy -----------------------------------------------------


def test_production_sends_hsts_and_development_does_not(app_with):
    production = app_with(BYTESTACK_ENV="production")
    response = production.test_client().get("/setup")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    _db.session.remove()
    development = app_with(BYTESTACK_ENV="development")
    assert "Strict-Transport-Security" not in development.test_client().get("/setup").headers


def _failed_sign_ins(client, count: int, forwarded_for: str) -> list[int]:
    return [
        client.post(
            "/login",
            data={"email": f"nobody{n}@example.com", "password": "wrong password"},
            headers={"X-Forwarded-For": forwarded_for},
        ).status_code
        for n in range(count)
    ]


def make_owner() -> None:
    from webapp.accounts.service import create_owner

    create_owner("owner@example.com", PASSWORD)


def test_behind_a_trusted_proxy_each_visitor_has_their_own_sign_in_limit(app_with):
    client = app_with(BYTESTACK_TRUSTED_PROXIES="1").test_client()
    make_owner()
    assert _failed_sign_ins(client, 30, "203.0.113.7") == [401] * 30
    assert _failed_sign_ins(client, 1, "203.0.113.7") == [429]
    # Everyone else behind the same router is not locked out with that visitor.
    assert _failed_sign_ins(client, 1, "198.51.100.20") == [401]


def test_without_a_trusted_proxy_a_forwarded_for_header_changes_nothing(app_with):
    client = app_with().test_client()
    make_owner()
    assert _failed_sign_ins(client, 30, "203.0.113.7") == [401] * 30
    # A made-up header must not get a client round the limit.
    assert _failed_sign_ins(client, 1, "198.51.100.20") == [429]


# --- the real processes, started as the Procfile starts them -----------------------------------


def run_until_exit(command: list[str], env: dict, timeout: float = 60) -> tuple[int, str]:
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, done.stdout + done.stderr


def test_gunicorn_worker_and_scheduler_refuse_to_start_without_a_secret_key(test_env):
    env = platform_env(test_env)
    env.pop("SECRET_KEY")
    port = free_port()
    for command in (
        [*GUNICORN, "--bind", f"127.0.0.1:{port}", "--workers", "2", "webapp:create_app()"],
        [sys.executable, "worker.py"],
        [sys.executable, "scheduler.py"],
        # The Procfile's release phase: a deploy without the key stops before it goes live.
        [sys.executable, "-m", "flask", "--app", 'webapp:create_app_or_exit("production")',
         "db", "upgrade"],
    ):
        code, output = run_until_exit(command, env)
        assert code != 0, output
        assert "ByteStack Jobs cannot start: SECRET_KEY is not set" in output, output
        assert "Traceback" not in output, output


def test_make_run_stays_development_and_stops_at_once_on_a_bad_value(test_env):
    env = platform_env(test_env, BYTESTACK_FETCH_TIMEOUT="soon")
    env.pop("SECRET_KEY")  # development makes its own, kept in instance/
    code, output = run_until_exit([sys.executable, "-m", "webapp.launcher"], env, timeout=30)
    assert code != 0
    assert output.strip() == (
        "ByteStack Jobs cannot start: BYTESTACK_FETCH_TIMEOUT must be a number, got 'soon'"
    )
