"""Every bound an input is held to, once: the models use these, and the OpenAPI document,
the forms' maxlength/min/max attributes and the error messages all read them from here."""

PROMPT_MAX = 2000
JOB_NAME_MAX = 200  # the jobs.name column
KEY_NAME_MAX = 100  # the api_keys.name column
# Records a run or a query keeps: the newest first, across all its sources.
LIMIT_MIN, LIMIT_MAX, LIMIT_DEFAULT = 1, 1000, 100
SOURCES_MAX = 50
CRON_MAX = 200  # the jobs.schedule_value column
URL_MAX = 2000  # the jobs.webhook_url and webhooks.url columns
PREVIEW_COUNT_MAX, PREVIEW_COUNT_DEFAULT = 50, 5
# Pages of the API's lists; a run's records come in larger pages.
PAGE_MAX, PAGE_DEFAULT = 200, 50
RECORDS_PAGE_MAX, RECORDS_PAGE_DEFAULT = 1000, 100
# A full-text search over stored records: its characters, and its words (each is one more
# term for the index to intersect).
SEARCH_MAX, SEARCH_WORDS_MAX = 500, 32
# Alert channels (the channels.name column) and a job's alert rules.
CHANNEL_NAME_MAX = 100
ALERT_CHANNELS_MAX = 20
AFTER_FAILURES_MAX = 100
# A project's bucket: the buckets table's columns.
BUCKET_REGION_MAX, BUCKET_PREFIX_MAX, BUCKET_ACCESS_KEY_MAX = 64, 500, 255
BUCKET_SECRET_MAX = 1000
# A project's retention policy: runs older than this many days, and a job's runs beyond its
# newest this many, are pruned (ten years, and more runs than a page of history shows).
RETENTION_DAYS_MAX = 3650
RETENTION_RUNS_MAX = 100_000
