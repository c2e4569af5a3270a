"""BatchNorm statistics that describe the data a model trained on.

A network that trains its BatchNorm layers (from scratch, or the pre-training of ``saga weights
pretrain``) keeps moving averages of each layer's batch statistics for inference. After a short run
they lag behind what the layers now compute, so :func:`recalibrate_batch_norm` replaces them by the
exact average over training batches before the model is evaluated, stored or exported. The
learnt weights do not change.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import keras

from trainer_svc.models import batch_norm_layers

log = logging.getLogger(__name__)


def recalibrate_batch_norm(model: keras.Model, batches: Iterable[Any], max_batches: int = 100) -> int:
    """Sets every BatchNorm layer's moving mean and variance to the average of its batch
    statistics over up to ``max_batches`` batches (``x`` or ``(x, y)``); returns the batches used.

    Batch ``i`` (from 0) is folded in with momentum ``i / (i + 1)``, which makes the moving
    averages the running mean over every batch seen. Layers are made trainable for the passes
    (a frozen BatchNorm layer runs in inference mode and would not update) and restored after.
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    saved = [(layer.momentum, layer.trainable) for layer in layers]
    used = 0
    try:
        for layer in layers:
            layer.trainable = True
        for batch in batches:
            if used >= max_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            for layer in layers:
                layer.momentum = used / (used + 1)
            model(x, training=True)
            used += 1
    finally:
        for layer, (momentum, trainable) in zip(layers, saved):
            layer.momentum = momentum
            layer.trainable = trainable
    log.info("BatchNorm statistics of %d layers recalibrated on %d batches", len(layers), used)
    return used
