"""Service errors: raised by the one service layer, rendered by the form, the API and the CLI."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(ServiceError):
    """One or more invalid fields; `errors` maps each field to its message."""

    status = 422
    code = "invalid_field"

    def __init__(self, errors: dict[str, str]):
        field, message = next(iter(errors.items()))
        super().__init__(message, field)
        self.errors = errors


class ConflictError(ServiceError):
    status = 409
    code = "conflict"


class NotFoundError(ServiceError):
    status = 404
    code = "not_found"
