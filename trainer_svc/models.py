"""Keras model builder: a backbone without its top plus the seed's head
(GlobalMaxPooling2D + Dense softmax), freezing per step, and optimizers by name.

The model is flat (the head sits on ``base.output``), so the backbone's layers are
``model.layers[:base_layers]`` both for a freshly built model and for one loaded from a
``.keras`` checkpoint; the head layers carry fixed names to find that boundary again.

BatchNormalization, the recipe that keeps trials learning (Keras's transfer-learning guide):
a pre-trained backbone's BatchNorm layers stay frozen, and a frozen BatchNorm layer runs in
inference mode in Keras 3, so fine-tuning never replaces the statistics the backbone learnt with
those of a few noisy batches. A backbone without weights trains every layer (a random frozen
layer is chance by construction), with a BatchNorm momentum whose moving averages catch up within
a short trial (:data:`FROM_SCRATCH_MOMENTUM`); :mod:`trainer_svc.batchnorm` recalibrates them
exactly before evaluation.
"""
from __future__ import annotations

from pathlib import Path

import keras

from optimizer_svc.egress import IMAGENET_INSTEAD
from trainer_svc.backbones import get_backbone
from trainer_svc.errors import InvalidTask, WeightsError
from trainer_svc.task import DelimitingLayer
from trial_contract.registry import MOMENTUM_OPTIMIZERS

POOL_LAYER = "saga_pool"
DROPOUT_LAYER = "saga_dropout"
HEAD_LAYER = "saga_predictions"
# keras.applications builds BatchNorm with momentum 0.99-0.999: after the few hundred steps of a
# trial the moving averages have barely left their initial values and inference is at chance
# (measured: MobileNetV2 from scratch, 320 steps, validation 0.10 at 0.999 and 0.81 at 0.9).
FROM_SCRATCH_MOMENTUM = 0.9

# The contract's optimizer names (trial_contract.registry.OPTIMIZERS) -> Keras classes.
OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "SGD": keras.optimizers.SGD,
    "RMSprop": keras.optimizers.RMSprop,
    "Adagrad": keras.optimizers.Adagrad,
    "Adadelta": keras.optimizers.Adadelta,
    "Adam": keras.optimizers.Adam,
    "Adamax": keras.optimizers.Adamax,
    "Nadam": keras.optimizers.Nadam,
    "AdamW": keras.optimizers.AdamW,
}


def build_model(backbone: str, num_classes: int, image_size: int,
                weights: str | Path | None = None, pooling: str = "max",
                head_dropout: float = 0.0, **options: object) -> keras.Model:
    """A classifier on ``backbone`` with ``num_classes`` outputs.

    ``weights``: ``"imagenet"`` (downloaded by Keras; needs internet), ``None`` (random init),
    or a local weights file: ``.weights.h5`` saved from the same backbone, or a ``.keras``
    model holding the backbone's layers (matched by layer name and shape). ``options`` go to
    the ``keras.applications`` constructor (e.g. ``alpha`` of MobileNetV2).
    """
    entry = get_backbone(backbone)
    if num_classes < 2:
        raise InvalidTask("dataset", f"a classifier needs at least 2 classes, got {num_classes}")
    if image_size < entry.min_size:
        raise InvalidTask("model.image_size",
                          f"{backbone} needs inputs of at least {entry.min_size} px, got {image_size}")
    keras_weights = "imagenet" if weights == "imagenet" else None
    try:
        base = entry.constructor(include_top=False, weights=keras_weights,
                                 input_shape=(image_size, image_size, 3), **options)
    except (TypeError, ValueError) as exc:
        raise InvalidTask("model", f"cannot build {backbone} with options {options}: {exc}") from None
    except Exception as exc:  # Keras raises a bare Exception when the weights download fails
        if keras_weights != "imagenet":
            raise
        raise WeightsError(f"model.weights: cannot download the ImageNet weights of {backbone} ({exc}); "
                           f"{IMAGENET_INSTEAD}") from None
    if weights is not None and weights != "imagenet":
        load_base_weights(base, Path(weights))
    if weights is None:
        set_batch_norm_momentum(base, FROM_SCRATCH_MOMENTUM)
    pool_cls = keras.layers.GlobalMaxPooling2D if pooling == "max" else keras.layers.GlobalAveragePooling2D
    features = pool_cls(name=POOL_LAYER)(base.output)
    if head_dropout > 0:
        features = keras.layers.Dropout(head_dropout, name=DROPOUT_LAYER)(features)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name=HEAD_LAYER)(features)
    return keras.Model(base.input, outputs, name=f"saga_{backbone}")


