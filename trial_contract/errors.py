"""The one error of the contract: a value that breaks it, with the dotted path of its field."""
from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.*)$", re.S)
_MESSAGES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
    "extra_forbidden": "unknown field",
    "missing": "required",
}

_BOUNDS = {  # error type -> (context key, message template)
    "less_than_equal": ("le", "must be at most {}"), "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be greater than {}"), "less_than": ("lt", "must be below {}"),
    "too_short": ("min_length", "must have at least {} entries"),
    "too_long": ("max_length", "must have at most {} entries"),
    "string_too_short": ("min_length", "must have at least {} characters"),
    "string_too_long": ("max_length", "must have at most {} characters"),
    "string_pattern_mismatch": ("pattern", "must match {}"),
}


class ContractError(ValueError):
    """A spec or task that breaks the contract. ``field`` is the dotted path of the offending
    field (``steps[1].learning_rate``), ``message`` says what is wrong and, where one exists,
    how to fix it. ``str()`` is ``"field: message"``."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def path(loc: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    """``("steps", 1, "learning_rate")`` -> ``steps[1].learning_rate``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def from_validation_error(exc: ValidationError, prefix: str = "", root: str = "spec") -> ContractError:
    """The first error of a pydantic validation as a :class:`ContractError` (the others are counted).

    Validators in this package raise ``ValueError("sub.field: message")`` when the offending
    field is below the one being validated; that sub-path is appended to the error's location.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    message = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    field = path(loc, prefix)
    m = _FIELD_PREFIX.match(message) if first["type"] == "value_error" else None
    if m:
        field = path([m.group(1)], field) if field else m.group(1)
        message = m.group(2)
    elif first["type"] == "value_error":
        pass
    elif first["type"] in _BOUNDS:
        ctx = first.get("ctx", {})
        key, template = _BOUNDS[first["type"]]
        message = f"{template.format(ctx.get(key))}, got {_short(first.get('input'))}"
    elif first["type"] == "literal_error":
        message = f"must be {first.get('ctx', {}).get('expected')}, got {_short(first.get('input'))}"
    elif first["type"] in _MESSAGES:
        message = _MESSAGES[first["type"]]
        if first["type"] == "extra_forbidden":
            message = "unknown field"
        elif first["type"] != "missing":
            message += f", got {_short(first.get('input'))}"
    else:
        message = f"{message[:1].lower()}{message[1:]}, got {_short(first.get('input'))}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ContractError(field or root, message)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
