"""What a proposed tunable does to the recipe a trainer receives."""
from __future__ import annotations

from trial_contract import TUNABLES, Recipe


def _recipe(**changes) -> dict:
    recipe = Recipe(augmentation={"translate": 0.1, "rotate": 15.0, "zoom": 0.1}).model_dump()
    return {**recipe, **changes}


def test_augmentation_off_turns_off_flips_and_jitter_and_on_keeps_the_training_section() -> None:
    recipe = _recipe()
    TUNABLES["augmentation"].apply(recipe, "off")
    assert Recipe(**recipe).augmentation.model_dump() == {
        "horizontal_flip": False, "vertical_flip": False, "translate": 0.0, "rotate": 0.0, "zoom": 0.0}
    recipe = _recipe()
    TUNABLES["augmentation"].apply(recipe, "on")
    assert Recipe(**recipe).augmentation.rotate == 15.0 and Recipe(**recipe).augmentation.horizontal_flip


def test_a_proposed_schedule_reaches_the_recipe() -> None:
    assert Recipe().lr_schedule == "constant"  # the thesis's
    recipe = _recipe()
    TUNABLES["lr_schedule"].apply(recipe, "cosine")
    assert Recipe(**recipe).lr_schedule == "cosine"
    assert TUNABLES["lr_schedule"].values == ("constant", "cosine")
