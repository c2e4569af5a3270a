"""Every bound of the contract, in one place: what a study may ask for and a trainer will run.

The upper bounds are far above any real study and only keep absurd numbers (``10**12`` epochs,
``2**70`` trials) from reaching SQLite, the GP or a trainer.
"""
from __future__ import annotations

MAX_SPEC_BYTES = 256 * 1024       # a spec or task as JSON text
MAX_DEPTH = 12                    # nesting of mappings and lists (the deepest real spec needs 4)
MAX_NAME = 200                    # study names, split names, parameter names
MAX_URI = 2048
MAX_EPOCHS = 1000                 # per training step
MAX_TRIALS_PER_PHASE = 10_000
MAX_INITIAL_POINTS = 1000
MAX_PARALLEL_TRIALS = 256
MAX_ATTEMPTS = 100
MAX_FAILED_TRIALS = 10_000
MAX_BATCH_SIZE = 4096
MAX_IMAGE_SIZE = 1024             # pixels per side of the model input
MAX_LEARNING_RATE = 10.0
MAX_CATEGORICAL_VALUES = 100
MAX_SEARCH_PARAMETERS = 16
MAX_BACKBONE_OPTIONS = 32
MAX_LEASE_SECONDS = 86_400
MAX_SEED = 2**32 - 1


def depth(value: object, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests mappings and lists, counting up to ``limit + 1`` (iterative, so a
    hostile document cannot exhaust the stack)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            stack.extend((child, level) for child in (node.values() if isinstance(node, dict) else node))
    return deepest
