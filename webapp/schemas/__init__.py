"""The contract of every input and output (API.md), as pydantic models that own each rule
and limit once.

Pure: no Flask, no database session. Services validate the dicts they are given (API
bodies, the dashboard's form data, CLI values) with `validate`, which raises
webapp.errors.ValidationError naming each refused field; the API answers through the
response models; /v1/openapi.json is generated from both.
"""

from __future__ import annotations

from .limits import *
from .requests import *
from .responses import *
from .results import *
from .retention import *
from .validation import *
