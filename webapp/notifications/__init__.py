"""What happens after a run: webhooks, channel alerts and digests, bucket pushes.

Every delivery goes through one outbox (`outbox.py`): a run's end plans its deliveries once,
each is a row with its own attempt count and next attempt, sent on the `notifications` queue
by workers of its own, retried with backoff, and never sent twice for one attempt.
"""
