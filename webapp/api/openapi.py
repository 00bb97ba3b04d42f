"""The OpenAPI 3 document at GET /v1/openapi.json, generated.

Operations come from the route table: every Flask rule under /v1, its method and path
parameters, its view's docstring (the summary), the scope its `require` asks for, and the
`documented` record on the view (its replies, body model and query-string model). Schemas
are webapp.schemas' models, through pydantic's JSON Schema, spelt as OpenAPI 3.0 wants.
A /v1 route without a record is an error, so the document cannot fall behind the server.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from flask import Flask, current_app, jsonify, request
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from .. import schemas
from ..schemas import validate
from . import bp
from .errors import CODES

OPENAPI_VERSION = "3.0.3"
API_VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
TAGS = (
    "jobs",
    "runs",
    "queries",
    "storage",
    "schedules",
    "sources",
    "webhooks",
    "channels",
    "api-keys",
    "project",
    "meta",
)
PATH_PARAMETERS = {
    "job_id": "A job id (`job_…`).",
    "run_id": "A run id (`run_…`).",
    "query_id": "A query id (`qry_…`).",
    "key": "A result file key, `run_…_2026-04-30T08-00-00Z.json`.",
    "webhook_id": "A webhook id.",
    "key_id": "An API key id.",
    "channel_id": "A channel id (`chn_…`).",
}
# The error answers each operation may give, with the codes besides CODES[status].
ERRORS = {
    400: (
        (
            "The body is not a JSON object (`malformed_json`), or a cursor is not one the "
            "server gave out (`bad_request`, field `cursor`)."
        ),
        ("malformed_json",),
    ),
    401: ("No API key, or an unknown or revoked one.", ()),
    403: ("The key's scope is too low for this operation.", ()),
    404: (
        (
            "Nothing with this id in the key's project (another project's resource is 404 "
            "too, never 403)."
        ),
        (),
    ),
    409: ("The resource is in a state that does not allow this now.", ()),
    413: ("The request body is larger than the server accepts.", ()),
    422: ("A field is invalid; `field` names it.", ()),
    429: ("Rate limited: retry after the number of seconds in `Retry-After`.", ()),
}
# Components no operation names, kept for clients generated from earlier documents.
EXTRA_SCHEMAS = (schemas.ExportRecord,)


@dataclass(frozen=True)
class Reply:
    """One success answer: `schema` is a response model, `list[model]`, `dict` (any JSON
    object) or None (no body); `media` adds other media types (`str`: text)."""

    description: str
    schema: Any = None
    media: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    tag: str
    replies: dict[int, Reply]
    body: type[BaseModel] | None = None
    params: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()  # besides those the route's shape implies


NO_CONTENT = {204: Reply("Deleted.")}


def documented(
    operation_id: str,
    tag: str,
    replies: dict[int, Reply],
    body: type[BaseModel] | None = None,
    params: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
):
    """Record a view's operation for the document. With `params`, the query string is
    validated through that model (after authentication: place this under `require`) and
    passed to the view as `params`, so the parameters documented are the ones checked."""
    operation = Operation(operation_id, tag, replies, body, params, errors)

    def record(view):
        if params is not None:
            inner = view

            @functools.wraps(inner)
            def view(*args, **kwargs):
                # An empty parameter (`?state=`) counts as absent.
                given = {name: value for name, value in request.args.items() if value != ""}
                return inner(
                    *args, params=validate(params, given, refuse_unstorable=False), **kwargs
                )

        view.operation = operation
        return view

    return record


class OpenAPI30(GenerateJsonSchema):
    """pydantic's JSON Schema (2020-12) as OpenAPI 3.0 spells it: `nullable` instead of a
    null type, `enum` instead of `const`, `oneOf` for our unions (their members never
    overlap), no titles, and no `default: null` (absent already says it)."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def model_schema(self, schema):
        json_schema = super().model_schema(schema)
        json_schema.pop("title", None)
        return json_schema

    def nullable_schema(self, schema):
        inner = self.generate_inner(schema["schema"])
        if "$ref" in inner:
            return {"allOf": [inner], "nullable": True}
        if "enum" in inner:  # 3.0.3: an enum allows null only when it lists it
            inner = {**inner, "enum": [*inner["enum"], None]}
        return {**inner, "nullable": True}

    def literal_schema(self, schema):
        json_schema = super().literal_schema(schema)
        if "const" in json_schema:
            json_schema["enum"] = [json_schema.pop("const")]
        return json_schema

    def union_schema(self, schema):
        json_schema = super().union_schema(schema)
        if "anyOf" in json_schema:
            json_schema["oneOf"] = json_schema.pop("anyOf")
        return json_schema

    def default_schema(self, schema):
        json_schema = super().default_schema(schema)
        if json_schema.get("default", ...) is None:
            del json_schema["default"]
        return json_schema


def _openapi30(schema: Any) -> Any:
    """A `$ref` with siblings (a description, `nullable`) wrapped in allOf, as 3.0 ignores
    them otherwise; applied to every subschema (not to property names)."""
    if not isinstance(schema, dict):
        return schema
    schema = dict(schema)
    if "$ref" in schema and len(schema) > 1:
        schema["allOf"] = [{"$ref": schema.pop("$ref")}, *schema.get("allOf", [])]
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            schema[key] = _openapi30(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_openapi30(item) for item in schema[key]]
    if "properties" in schema:
        schema["properties"] = {
            name: _openapi30(item) for name, item in schema["properties"].items()
        }
    return schema


def _ref(model: type[BaseModel]) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _reply_schema(schema: Any) -> dict:
    if schema is dict:
        return {"type": "object"}
    if schema is str:
        return {"type": "string"}
    if get_origin(schema) is list:
        return {"type": "array", "items": _ref(get_args(schema)[0])}
    return _ref(schema)


