"""Start an RQ worker: `python worker.py` works runs, `python worker.py notifications` works
deliveries (webhooks, alerts, pushes), so a slow receiver never holds up a run. Start as many
of each as you need, on as many machines, against one Redis and one database."""

from __future__ import annotations

import sys

from webapp import create_app_or_exit
from webapp.queueing import NOTIFICATIONS_QUEUE, RUNS_QUEUE, get_redis
from webapp.runs.worker import RunWorker

QUEUES = (RUNS_QUEUE, NOTIFICATIONS_QUEUE)


def main(argv: list[str]) -> None:
    queues = argv or [RUNS_QUEUE]
    unknown = [name for name in queues if name not in QUEUES]
    if unknown:
        raise SystemExit(f"Unknown queue {unknown[0]!r}: use {' or '.join(QUEUES)}.")
    # Production unless BYTESTACK_ENV says otherwise: this is what a platform runs.
    app = create_app_or_exit(default_env="production")
    with app.app_context():
        connection = get_redis()
    # The app is built once here; each task's work horse is a fork that reuses it.
    RunWorker(queues, connection=connection, app=app).work(
        with_scheduler=False, logging_level="INFO"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
