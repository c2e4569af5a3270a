"""The pydantic base of every contract model: strict types, no unknown fields, finite numbers."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """``"16"`` is not 16, ``true`` is not 1, NaN is not a number, and a misspelled key is an error."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)



class Positional:
    """Lets a model be built with positional arguments in field order, like the dataclasses the
    trainer used before the contract (``StepSpec("head", "Adam", 0.001, 2)``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        fields = list(type(self).model_fields)  # type: ignore[attr-defined]
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} positional arguments")
        super().__init__(**dict(zip(fields, args)), **kwargs)  # type: ignore[call-arg]


# The contract's version: specs and tasks carry it; a trainer refuses a task newer than it knows.
VERSION = 1
