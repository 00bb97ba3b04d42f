"""The API's one error shape, for every failure under /v1."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import ServiceError
from ..schemas import Error, ErrorDetail, json_of
from . import bp

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, code: str | None = None, field: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.code = code or CODES.get(status, "error")


def error_response(status: int, message: str, code: str | None = None, field: str | None = None):
    at_fault = {"field": field} if field else {}
    detail = ErrorDetail(code=code or CODES.get(status, "error"), message=message, **at_fault)
    response = jsonify(json_of(Error(error=detail)))
    response.status_code = status
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return error_response(exc.status, exc.message, exc.code, exc.field)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    return error_response(exc.status, exc.message, exc.code, exc.field)


def is_api_request() -> bool:
    return request.path == "/v1" or request.path.startswith("/v1/")


def http_error_as_json(exc: HTTPException):
    messages = {
        404: "There is nothing at this path.",
        405: f"{request.method} is not allowed on this path.",
        413: "The request body is too large.",
        429: "Too many requests: slow down and retry after the time in Retry-After.",
    }
    message = messages.get(exc.code or 500, exc.description or "Request failed.")
    response = error_response(exc.code or 500, message)
    # The exception's own headers, e.g. the Allow a 405 must carry; the body is ours.
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response
