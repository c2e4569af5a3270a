"""What ``saga demo`` runs: the sizes of its data, pre-training, study and video, in a full and a
``--quick`` variant, and the study spec built from them."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

# Small enough to train in seconds on a laptop CPU, big enough to be a real transfer backbone;
# MobileNetV2 accepts 32 px inputs. (Its width multiplier cannot be set from a study spec.)
BACKBONE = "MobileNetV2"
SOURCE_SEED = 1000   # the pre-training task: other images (and more classes) than the target's
TARGET_SEED = 0
VIDEO_SEED = 77


@dataclass(frozen=True)
class DemoConfig:
    classes: int = 4              # target task: polyp, ulcer, vessels, dyed
    per_class: int = 50
    source_classes: int = 8       # source task: all eight synthetic kinds
    source_per_class: int = 40
    synth_size: int = 64          # pixels of the generated images
    image_size: int = 32          # model input (the export resizes any frame to it)
    pretrain_epochs: int = 3
    head_epochs: int = 2
    finetune_epochs: int = 2
    search_trials: int = 6        # per phase: shared "search", then "layer"
    layer_trials: int = 3
    initial_points: int = 3
    workers: int = 2
    video_frames_per_class: int = 25
    video_size: int = 128
    online: bool = False          # ImageNet weights from the Keras hub instead of pre-training
    model_name: str = "saga"
    # The study fails only if no trial makes progress (a lease, an epoch, a completion) for this
    # long; a busy machine makes it slower, not failed.
    stall_timeout_s: float = 600.0

    @classmethod
    def quick(cls, **over: Any) -> "DemoConfig":
        """One trial per phase, one epoch per step, fewer images: the end-to-end test's size."""
        return replace(cls(classes=3, per_class=24, source_classes=4, source_per_class=16, synth_size=48,
                           pretrain_epochs=1, head_epochs=1, finetune_epochs=1, search_trials=1,
                           layer_trials=1, initial_points=1, workers=1, video_frames_per_class=8,
                           video_size=64), **over)

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 16:
            raise ValueError(f"--workers must be in [1, 16], got {self.workers}")
        if not self.model_name or "/" in self.model_name:
            raise ValueError(f"--model-name {self.model_name!r} must be non-empty and contain no '/'")

    def study_spec(self, dataset_uri: str, weights: str) -> dict[str, Any]:
        """The study: the seed's ``shared`` strategy (search, then the delimiting-layer phase)."""
        return {
            "name": "saga-demo",
            "dataset": {"uri": dataset_uri},
            "model": {"weights": weights, "image_size": self.image_size, "pooling": "max"},
            "strategy": "shared",
            "search_space": {
                "backbone": {"type": "categorical", "values": [BACKBONE]},
                "optimizer": {"type": "categorical", "values": ["Adam", "RMSprop", "SGD"]},
                "learning_rate": {"type": "float", "low": 1e-4, "high": 0.05, "scale": "log"},
            },
            "budget": {"trials_per_phase": {"search": self.search_trials, "layer": self.layer_trials},
                       "initial_points": self.initial_points, "parallel_trials": self.workers,
                       "max_attempts": 2},
            # With 1-2 epochs per step the seed's 5-epoch rules cannot fire; keep them on anyway.
            "stopping": {"nonconvergence": {"enabled": True}, "early_stopping": {"enabled": True}},
            "training": {"head_epochs": self.head_epochs, "finetune_epochs": self.finetune_epochs,
                         "batch_size": 16},
            "seed": 7,
        }
