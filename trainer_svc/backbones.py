"""The Keras side of the backbone registry: each name of the trial contract
(:data:`trial_contract.registry.BACKBONES`, which also holds its input sizes) mapped to its
``keras.applications`` constructor and preprocessing.

Entries resolve lazily (``getattr`` on ``keras.applications`` when used), so listing the
registry costs nothing and a Keras version without some family fails with a clear error only
when that family is asked for.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras

from trial_contract.registry import BACKBONES as CONTRACT_BACKBONES
from trial_contract.registry import unknown_name


@dataclass(frozen=True)
class Backbone:
    """One ``keras.applications`` model family member."""

    name: str            # constructor name in keras.applications, e.g. "ResNet50"
    module: str          # submodule holding preprocess_input, e.g. "resnet"
    default_size: int    # the input size its ImageNet weights were trained at
    min_size: int = 32   # smallest input Keras accepts without the top

    @property
    def constructor(self) -> Callable[..., keras.Model]:
        """The ``keras.applications`` function building the model."""
        try:
            return getattr(keras.applications, self.name)
        except AttributeError:
            raise KeyError(f"keras {keras.__version__} has no application {self.name!r}") from None

    @property
    def preprocess_input(self) -> Callable[[Any], Any]:
        """The family's own input preprocessing (expects float pixels in [0, 255])."""
        return getattr(keras.applications, self.module).preprocess_input


# keras.applications submodule of every family, by the contract's backbone names.
_MODULES: dict[str, str] = {
    "Xception": "xception", "VGG16": "vgg16", "VGG19": "vgg19",
    **dict.fromkeys(("ResNet50", "ResNet101", "ResNet152"), "resnet"),
    "InceptionV3": "inception_v3", "InceptionResNetV2": "inception_resnet_v2",
    **dict.fromkeys(("DenseNet121", "DenseNet169", "DenseNet201"), "densenet"),
    **dict.fromkeys(("ResNet50V2", "ResNet101V2", "ResNet152V2"), "resnet_v2"),
    **{f"EfficientNetB{i}": "efficientnet" for i in range(8)},
    **dict.fromkeys(("EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3",
                     "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L"), "efficientnet_v2"),
    "MobileNet": "mobilenet", "MobileNetV2": "mobilenet_v2",
    **dict.fromkeys(("MobileNetV3Small", "MobileNetV3Large"), "mobilenet_v3"),
    **dict.fromkeys(("NASNetMobile", "NASNetLarge"), "nasnet"),
    **dict.fromkeys(("ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"),
                    "convnext"),
}

BACKBONES: dict[str, Backbone] = {
    name: Backbone(name, _MODULES[name], info.default_size, info.min_size)
    for name, info in CONTRACT_BACKBONES.items()
}


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``; KeyError listing the known names when unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(unknown_name("backbone", name, BACKBONES)) from None
