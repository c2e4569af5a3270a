"""Deterministic, stratified (optionally grouped) train/validation/test splits.

Items are grouped (each item alone when no grouping is asked for), groups are put in a seeded
order per class, and each group goes to the split that is furthest below its target share of that
class. Ordering by ``sha256(seed, group)`` instead of a PRNG shuffle keeps splits identical across
Python and NumPy versions, so re-uploading a folder years later reproduces the same split.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence

from datastore.manifest import SPLIT_NAMES

_TOLERANCE = 1e-6


def parse_split(spec: str | Sequence[float]) -> dict[str, float]:
    """``"0.7,0.15,0.15"`` or ``(0.7, 0.3)`` -> ``{"train": .7, "validation": .3, ...}``.

    Two fractions give train/validation (the seed thesis's 70/30), three add a held-out test split.
    Raises ValueError saying what is wrong.
    """
    if isinstance(spec, str):
        try:
            values = [float(part) for part in spec.split(",")]
        except ValueError as exc:
            raise ValueError(f"split {spec!r} must be 2 or 3 comma-separated fractions, "
                             "e.g. 0.7,0.15,0.15") from exc
    else:
        values = [float(v) for v in spec]
    if len(values) not in (2, 3):
        raise ValueError(f"split needs 2 (train, validation) or 3 (train, validation, test) "
                         f"fractions, got {len(values)}")
    if any(not 0 < v < 1 for v in values):
        raise ValueError(f"split fractions must each be between 0 and 1 (exclusive), got {values}")
    if abs(sum(values) - 1) > _TOLERANCE:
        raise ValueError(f"split fractions must sum to 1, got {sum(values):g}")
    return dict(zip(SPLIT_NAMES, values))


def _order_key(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}\0{group}".encode()).hexdigest()


def assign_splits(labels: Sequence[str], fractions: dict[str, float], seed: int,
                  groups: Sequence[str] | None = None) -> list[str]:
    """The split of each item, given its label and (optionally) its group.

    Stratified: each class is split by ``fractions`` on its own. Grouped: all items of a group land
    in one split; a group spanning classes is placed with its most common class. With fewer groups
    of a class than splits, some split gets none of that class (unavoidable when keeping groups).
    """
    if groups is not None and len(groups) != len(labels):
        raise ValueError("groups and labels must have the same length")
    group_of = list(groups) if groups is not None else [f"#item{i}" for i in range(len(labels))]
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(group_of):
        members[group].append(index)
    by_class: dict[str, list[str]] = defaultdict(list)
    for group, indices in members.items():
        label_counts = Counter(labels[i] for i in indices)
        # Most common label; ties broken by name so the result does not depend on input order.
        top = min(label_counts, key=lambda lab: (-label_counts[lab], lab))
        by_class[top].append(group)

    assignment: dict[str, str] = {}
    names = list(fractions)
    for label in sorted(by_class):
        class_groups = sorted(by_class[label], key=lambda g: _order_key(seed, g))
        total = sum(len(members[g]) for g in class_groups)
        target = {name: fractions[name] * total for name in names}
        filled = {name: 0 for name in names}
        for group in class_groups:
            # Furthest below target, relative to the target: small splits get their first member
            # early, so validation/test are never empty when there are enough groups.
            best = max(names, key=lambda n: ((target[n] - filled[n]) / target[n], -names.index(n)))
            assignment[group] = best
            filled[best] += len(members[group])
    return [assignment[group] for group in group_of]
