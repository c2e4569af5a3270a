"""The backbone's ``preprocess_input`` by ``keras.applications`` model name.

The trainer feeds its models images already run through the backbone's ``preprocess_input``; the
export puts the same function inside the serving graph, so clients send plain RGB images.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import tensorflow as tf

# Name pattern -> keras.applications module holding the matching preprocess_input. Order matters:
# the first match wins (ResNet50V2 must hit resnet_v2 before ResNet50 hits resnet).
_MODULES: tuple[tuple[str, str], ...] = (
    (r"MobileNetV2", "mobilenet_v2"),
    (r"MobileNetV3(Small|Large)", "mobilenet_v3"),
    (r"MobileNet", "mobilenet"),
    (r"ResNet(50|101|152)V2", "resnet_v2"),
    (r"ResNet(50|101|152)", "resnet"),
    (r"InceptionV3", "inception_v3"),
    (r"InceptionResNetV2", "inception_resnet_v2"),
    (r"Xception", "xception"),
    (r"VGG16", "vgg16"),
    (r"VGG19", "vgg19"),
    (r"DenseNet(121|169|201)", "densenet"),
    (r"EfficientNetV2(B[0-3]|S|M|L)", "efficientnet_v2"),
    (r"EfficientNetB[0-7]", "efficientnet"),
    (r"NASNet(Mobile|Large)", "nasnet"),
    (r"ConvNeXt(Tiny|Small|Base|Large|XLarge)", "convnext"),
)

# Backbones without preprocessing (tiny test models, models trained on raw 0-255 pixels).
IDENTITY = ("none", "identity")


class UnknownBackbone(ValueError):
    """The backbone name matches no keras.applications model."""


def preprocess_fn(backbone: str | None) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function mapping float RGB images in 0-255 to the backbone's model input.

    ``backbone`` is a keras.applications model name (``MobileNetV2``, ``ResNet50`` ...), or
    ``None``/``"none"`` for no preprocessing. Raises :class:`UnknownBackbone` for other names.
    """
    if backbone is None or backbone.lower() in IDENTITY:
        return tf.identity
    for pattern, module in _MODULES:
        if re.fullmatch(pattern, backbone):
            return importlib.import_module(f"keras.applications.{module}").preprocess_input
    raise UnknownBackbone(
        f"backbone {backbone!r} is not a keras.applications model name "
        f"(e.g. MobileNetV2, ResNet50, EfficientNetB0) nor 'none'")
