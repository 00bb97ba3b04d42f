"""Configuration from the environment, parsed strictly: a bad value stops start-up."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import urlsplit


class ConfigError(RuntimeError):
    pass


def _int(env: dict, name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: dict, name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: dict, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def database_url(env: dict, instance_path: str) -> str:
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + os.path.join(instance_path, "bytestack.sqlite3")
    # Hosting platforms still hand out the old scheme, which SQLAlchemy 2 refuses.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError("DATABASE_URL must be a postgres:// or sqlite:// URL")
    return url


def base_url(env: dict) -> str:
    """BYTESTACK_BASE_URL: where people and clients reach the app, for links made outside a
    request (a webhook's result_url, a message's link). Default: what `make run` serves."""
    raw = env.get("BYTESTACK_BASE_URL", "").strip() or "http://localhost:5000"
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018  (a port out of range raises here)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid or parts.query or parts.fragment:
        raise ConfigError(
            "BYTESTACK_BASE_URL must be an http:// or https:// URL with a host and no query, "
            f"e.g. https://jobs.example.com, got {raw!r}"
        )
    return raw.rstrip("/")


def encryption_key(env: dict) -> bytes | None:
    """BYTESTACK_ENCRYPTION_KEY, a Fernet key, or None to derive one from SECRET_KEY."""
    raw = env.get("BYTESTACK_ENCRYPTION_KEY", "").strip()
    if not raw:
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw.encode("ascii"))
    except (binascii.Error, UnicodeError, ValueError):
        decoded = b""
    if len(decoded) != 32:
        raise ConfigError(
            "BYTESTACK_ENCRYPTION_KEY must be a Fernet key (32 bytes, URL-safe base64), e.g. "
            "the output of: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'"
        )
    return raw.encode("ascii")


ENVIRONMENTS = ("development", "production")


def environment(env: dict, default: str | None = None) -> str:
    """BYTESTACK_ENV, else the entry point's default: production for the processes a platform
    runs (gunicorn, which names itself in SERVER_SOFTWARE, worker.py, scheduler.py), so a
    deploy that forgets the variable is not a development server; development otherwise
    (`make run` says so to its children, the flask CLI, tests)."""
    raw = env.get("BYTESTACK_ENV", "").strip().lower()
    if not raw:
        if default is not None:
            return default
        under_gunicorn = env.get("SERVER_SOFTWARE", "").startswith("gunicorn/")
        return "production" if under_gunicorn else "development"
    if raw not in ENVIRONMENTS:
        raise ConfigError(f"BYTESTACK_ENV must be development or production, got {raw!r}")
    return raw


def local_files_dir(env: dict, instance_path: str, development: bool) -> str | None:
    """The one folder feed sources may read local files from, or None (the default in
    production): BYTESTACK_ALLOW_LOCAL_FILES turns them on, BYTESTACK_LOCAL_FILES_DIR names
    the folder (default instance/feeds)."""
    if not _bool(env, "BYTESTACK_ALLOW_LOCAL_FILES", development):
        return None
    raw = env.get("BYTESTACK_LOCAL_FILES_DIR", "").strip()
    folder = Path(raw or Path(instance_path) / "feeds").expanduser()
    if not raw:
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise ConfigError(f"BYTESTACK_LOCAL_FILES_DIR must be an existing folder, got {raw!r}")
    return str(folder.resolve())


def load(
    env: dict | None = None, instance_path: str = "instance", default_env: str | None = None
) -> dict:
    """Read the whole configuration from the environment."""
    env = dict(os.environ if env is None else env)
    development = environment(env, default_env) == "development"
    secret = env.get("SECRET_KEY", "")
    if not secret:
        if not development:
            raise ConfigError(
                "SECRET_KEY is not set, and production needs it (BYTESTACK_ENV=production, "
                "the default under gunicorn, worker.py and scheduler.py). Set it to the same "
                "long random value on every process and machine, e.g. the output of: "
                "python -c 'import secrets; print(secrets.token_hex(32))'; or set "
                "BYTESTACK_ENV=development on a developer machine."
            )
        secret = _development_secret(instance_path)
    url = database_url(env, instance_path)
    engine_options: dict = {"pool_pre_ping": True}
    if url.startswith("sqlite:"):
        # Web, worker and scheduler share one SQLite file: wait for a lock instead of failing.
        engine_options = {"connect_args": {"timeout": 30}}
    return {
        "SECRET_KEY": secret,
        # Stored secrets (webhook secrets, source credentials) are encrypted with this key,
        # or with one derived from SECRET_KEY when it is not set.
        "ENCRYPTION_KEY": encryption_key(env),
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "REDIS_URL": env.get("REDIS_URL", "").strip() or None,
        "BYTESTACK_ENV": "development" if development else "production",
        "RUN_TIMEOUT_SECONDS": _int(env, "BYTESTACK_RUN_TIMEOUT", 600, minimum=1),
        "HEARTBEAT_SECONDS": _float(env, "BYTESTACK_HEARTBEAT_SECONDS", 5.0, minimum=0.1),
        "STALE_RUN_SECONDS": _float(env, "BYTESTACK_STALE_RUN_SECONDS", 60.0, minimum=0.5),
        "RECONCILE_SECONDS": _float(env, "BYTESTACK_RECONCILE_SECONDS", 5.0, minimum=0.1),
        "RECONCILE_FULL_SECONDS": _float(
            env, "BYTESTACK_RECONCILE_FULL_SECONDS", 300.0, minimum=1.0
        ),
        "WORKERS": _int(env, "BYTESTACK_WORKERS", max(2, os.cpu_count() or 1), minimum=1),
        "WORKER_GRACE_SECONDS": _float(env, "BYTESTACK_WORKER_GRACE_SECONDS", 20.0, minimum=0.0),
        "FETCH_CONCURRENCY": _int(env, "BYTESTACK_FETCH_CONCURRENCY", 4, minimum=1),
        "OVERDUE_GRACE_SECONDS": _float(
            env, "BYTESTACK_OVERDUE_GRACE_SECONDS", 120.0, minimum=1.0
        ),
        # Seconds a web request waits for Redis before it carries on without it.
        "REDIS_TIMEOUT_SECONDS": _float(env, "BYTESTACK_REDIS_TIMEOUT", 2.0, minimum=0.1),
        "SCHEDULER_INTERVAL": _float(env, "BYTESTACK_SCHEDULER_INTERVAL", 1.0, minimum=0.05),
        "ALLOW_PRIVATE_NETWORKS": _bool(env, "BYTESTACK_ALLOW_PRIVATE_NETWORKS", False),
        "FETCH_TIMEOUT_SECONDS": _float(env, "BYTESTACK_FETCH_TIMEOUT", 20.0, minimum=0.1),
        "FETCH_MIN_INTERVAL": _float(env, "BYTESTACK_FETCH_MIN_INTERVAL", 1.0, minimum=0.0),
        "FETCH_RETRIES": _int(env, "BYTESTACK_FETCH_RETRIES", 2, minimum=0),
        "FETCH_MAX_BYTES": _int(env, "BYTESTACK_FETCH_MAX_BYTES", 10 * 1024 * 1024, minimum=1024),
        "LOCAL_FILES_DIR": local_files_dir(env, instance_path, development),
        # Proxies in front of the app whose X-Forwarded-For and -Proto are believed: 0 for a
        # server reached directly, 1 behind a platform's router, more for a chain.
        "TRUSTED_PROXIES": _int(env, "BYTESTACK_TRUSTED_PROXIES", 0, minimum=0),
        "HSTS": not development,
        # A failed bucket push waits this many seconds times 2^(attempt-1) before the next try.
        "BUCKET_BACKOFF_SECONDS": _float(
            env, "BYTESTACK_BUCKET_BACKOFF_SECONDS", 30.0, minimum=0.0
        ),
        "WTF_CSRF_TIME_LIMIT": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env, "BYTESTACK_SECURE_COOKIES", not development),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool(env, "BYTESTACK_SECURE_COOKIES", not development),
        "API_RATE_LIMIT": env.get("BYTESTACK_API_RATE_LIMIT", "").strip() or "600 per minute",
        "MAX_CONTENT_LENGTH": _int(env, "BYTESTACK_MAX_BODY_BYTES", 1024 * 1024, minimum=1024),
        "BASE_URL": base_url(env),
        # A failed webhook attempt n waits this × 2^(n−1) before the next one.
        "WEBHOOK_BACKOFF_SECONDS": _float(
            env, "BYTESTACK_WEBHOOK_BACKOFF_SECONDS", 30.0, minimum=0.1
        ),
        # A failed alert attempt n waits this × 3^(n−1) before the next one (5 attempts).
        "ALERT_BACKOFF_SECONDS": _float(env, "BYTESTACK_ALERT_BACKOFF_SECONDS", 60.0, minimum=0.1),
    }


def _development_secret(instance_path: str) -> str:
    """A random key kept in instance/, so sessions survive restarts on a developer machine."""
    import secrets

    Path(instance_path).mkdir(parents=True, exist_ok=True)
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
