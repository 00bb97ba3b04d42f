"""Every kind of delivery the outbox knows: importing this module registers them all.

A kind's module calls `outbox.register(Kind(...))` when imported; add its import below.
"""

from __future__ import annotations

from . import webhooks  # noqa: F401  signed webhook POSTs (Settings → Webhooks, job URLs)
from . import alerts  # noqa: F401  job alerts and digests to channels, through Apprise
from . import bucket  # noqa: F401  result files pushed to the project's own bucket
