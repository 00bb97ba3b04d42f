"""ByteStack Jobs: scheduled queries with a dashboard and a JSON API."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def instance_folder() -> str:
    return os.environ.get("BYTESTACK_INSTANCE_PATH", str(ROOT / "instance"))


def create_app(config: dict | None = None, default_env: str | None = None) -> Flask:
    """The app; `default_env` is the entry point's BYTESTACK_ENV when the variable is unset."""
    app = Flask(
        __name__,
        instance_path=instance_folder(),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from . import config as config_module

    app.config.update(
        config_module.load(instance_path=app.instance_path, default_env=default_env)
    )
    if config:
        app.config.update(config)
    _configure_logging()
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address (the sign-in rate limit's key) and https from the router's
        # headers; X-Forwarded-Host is not taken, so links keep the Host the router passed.
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    from .extensions import csrf, db, htmx, install_sqlite_tuning, limiter, migrate

    install_sqlite_tuning()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # With Redis unreachable the API keeps answering: the limiter logs the error and lets the
    # request through (fails open), after waiting no longer than a short socket timeout.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    redis_timeout = app.config["REDIS_TIMEOUT_SECONDS"]
    app.config.setdefault(
        "RATELIMIT_STORAGE_OPTIONS",
        {"socket_timeout": redis_timeout, "socket_connect_timeout": redis_timeout},
    )
    limiter.init_app(app)

    from . import models  # noqa: F401  (tables must be known to migrations)
    from .accounts import models as account_models  # noqa: F401
    from .accounts.access import init_access
    from .accounts.views import bp as accounts_bp
    from .analytics.views import bp as analytics_bp
    from .api import bp as api_bp
    from .cli import register_cli
    from .jobs.views import bp as jobs_bp
    from .notifications import kinds as notification_kinds  # noqa: F401  (registers them)
    from .notifications import models as notification_models  # noqa: F401
    from .queries.views import bp as queries_bp
    from .runs import rollups  # noqa: F401  (its tables)
    from .settings import models as settings_models  # noqa: F401
    from .settings.views import bp as settings_bp
    from .storage.views import bp as storage_bp
    from .web import register_web

    init_access(app)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(queries_bp)
    app.register_blueprint(storage_bp)
    app.register_blueprint(analytics_bp)
    app.register_blueprint(settings_bp)
    app.register_blueprint(api_bp)
    csrf.exempt(api_bp)  # the API authenticates with Bearer keys, never cookies
    register_web(app)
    register_cli(app)
    return app


def create_app_or_exit(default_env: str) -> Flask:
    """create_app for a process's entry point: a configuration error (a bad value, no
    SECRET_KEY in production) ends the process with its message instead of a traceback."""
    from .config import ConfigError

    try:
        return create_app(default_env=default_env)
    except ConfigError as exc:
        raise SystemExit(f"ByteStack Jobs cannot start: {exc}") from None


def _configure_logging() -> None:
    root = logging.getLogger()
    if any(getattr(h, "_bytestack", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    )
    handler._bytestack = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Alembic announces each of its autogenerate plugins at INFO on every command: noise
    # around what a migration or `flask create-owner` prints.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
