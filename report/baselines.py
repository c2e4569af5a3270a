"""Published baselines beside the best model: the dataset papers' methods as the thesis quotes them.

Average metrics over all classes, columns F1, ACC, MCC, PREC, REC, SPEC, from thesis table 4.11
(Kvasir paper, Pogorelov et al. 2017) and table 4.14 (Nerthus paper, Pogorelov et al. 2017), copied
as printed there.
"""
from __future__ import annotations

import re

COLUMNS = ("f1", "accuracy", "mcc", "precision", "recall", "specificity")

_KVASIR = {
    "3 Layer CNN": (0.453, 0.959, 0.430, 0.589, 0.408, 0.890),
    "6 Layer CNN": (0.651, 0.914, 0.602, 0.661, 0.640, 0.953),
    "Inception v3 TFL": (0.693, 0.924, 0.649, 0.698, 0.689, 0.957),
    "JCD Random Forest": (0.706, 0.927, 0.666, 0.708, 0.710, 0.958),
    "2 GF Random Forest": (0.711, 0.928, 0.672, 0.713, 0.715, 0.959),
    "2 GF Logistic Model Tree": (0.705, 0.926, 0.664, 0.706, 0.707, 0.958),
    "6 GF Random Forest": (0.727, 0.933, 0.692, 0.732, 0.732, 0.962),
    "6 GF Logistic Model Tree": (0.747, 0.937, 0.711, 0.748, 0.748, 0.964),
    "Random/Majority": (0.000, 0.016, 0.666, 0.016, 0.125, 0.000),
}
_NERTHUS = {
    "3 Layer CNN": (0.742, 0.772, 0.621, 0.811, 0.694, 0.937),
    "6 Layer CNN": (0.854, 0.854, 0.805, 0.856, 0.852, 0.952),
    "Inception v3 TFL": (0.748, 0.748, 0.665, 0.751, 0.745, 0.918),
    "JCD Random Forest": (0.790, 0.861, 0.679, 0.805, 0.794, 0.870),
    "2 GF Random Forest": (0.769, 0.847, 0.647, 0.792, 0.774, 0.849),
    "2 GF Logistic Model Tree": (0.737, 0.825, 0.594, 0.744, 0.737, 0.862),
    "6 GF Random Forest": (0.860, 0.913, 0.801, 0.885, 0.866, 0.895),
    "6 GF Logistic Model Tree": (0.899, 0.949, 0.863, 0.901, 0.901, 0.960),
    "Random/Majority": (0.322, 0.652, 0.000, 0.240, 0.489, 0.512),
}
BASELINES = {
    "kvasir": ("Kvasir paper (Pogorelov et al. 2017), as quoted in thesis table 4.11", _KVASIR),
    "nerthus": ("Nerthus paper (Pogorelov et al. 2017), as quoted in thesis table 4.14", _NERTHUS),
}


def dataset_family(name_or_uri: str) -> str | None:
    """``"kvasir"`` or ``"nerthus"`` when a path component of the name or URI names that dataset."""
    for part in re.split(r"[/:\\]+", name_or_uri.lower()):
        for family in BASELINES:
            if family in part:
                return family
    return None


def baseline_rows(family: str) -> tuple[str, list[dict[str, float | str]]]:
    """``(source, rows)``: one row per method with the ``COLUMNS`` metrics."""
    source, table = BASELINES[family]
    return source, [{"method": method, **dict(zip(COLUMNS, values))} for method, values in table.items()]
