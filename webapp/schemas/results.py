"""Where results go besides the API: a project's own bucket, and a job's Atom feed."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from .fields import Timestamp, _web_url
from .limits import (
    BUCKET_ACCESS_KEY_MAX,
    BUCKET_PREFIX_MAX,
    BUCKET_REGION_MAX,
    BUCKET_SECRET_MAX,
    URL_MAX,
)
from .requests import Body, Params
from .responses import Out
from .validation import Messages, invalid

__all__ = ["BucketConnect", "FeedParams", "StorageBucket"]

# S3's rules for a bucket name (3-63 lowercase letters, digits, dots and hyphens, starting and
# ending with a letter or digit), with the underscore some S3-compatible servers allow.
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _stripped_or_none(value: Any) -> Any:
    """Trimmed text; an emptied form field counts as not given."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _bucket_name(name: str) -> str:
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise invalid(
            "A bucket name has 3 to 63 lowercase letters, digits, dots or hyphens, and starts "
            "and ends with a letter or digit."
        )
    return name


def _region(region: str) -> str:
    if not _REGION.fullmatch(region):
        raise invalid("A region is letters, digits and hyphens, like eu-central-1.")
    return region


def _prefix(prefix: str) -> str:
    """A folder in the bucket: no leading slash, one trailing slash (none when empty)."""
    if _CONTROL.search(prefix):
        raise invalid("A prefix cannot contain control characters.")
    prefix = prefix.strip().lstrip("/")
    if any(part in (".", "..") for part in prefix.split("/")):
        raise invalid("A prefix cannot contain . or .. as a folder name.")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def _key_text(text: str) -> str:
    if _CONTROL.search(text) or " " in text:
        raise invalid("Keys cannot contain spaces or control characters.")
    return text


Endpoint = Annotated[
    str,
    Field(strict=True, max_length=URL_MAX),
    AfterValidator(_web_url),
    Messages(
        "The endpoint is an http(s) URL, like https://s3.eu-central-1.amazonaws.com.",
        string_too_long=f"An endpoint can be at most {URL_MAX} characters.",
    ),
]
Region = Annotated[
    str,
    Field(strict=True, max_length=BUCKET_REGION_MAX),
    AfterValidator(_region),
    Messages(f"A region is at most {BUCKET_REGION_MAX} letters, digits and hyphens."),
]


class BucketConnect(Body):
    """An S3-compatible bucket to push each completed run's result JSON to. Saved only after a
    test write (a small object written and deleted under the prefix) succeeds."""

    endpoint: Annotated[
        Endpoint | None,
        BeforeValidator(_stripped_or_none),
        Field(
            description="The S3 API's base URL (https://…), for any S3-compatible service; "
            "leave out for Amazon S3.",
            json_schema_extra={"example": "https://s3.eu-central-1.amazonaws.com"},
        ),
    ] = None
    region: Annotated[
        Region | None,
        BeforeValidator(_stripped_or_none),
        Field(description="The bucket's region (default us-east-1)."),
    ] = None
    bucket: Annotated[
        str,
        BeforeValidator(_stripped),
        Field(strict=True, min_length=1, max_length=63, description="The bucket's name."),
        AfterValidator(_bucket_name),
        Messages("Enter the bucket's name (3 to 63 lowercase letters, digits, dots or hyphens)."),
    ]
    prefix: Annotated[
        str,
        BeforeValidator(lambda value: "" if value is None else value),
        Field(
            strict=True,
            max_length=BUCKET_PREFIX_MAX,
            description="A folder inside the bucket, e.g. `bytestack/` (a trailing / is "
            "added). Objects are written at `<prefix><storage key>`.",
        ),
        AfterValidator(_prefix),
        Messages(f"A prefix can be at most {BUCKET_PREFIX_MAX} characters."),
    ] = ""
    access_key: Annotated[
        str,
        BeforeValidator(_stripped),
        Field(strict=True, min_length=1, max_length=BUCKET_ACCESS_KEY_MAX),
        AfterValidator(_key_text),
        Messages("Enter the access key id."),
    ]
    secret_key: Annotated[
        str,
        BeforeValidator(_stripped),
        Field(
            strict=True,
            min_length=1,
            max_length=BUCKET_SECRET_MAX,
            description="Stored encrypted; never shown again.",
        ),
        AfterValidator(_key_text),
        Messages("Enter the secret access key."),
    ]


class StorageBucket(Out):
    """The project's bucket; never its secret key."""

    endpoint: str | None = Field(description="null: Amazon S3.")
    region: str | None
    bucket: str
    prefix: str
    access_key: str
    connected_at: Timestamp
    last_push_at: Timestamp | None = Field(description="When a run's results last landed.")
    last_push_key: str | None = Field(description="The object key of that push.")
    last_error: str | None = Field(description="Why the last failed push failed.")
    last_error_at: Timestamp | None


class FeedParams(Params):
    token: Annotated[
        str | None,
        Field(
            description="The job's private feed token (from the job's page), for feed readers "
            "that cannot send an API key; a wrong one answers 404."
        ),
    ] = None
