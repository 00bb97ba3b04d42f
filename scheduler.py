"""Start the scheduler: rq-scheduler's loop firing job slots, plus reconcile and the reaper."""

from __future__ import annotations

from webapp import create_app_or_exit
from webapp.queueing import connect
from webapp.scheduling import JobScheduler


def main() -> None:
    # Production unless BYTESTACK_ENV says otherwise: this is what a platform runs.
    app = create_app_or_exit(default_env="production")
    if not app.config["REDIS_URL"]:
        raise SystemExit("REDIS_URL is not set: start the app with `make run` or set it.")
    # A longer socket timeout than the web's: a frozen Redis makes a tick wait, then retry.
    connection = connect(app.config["REDIS_URL"], timeout=10)
    # The first tick rebuilds every due entry from the database: Redis may be new or flushed.
    JobScheduler(app, connection=connection).run()


if __name__ == "__main__":
    main()
