"""Start an RQ worker on the runs and notifications queues (run several: `make run` does)."""

from __future__ import annotations

import sys

from webapp import create_app
from webapp.queueing import NOTIFICATIONS_QUEUE, RUNS_QUEUE, get_redis
from webapp.runs.worker import RunWorker


def main() -> None:
    app = create_app()
    with app.app_context():
        connection = get_redis()
    # The app is built once here; each run's work horse is a fork that reuses it.
    worker = RunWorker([RUNS_QUEUE, NOTIFICATIONS_QUEUE], connection=connection, app=app)
    worker.work(with_scheduler=False, logging_level="INFO")


if __name__ == "__main__":
    sys.exit(main())
