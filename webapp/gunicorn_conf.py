"""gunicorn's settings for the web process: `gunicorn -c python:webapp.gunicorn_conf`, as the
Procfile and `make run` start it. The rest of the settings stay on their command lines."""

from __future__ import annotations


def on_starting(server) -> None:
    """Check the configuration once, in the master before any worker boots: a bad value or a
    missing SECRET_KEY stops the server with its one-line message, instead of a traceback
    from every worker. (Under gunicorn the default BYTESTACK_ENV is production.)"""
    from . import instance_folder
    from .config import ConfigError, load

    try:
        load(instance_path=instance_folder())
    except ConfigError as exc:
        raise SystemExit(f"ByteStack Jobs cannot start: {exc}") from None
