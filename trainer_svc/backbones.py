"""Registry of ``keras.applications`` backbones: name -> constructor, preprocessing, input sizes.

Entries resolve lazily (``getattr`` on ``keras.applications`` when used), so listing the
registry costs nothing and a Keras version without some family fails with a clear error only
when that family is asked for.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras


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


def _family(module: str, sizes: dict[str, int], min_size: int = 32) -> dict[str, Backbone]:
    return {name: Backbone(name, module, size, min_size) for name, size in sizes.items()}


BACKBONES: dict[str, Backbone] = {
    # The seed's nine (thesis chapter 3).
    **_family("xception", {"Xception": 299}, min_size=71),
    **_family("vgg16", {"VGG16": 224}),
    **_family("vgg19", {"VGG19": 224}),
    **_family("resnet", {"ResNet50": 224, "ResNet101": 224, "ResNet152": 224}),
    **_family("inception_v3", {"InceptionV3": 299}, min_size=75),
    **_family("inception_resnet_v2", {"InceptionResNetV2": 299}, min_size=75),
    **_family("densenet", {"DenseNet121": 224, "DenseNet169": 224, "DenseNet201": 224}),
    # Newer families.
    **_family("resnet_v2", {"ResNet50V2": 224, "ResNet101V2": 224, "ResNet152V2": 224}),
    **_family("efficientnet", {"EfficientNetB0": 224, "EfficientNetB1": 240, "EfficientNetB2": 260,
                               "EfficientNetB3": 300, "EfficientNetB4": 380, "EfficientNetB5": 456,
                               "EfficientNetB6": 528, "EfficientNetB7": 600}),
    **_family("efficientnet_v2", {"EfficientNetV2B0": 224, "EfficientNetV2B1": 240,
                                  "EfficientNetV2B2": 260, "EfficientNetV2B3": 300,
                                  "EfficientNetV2S": 384, "EfficientNetV2M": 480,
                                  "EfficientNetV2L": 480}),
    **_family("mobilenet", {"MobileNet": 224}),
    **_family("mobilenet_v2", {"MobileNetV2": 224}),
    **_family("mobilenet_v3", {"MobileNetV3Small": 224, "MobileNetV3Large": 224}),
    **_family("nasnet", {"NASNetMobile": 224, "NASNetLarge": 331}),
    **_family("convnext", {"ConvNeXtTiny": 224, "ConvNeXtSmall": 224, "ConvNeXtBase": 224,
                           "ConvNeXtLarge": 224, "ConvNeXtXLarge": 224}),
}


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``; KeyError listing the known names when unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}") from None