def _reply_models(schema: Any) -> list[type[BaseModel]]:
    if get_origin(schema) is list:
        schema = get_args(schema)[0]
    return [schema] if isinstance(schema, type) and issubclass(schema, BaseModel) else []


def _components(operations: list[Operation]) -> dict:
    wanted: dict[tuple[type[BaseModel], str], None] = {}
    for operation in operations:
        if operation.body is not None:
            wanted[(operation.body, "validation")] = None
        for reply in operation.replies.values():
            for schema in (reply.schema, *reply.media.values()):
                for model in _reply_models(schema):
                    wanted[(model, "serialization")] = None
    for model in (schemas.Error, *EXTRA_SCHEMAS):
        wanted[(model, "serialization")] = None
    _, definitions = models_json_schema(list(wanted), ref_template=REF, schema_generator=OpenAPI30)
    found = definitions["$defs"]
    names = {model.__name__ for model, _ in wanted}
    assert names <= set(found), f"a model's schema differs between modes: {names - set(found)}"
    return {name: _openapi30(schema) for name, schema in sorted(found.items())}


def _parameters(rule, operation: Operation) -> list[dict]:
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": PATH_PARAMETERS[name],
        }
        for name in re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule.rule)
    ]
    if operation.params is not None:
        model = operation.params.model_json_schema(
            ref_template=REF, schema_generator=OpenAPI30, mode="validation"
        )
        for name, schema in model["properties"].items():
            schema = _openapi30(schema)
            if schema.pop("nullable", False) and "enum" in schema:  # a query string has no null
                schema["enum"] = [value for value in schema["enum"] if value is not None]
            parameter = {"name": name, "in": "query", "required": name in model.get("required", ())}
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameters.append({**parameter, "schema": schema})
    return parameters


def _statuses(rule, operation: Operation, scope: str | None) -> set[int]:
    """The error answers: 429 always; 401 with a key, 403 above the lowest scope; 400, 413
    and 422 with a body; 404 on a path with an id; 400 with a cursor, 422 with parameters."""
    statuses = {429, *operation.errors}
    if scope is not None:
        statuses.add(401)
        if scope != "read":
            statuses.add(403)
    if operation.body is not None:
        statuses |= {400, 413, 422}
    if rule.arguments:
        statuses.add(404)
    if operation.params is not None:
        statuses.add(422)
        if "cursor" in operation.params.model_fields:
            statuses.add(400)
    return statuses


def _operation(rule, view, operation: Operation) -> dict:
    scope = getattr(view, "required_scope", None)
    responses: dict[str, Any] = {}
    for status, reply in sorted(operation.replies.items()):
        response: dict[str, Any] = {"description": reply.description}
        content = {}
        if reply.schema is not None:
            content["application/json"] = {"schema": _reply_schema(reply.schema)}
        content |= {media: {"schema": _reply_schema(s)} for media, s in reply.media.items()}
        if reply.headers:
            response["headers"] = reply.headers
        if content:
            response["content"] = content
        responses[str(status)] = response
    for status in sorted(_statuses(rule, operation, scope)):
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    result: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": (view.__doc__ or "").strip().splitlines()[0],
        "tags": [operation.tag],
        "responses": responses,
    }
    if scope is None:
        result["security"] = []
    else:
        result["description"] = f"Needs a key with scope `{scope}` or higher."
    parameters = _parameters(rule, operation)
    if parameters:
        result["parameters"] = parameters
    if operation.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(operation.body)}},
        }
    return result


def _error_responses() -> dict:
    responses = {}
    for status, (description, more_codes) in ERRORS.items():
        codes = [CODES[status], *more_codes]
        response: dict[str, Any] = {
            "description": description,
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            _ref(schemas.Error),
                            {
                                "type": "object",
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "properties": {"code": {"type": "string", "enum": codes}},
                                    }
                                },
                            },
                        ]
                    }
                }
            },
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying.",
                    "schema": {"type": "integer"},
                }
            }
        responses[f"Error{status}"] = response
    return responses


def build_document(app: Flask) -> dict:
    """The whole document for `app`'s routes under /v1, as JSON-ready data."""
    paths: dict[str, dict] = {}
    operations = []
    for rule in app.url_map.iter_rules():
        if rule.rule != "/v1" and not rule.rule.startswith("/v1/"):
            continue
        view = app.view_functions[rule.endpoint]
        operation = getattr(view, "operation", None)
        if operation is None:
            raise LookupError(f"{rule.rule} ({rule.endpoint}) has no @documented operation")
        assert operation.tag in TAGS, operation.tag
        operations.append(operation)
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, view, operation)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ByteStack Jobs API",
            "version": API_VERSION,
            "description": "Scheduled queries over many sources. JSON in and out; timestamps "
            'are ISO 8601 in UTC with `Z`. Every error is `{"error": {"code", "message", '
            '"field"?}}`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in TAGS],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`Authorization: Bearer <api key>`; a key has one scope: "
                    "read, write or admin.",
                }
            },
            "schemas": _components(operations),
            "responses": _error_responses(),
        },
    }


@bp.get("/openapi.json")
@documented("getOpenAPI", "meta", {200: Reply("The OpenAPI document.", dict)})
def openapi_json():
    """This API's OpenAPI 3 document (no key needed)."""
    app = current_app._get_current_object()
    # Built once per app: the routes do not change while it serves.
    if "bytestack_openapi" not in app.extensions:
        app.extensions["bytestack_openapi"] = build_document(app)
    return jsonify(app.extensions["bytestack_openapi"])
