"""The names a study may use: backbones (with the smallest input each accepts) and optimizers.

Names only, no Keras: the optimizer validates specs with this module without importing
TensorFlow; the trainer maps the same names to Keras constructors (``trainer_svc.backbones``,
``trainer_svc.models``), and its tests check that both sides list exactly these names.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneInfo:
    """A ``keras.applications`` model usable as a backbone."""

    name: str           # constructor name in keras.applications, e.g. "ResNet50"
    default_size: int   # the input size its ImageNet weights were trained at
    min_size: int = 32  # the smallest input Keras builds it for without its top


def _family(sizes: dict[str, int], min_size: int = 32) -> dict[str, BackboneInfo]:
    return {name: BackboneInfo(name, size, min_size) for name, size in sizes.items()}


BACKBONES: dict[str, BackboneInfo] = {
    # The seed's nine (thesis chapter 3).
    **_family({"Xception": 299}, min_size=71),
    **_family({"VGG16": 224, "VGG19": 224}),
    **_family({"ResNet50": 224, "ResNet101": 224, "ResNet152": 224}),
    **_family({"InceptionV3": 299}, min_size=75),
    **_family({"InceptionResNetV2": 299}, min_size=75),
    **_family({"DenseNet121": 224, "DenseNet169": 224, "DenseNet201": 224}),
    # Newer families.
    **_family({"ResNet50V2": 224, "ResNet101V2": 224, "ResNet152V2": 224}),
    **_family({"EfficientNetB0": 224, "EfficientNetB1": 240, "EfficientNetB2": 260, "EfficientNetB3": 300,
               "EfficientNetB4": 380, "EfficientNetB5": 456, "EfficientNetB6": 528, "EfficientNetB7": 600}),
    **_family({"EfficientNetV2B0": 224, "EfficientNetV2B1": 240, "EfficientNetV2B2": 260,
               "EfficientNetV2B3": 300, "EfficientNetV2S": 384, "EfficientNetV2M": 480,
               "EfficientNetV2L": 480}),
    **_family({"MobileNet": 224, "MobileNetV2": 224, "MobileNetV3Small": 224, "MobileNetV3Large": 224}),
    **_family({"NASNetMobile": 224, "NASNetLarge": 331}),
    **_family({"ConvNeXtTiny": 224, "ConvNeXtSmall": 224, "ConvNeXtBase": 224, "ConvNeXtLarge": 224,
               "ConvNeXtXLarge": 224}),
}

# Optimizers by their keras.optimizers class name. The seed searched the first seven.
OPTIMIZERS: tuple[str, ...] = ("SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "Adamax", "Nadam", "AdamW")
# Optimizers with a classical momentum term (the `momentum` tunable); the others keep their own betas.
MOMENTUM_OPTIMIZERS: tuple[str, ...] = ("SGD", "RMSprop")

SEED_BACKBONES: tuple[str, ...] = ("Xception", "VGG16", "VGG19", "ResNet50", "InceptionV3", "InceptionResNetV2",
                                   "DenseNet121", "DenseNet169", "DenseNet201")
SEED_OPTIMIZERS: tuple[str, ...] = OPTIMIZERS[:7]

# Proposal engines a study can name in budget.algorithm (optimizer_svc.proposer implements them).
ALGORITHMS = ("gp", "gpyopt", "random")


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest known name, ignoring case; empty when none is close."""
    if not isinstance(name, str):
        return ""
    known = list(known)
    by_lower = {k.lower(): k for k in known}
    if name.lower() in by_lower:
        return f" (did you mean {by_lower[name.lower()]}?)"
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]}?)" if close else ""


def unknown_name(kind: str, name: object, known: Iterable[str]) -> str:
    """The message for a name that is not in a registry: the hint, then what is known."""
    known = list(known)
    return f"unknown {kind} {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
