"""Start RQ workers on the runs and notifications queues."""

from __future__ import annotations

import sys

from rq import Worker

from webapp import create_app
from webapp.queueing import NOTIFICATIONS_QUEUE, RUNS_QUEUE, get_redis


def main() -> None:
    app = create_app()
    with app.app_context():
        connection = get_redis()
    # The app is built once here; each run's work horse is a fork that reuses it.
    from webapp.runs import executor

    executor._app = app
    worker = Worker([RUNS_QUEUE, NOTIFICATIONS_QUEUE], connection=connection)
    worker.work(with_scheduler=False, logging_level="INFO")


if __name__ == "__main__":
    sys.exit(main())
