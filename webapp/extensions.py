"""Flask extensions, bound to the app in create_app()."""

from __future__ import annotations

from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
htmx = HTMX()


def _tune_sqlite(dbapi_connection, _record) -> None:
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        # Pruned runs give their pages back to the file system (webapp.storage.retention). It
        # takes effect only on a database with no table yet, so it comes before anything
        # else; the retention migration converts older files once.
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        # Web, worker and scheduler write to one file: WAL lets readers go on during writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def install_sqlite_tuning() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _tune_sqlite):
        event.listen(Engine, "connect", _tune_sqlite)


def _client_address() -> str:
    from flask import request

    return request.remote_addr or "unknown"


# Limits live in Redis (REDIS_URL) so every web process shares them.
limiter = Limiter(key_func=_client_address, default_limits=[])


def upsert_insert(model):
    """INSERT for `model` in the session's dialect, with ON CONFLICT (SQLite, PostgreSQL)."""
    dialect = db.session.get_bind().dialect.name
    return (postgresql_insert if dialect == "postgresql" else sqlite_insert)(model)
