"""Validating a dict through a model, and the one formatter of refusals.

Healthchecks' `format_first_error` is the model: pydantic reports each error with a type
and a location, and one table turns it into a sentence for a person. Here each field
carries its own sentences (`Messages`, next to its rules), and every error keeps its
field, so a form shows each message beside its control and the API names the field.
"""

from __future__ import annotations

from typing import Any, TypeVar, get_args

import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from ..errors import ValidationError

__all__ = [
    "Messages",
    "field_errors",
    "invalid",
    "refuse_unstorable_text",
    "storable",
    "validate",
]

Model = TypeVar("Model", bound=pydantic.BaseModel)

_STANDARD = {
    "missing": "{field} is required.",
    "extra_forbidden": "{field} is not a writable field.",
}
_UNSTORABLE = "Text cannot contain NUL characters or unpaired surrogates."


class Messages:
    """What a person reads when a field is refused, kept beside the field's rules (as
    Annotated metadata, which pydantic ignores): `default` for any refusal, or one per
    pydantic error type (`string_too_long=…`). Templates may use {field}, {input},
    {length} (of the input) and the error's context."""

    def __init__(self, default: str, **by_type: str):
        self.default = default
        self.by_type = by_type

    def format(self, field: str, error: dict) -> str:
        value = error.get("input")
        return self.by_type.get(error["type"], self.default).format(
            **error.get("ctx", {}),
            field=field,
            input=value,
            length=len(value) if isinstance(value, str | list) else 0,
        )


def invalid(message: str) -> PydanticCustomError:
    """A refusal whose message is final: raised by the rules the models call
    (schedules, sources, date ranges), whose own errors already explain themselves."""
    return PydanticCustomError("invalid", "{message}", {"message": message})


def validate(model: type[Model], data: dict, refuse_unstorable: bool = True) -> Model:
    """`data` as an instance of `model`; ValidationError naming each refused field. Text a
    database cannot store is refused first, unless `refuse_unstorable` is False (a query
    string's values are ids and choices: one with NUL simply matches nothing)."""
    if refuse_unstorable:
        refuse_unstorable_text(data)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError(field_errors(model, exc)) from None


def field_errors(model: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> dict:
    """Each refused top-level field with the first message about it, in the model's order
    (None for an error of the whole body)."""
    errors: dict[str | None, str] = {}
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else None
        if field not in errors:
            errors[field] = _message(model, field, error)
    return errors


def _message(model: type[pydantic.BaseModel], field: str | None, error: dict) -> str:
    if error["type"] == "invalid":
        return error["ctx"]["message"]
    if error["type"] in _STANDARD:
        return _STANDARD[error["type"]].format(field=field)
    info = model.model_fields.get(field) if field else None
    messages = _messages_of(info) if info else None
    if messages is None:  # pydantic's own sentence, for a rule nobody worded
        return f"{field}: {error['msg']}." if field else f"{error['msg']}."
    return messages.format(field, error)


def _messages_of(info: FieldInfo) -> Messages | None:
    """The Messages of a field, on the field itself or inside its type (`Url | None`)."""
    pending: list[Any] = [*info.metadata, info.annotation]
    while pending:
        item = pending.pop(0)
        if isinstance(item, Messages):
            return item
        pending.extend(get_args(item))
    return None


def storable(text: str) -> bool:
    """Text a database can keep: no NUL (PostgreSQL refuses it) and no lone surrogate
    ("\\ud800" is valid JSON but not Unicode that UTF-8 can encode)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def refuse_unstorable_text(data: dict) -> None:
    """ValidationError naming the top-level field whose value (or key) holds unstorable
    text, before any rule looks at it."""
    for name, value in data.items():
        bad = not isinstance(name, str) or not storable(name)
        stack = [value]
        while stack and not bad:  # iterative: the body may nest almost as deep as the parser
            item = stack.pop()
            if isinstance(item, str):
                bad = not storable(item)
            elif isinstance(item, dict):
                bad = not all(isinstance(key, str) and storable(key) for key in item)
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        if bad:
            if isinstance(name, str) and storable(name):
                raise ValidationError({name: f"{name}: {_UNSTORABLE}"})
            raise ValidationError({None: _UNSTORABLE})
