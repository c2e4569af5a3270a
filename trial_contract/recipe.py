"""The training recipe, and the tunable parameters a search space may add to the roles.

A study's ``training`` section fixes the recipe for every trial; a search-space parameter named
after a tunable overrides that value per trial. The trainer applies every field (batch size in the
input pipeline, dropout in the classification block, momentum and weight decay in the optimizer,
label smoothing in the loss, flips and geometric jitter in augmentation, the learning-rate schedule
in every step), so no dimension the GP searches is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import Field

from .base import Strict
from .limits import MAX_BATCH_SIZE


class Augmentation(Strict):
    """Random changes of every training image, per epoch; validation and test images never change.

    The flips are the seed's. The geometric jitter is off by default (the thesis has none): shifts,
    rotations and zooms suit images whose class does not depend on a few pixels of position or a
    small tilt (endoscopy frames, digits, clothes), and let a small training set go further.
    """

    horizontal_flip: bool = True
    vertical_flip: bool = True
    translate: float = Field(0.0, ge=0.0, le=0.5)   # largest shift, as a fraction of the image side
    rotate: float = Field(0.0, ge=0.0, le=180.0)    # largest rotation, in degrees either way
    zoom: float = Field(0.0, ge=0.0, le=0.5)        # largest zoom in or out, as a fraction


AUGMENTATION_OFF = {"horizontal_flip": False, "vertical_flip": False, "translate": 0.0, "rotate": 0.0, "zoom": 0.0}
LrSchedule = Literal["constant", "cosine"]
LR_SCHEDULES: tuple[str, ...] = get_args(LrSchedule)


class Recipe(Strict):
    """How every epoch of a trial trains, besides the optimizer and learning rate of its steps."""

    batch_size: int = Field(16, ge=1, le=MAX_BATCH_SIZE)
    head_dropout: float = Field(0.0, ge=0.0, le=0.9)      # Dropout rate before the softmax layer
    momentum: float = Field(0.0, ge=0.0, le=0.999)        # SGD and RMSprop; the others have their betas
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)      # decoupled, every optimizer (0: none)
    label_smoothing: float = Field(0.0, ge=0.0, le=0.9)   # of the cross-entropy targets
    augmentation: Augmentation = Augmentation()
    # Per step: "constant" keeps the step's learning rate (the thesis); "cosine" decays it every
    # epoch from the step's rate towards 0 at its last epoch (Loshchilov & Hutter's SGDR, one cycle)
    lr_schedule: LrSchedule = "constant"

    @property
    def horizontal_flip(self) -> bool:
        return self.augmentation.horizontal_flip

    @property
    def vertical_flip(self) -> bool:
        return self.augmentation.vertical_flip


@dataclass(frozen=True)
class Tunable:
    """A search-space parameter beyond the roles: the types it may have and its bounds."""

    name: str
    types: tuple[str, ...]          # "float", "int", "categorical"
    low: float | None = None        # smallest value allowed for the parameter's low
    high: float | None = None       # largest value allowed for the parameter's high
    values: tuple[str, ...] = ()    # allowed values of a categorical
    meaning: str = ""

    def apply(self, recipe: dict[str, Any], value: Any) -> None:
        """Writes a proposed ``value`` into a recipe mapping (``Recipe`` fields)."""
        if self.name == "augmentation":
            recipe["augmentation"] = dict(AUGMENTATION_OFF) if value == "off" else dict(recipe["augmentation"])
        elif self.name == "lr_schedule":
            recipe["lr_schedule"] = str(value)
        elif self.name == "batch_size":
            recipe["batch_size"] = int(value)
        else:
            recipe[self.name] = float(value)


def _bounds(name: str) -> tuple[float, float]:
    info = Recipe.model_fields[name]
    low = next(m.ge for m in info.metadata if getattr(m, "ge", None) is not None)
    high = next(m.le for m in info.metadata if getattr(m, "le", None) is not None)
    return low, high


TUNABLES: dict[str, Tunable] = {t.name: t for t in (
    Tunable("batch_size", ("int",), *_bounds("batch_size"), meaning="images per training batch"),
    Tunable("head_dropout", ("float",), *_bounds("head_dropout"),
            meaning="dropout rate between the pooled features and the softmax layer"),
    Tunable("momentum", ("float",), *_bounds("momentum"),
            meaning="momentum of SGD and RMSprop (other optimizers ignore it)"),
    Tunable("weight_decay", ("float",), *_bounds("weight_decay"),
            meaning="decoupled weight decay of the optimizer"),
    Tunable("label_smoothing", ("float",), *_bounds("label_smoothing"),
            meaning="label smoothing of the cross-entropy loss"),
    Tunable("augmentation", ("categorical",), values=("on", "off"),
            meaning="'on': the training section's augmentation; 'off': none (no flips, no jitter)"),
    Tunable("lr_schedule", ("categorical",), values=LR_SCHEDULES,
            meaning="'constant': each step's learning rate throughout; 'cosine': decayed towards 0 over the step"),
)}