def load_base_weights(base: keras.Model, path: Path) -> None:
    """Loads a weights file into ``base``; WeightsError when it does not fit."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.name.endswith(".weights.h5"):
        try:
            base.load_weights(path)
        except (ValueError, KeyError) as exc:
            raise WeightsError(f"{path.name} does not fit {base.name}: {exc}") from None
    elif path.suffix == ".keras":
        try:
            source = keras.models.load_model(path, compile=False)
        except (ValueError, OSError) as exc:
            raise WeightsError(f"cannot read model file {path.name}: {exc}") from None
        copy_weights_by_name(source, base)
    else:
        raise WeightsError(f"weights file {path.name} must end in .weights.h5 or .keras")


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copies weights from the layers of ``source`` (searched recursively) into the layers of
    ``target`` with the same name. Every target layer with weights must find a match of the
    same shapes, so a wrong backbone fails loudly instead of training half-random.
    Returns the number of layers copied."""
    by_name = {layer.name: layer for layer in _walk(source)}
    missing, copied = [], 0
    for layer in target.layers:
        if not layer.weights:
            continue
        src = by_name.get(layer.name)
        if src is None:
            missing.append(layer.name)
            continue
        values = src.get_weights()
        shapes = [tuple(v.shape) for v in layer.get_weights()]
        if [tuple(v.shape) for v in values] != shapes:
            raise WeightsError(f"layer {layer.name!r}: weights of shapes {shapes} expected, "
                               f"the file has {[tuple(v.shape) for v in values]}")
        layer.set_weights(values)
        copied += 1
    if missing:
        raise WeightsError(f"{len(missing)} layers of {target.name} have no weights in the file, "
                           f"e.g. {missing[:3]}")
    return copied


def _walk(model: keras.Model) -> list[keras.layers.Layer]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_walk(layer))
    return layers


def load_checkpoint(path: Path) -> keras.Model:
    """A model saved by :func:`build_model` training (``.keras``); WeightsError otherwise."""
    try:
        model = keras.models.load_model(path, compile=False)
    except (ValueError, OSError) as exc:
        raise WeightsError(f"cannot read checkpoint {path.name}: {exc}") from None
    base_layer_count(model)  # checks the head is ours
    return model


def base_layer_count(model: keras.Model) -> int:
    """Number of backbone layers (everything before the pooling head)."""
    names = [layer.name for layer in model.layers]
    if POOL_LAYER not in names or names[-1] != HEAD_LAYER:
        raise WeightsError(f"model {model.name} has no Saga head ({POOL_LAYER} + {HEAD_LAYER})")
    return names.index(POOL_LAYER)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of ``model`` (nested models included)."""
    return [layer for layer in _walk(model) if isinstance(layer, keras.layers.BatchNormalization)]


def set_batch_norm_momentum(model: keras.Model, momentum: float) -> None:
    """Lowers the momentum of every BatchNorm layer to at most ``momentum`` (saved with the model)."""
    for layer in batch_norm_layers(model):
        layer.momentum = min(float(layer.momentum), momentum)


def set_trainable(model: keras.Model, step: str, delimiter: DelimitingLayer | None = None, *,
                  pretrained: bool = True) -> int:
    """Freezes per step and returns the index of the first trainable backbone layer.

    With a ``pretrained`` backbone: ``head`` freezes the whole backbone (returns ``base_layers``);
    ``finetune`` makes backbone layers from the delimiting layer on trainable, those before it
    frozen, and keeps every BatchNorm layer frozen, so it normalizes with the backbone's own
    statistics (inference mode) while the layers around it learn. Without (``pretrained=False``,
    random initialization) every layer trains in every step (returns 0). The head always trains.
    """
    n = base_layer_count(model)
    if step not in ("head", "finetune"):
        raise InvalidTask("steps[].name", f"unknown step {step!r}")
    if not pretrained:
        first = 0
    elif step == "head":
        first = n
    else:
        first = (delimiter or DelimitingLayer(relative=2 / 3)).resolve(n)
    model.trainable = True
    for i, layer in enumerate(model.layers):
        frozen_statistics = pretrained and i < n and isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= first and not frozen_statistics
    return first


def compile_for_step(model: keras.Model, optimizer: str, learning_rate: float, *, momentum: float = 0.0,
                     weight_decay: float = 0.0, label_smoothing: float = 0.0) -> None:
    """(Re)compiles with a fresh optimizer; needed after every change of ``trainable``.

    ``momentum`` applies to SGD and RMSprop (the others have their own betas); ``weight_decay``
    is the optimizer's decoupled weight decay; ``label_smoothing`` smooths the loss's targets.
    """
    try:
        opt_cls = OPTIMIZERS[optimizer]
    except KeyError:
        raise InvalidTask("steps[].optimizer", f"unknown optimizer {optimizer!r}") from None
    kwargs: dict[str, float] = {"learning_rate": learning_rate}
    if momentum and optimizer in MOMENTUM_OPTIMIZERS:
        kwargs["momentum"] = momentum
    if weight_decay:
        kwargs["weight_decay"] = weight_decay
    loss = (SmoothedSparseCrossentropy(label_smoothing) if label_smoothing
            else keras.losses.SparseCategoricalCrossentropy())
    model.compile(optimizer=opt_cls(**kwargs), loss=loss, metrics=["accuracy"])


@keras.saving.register_keras_serializable(package="saga")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Keras smooths one-hot targets only)."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
