"""What a model server's callers may do, and which API method a REST path is: one place for
``saga serve`` and the gateway in front of TF Serving (``serving.gateway``), which must agree.

Light on purpose (no TensorFlow, no serving core): the gateway runs in the small sidecar image.
"""
from __future__ import annotations

import re

from saga.security.tokens import ROLES

# TF Serving's REST paths: /v1/models/NAME[/versions/V][/metadata|:predict]
REST_PATH = re.compile(r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d{1,18}))?"
                       r"(?P<suffix>/metadata|:predict)?/?")
# The gRPC method a REST path's suffix stands for (the policy names both alike).
REST_METHOD = {":predict": "Predict", "/metadata": "GetModelMetadata", "": "GetModelStatus"}
# TF Serving's gRPC methods a client may call; HandleReloadConfigRequest (which replaces the served
# models) is left out, so only admin tokens may call it.
GRPC_METHODS = (
    "/tensorflow.serving.PredictionService/Predict",
    "/tensorflow.serving.PredictionService/Classify",
    "/tensorflow.serving.PredictionService/Regress",
    "/tensorflow.serving.PredictionService/MultiInference",
    "/tensorflow.serving.PredictionService/GetModelMetadata",
    "/tensorflow.serving.ModelService/GetModelStatus",
    "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
)
# With a token file, any token in it may predict and read model status and metadata.
POLICY = {name: ROLES for name in ("Predict", "Classify", "Regress", "MultiInference", "GetModelMetadata",
                                   "GetModelStatus")}


def rest_method(method: str, path: str) -> tuple[re.Match, str] | None:
    """The path's match and the API method it calls; None for a path or HTTP method TF Serving's REST
    API does not have (``:predict`` is POST, the others GET)."""
    match = REST_PATH.fullmatch(path.split("?", 1)[0])
    if match is None:
        return None
    suffix = match["suffix"] or ""
    if (suffix == ":predict") != (method == "POST"):
        return None
    return match, REST_METHOD[suffix]
