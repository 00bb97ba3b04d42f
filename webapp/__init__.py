"""ByteStack Jobs: scheduled queries with a dashboard and a JSON API."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.environ.get("BYTESTACK_INSTANCE_PATH", str(ROOT / "instance")),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from . import config as config_module

    app.config.update(config_module.load(instance_path=app.instance_path))
    if config:
        app.config.update(config)
    _configure_logging()

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
    from .queries.views import bp as queries_bp
    from .notifications import kinds as notification_kinds  # noqa: F401  (registers them)
    from .notifications import models as notification_models  # noqa: F401
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
