"""Start the scheduler: rq-scheduler's loop plus the reconcile and reaper passes."""

from __future__ import annotations

import logging

from webapp import create_app
from webapp.queueing import get_redis
from webapp.scheduling import JobScheduler, reconcile


def main() -> None:
    app = create_app()
    with app.app_context():
        connection = get_redis()
        # Rebuild every due entry before the first tick: Redis may be new or flushed.
        reconcile(connection)
    scheduler = JobScheduler(app, connection=connection)
    logging.getLogger("bytestack.scheduler").info(
        "scheduler started, polling every %.2f s", app.config["SCHEDULER_INTERVAL"]
    )
    scheduler.run()


if __name__ == "__main__":
    main()
