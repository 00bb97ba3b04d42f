"""The RQ worker of the runs queue: the one entry point of every task, which runs inside
the app's context; a heartbeat /healthz can read; and a graceful stop."""

from __future__ import annotations

import os
import signal
import socket

from flask import Flask
from rq import Worker

from ..extensions import db
from ..queueing import beat, forget_beat

# An idle worker proves it is alive every ~20 s (RQ waits worker_ttl - 15 s for a message),
# a busy one every job_monitoring_interval.
WORKER_TTL = 35
MONITORING_INTERVAL = 5


class RunWorker(Worker):
    """SIGTERM (to the worker, or to its whole process group as a platform does on deploy)
    reaches the work horse too, which finishes its run within the grace period or hands it
    back to the queue (webapp.runs.executor); the worker then stops instead of taking more."""

    def __init__(self, *args, app: Flask, **kwargs):
        self.app = app
        kwargs.setdefault("name", f"{socket.gethostname()}.{os.getpid()}")
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        kwargs.setdefault("job_monitoring_interval", MONITORING_INTERVAL)
        super().__init__(*args, **kwargs)

    def perform_job(self, *args, **kwargs):
        """In the work horse: the task gets the app context (built once, in the worker) and
        database connections of its own, never the parent's (the horse is a fork)."""
        with self.app.app_context():
            db.engine.dispose(close=False)
            return super().perform_job(*args, **kwargs)

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(timeout, pipeline)
        beat(self.connection, "worker", self.name)

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def register_death(self):
        super().register_death()
        forget_beat(self.connection, "worker", self.name)
