"""The trial contract: what a study may ask for, and what a trainer receives and runs.

One typed, versioned definition (pydantic) imported by the optimizer and the trainer alike: the
backbone and optimizer registries, every bound, the metrics a trainer reports, the split names, the
meaning of every search-space parameter, the study spec (:mod:`.study`) and the trial task
(:mod:`.task`). No Keras here, so the optimizer validates without importing TensorFlow.
"""
from .base import VERSION
from .errors import ContractError
from .failures import counts_as_failure, one_line
from .metrics import EPOCH_METRICS, OBJECTIVE_METRICS, SPLIT_ROLES, head_metric
from .recipe import TUNABLES, Recipe
from .registry import BACKBONES, OPTIMIZERS, SEED_BACKBONES, SEED_OPTIMIZERS
from .space import ROLES
from .study import PHASES, STRATEGIES, StudySpec, parse_study
from .task import TrialTask, parse_task

__all__ = [
    "BACKBONES", "EPOCH_METRICS", "OBJECTIVE_METRICS", "OPTIMIZERS", "PHASES", "ROLES", "SEED_BACKBONES",
    "SEED_OPTIMIZERS", "SPLIT_ROLES", "STRATEGIES", "TUNABLES", "VERSION", "ContractError", "Recipe", "StudySpec",
    "TrialTask", "counts_as_failure", "head_metric", "one_line", "parse_study", "parse_task",
]
