"""What TLS and role tokens cost (not a test): LeaseTrial and ReportProgress on the optimizer, and
Predict on `saga serve`, each in plain text and with TLS + a bearer token, taking turns call by
call so that load on a shared machine hits both alike. Predict is also timed through the gateway
that the production overlays put in front of TF Serving (serving/gateway.py: TLS, token, one more
hop), with the plain server behind it. Prints p50 per configuration and the ratios against plain
text. Throwaway certificates come from tests/certs.py.

    .venv/bin/python bench/security_overhead.py [--cycles 300] [--frames 300] [--image-size 32 --alpha 0.35]

The served model is the trainer's architecture (MobileNetV2 + Saga's head) with random weights; by
default the tests' small one (alpha 0.35 at 32 px, a few ms a frame), ``--image-size 224 --alpha 1.0``
for the size a CAD model on endoscopy frames has. ``--only predict`` skips the optimizer's calls.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimizer_svc.client import OptimizerClient  # noqa: E402
from optimizer_svc.core import OptimizerCore  # noqa: E402
from optimizer_svc.server import make_server  # noqa: E402
from saga.security.channels import ClientSecurity  # noqa: E402
from saga.security.tls import ClientTLS, ServerTLS  # noqa: E402
from saga.security.tokens import TokenFile, line_for, new_token  # noqa: E402
from tests.certs import make_certs  # noqa: E402

CONFIGS = ("plain", "tls+token")


def p50_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def spec(dataset: str) -> dict:
    return {"name": "bench", "dataset": {"uri": dataset}, "strategy": "random",
            "budget": {"trials_per_phase": 10_000, "parallel_trials": 1, "initial_points": 1},
            "stopping": {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}}}


def optimizer(root: Path, certs, cycles: int) -> dict[str, dict[str, float]]:
    from tests.optimizer.conftest import empty_dataset

    token = new_token()
    (root / "hashes").write_text(line_for(token, ["admin"]) + "\n")
    clients, servers = {}, []
    for name in CONFIGS:
        secure = name != "plain"
        core = OptimizerCore(str(root / f"{name}.db"))
        server, port = make_server(core, "127.0.0.1:0",
                                   tls=ServerTLS(certs.server_cert, certs.server_key) if secure else None,
                                   tokens=TokenFile(root / "hashes") if secure else None)
        server.start()
        servers.append((server, core))
        security = ClientSecurity(ClientTLS(certs.ca), token) if secure else None
        clients[name] = OptimizerClient(f"localhost:{port}", security=security)
        clients[name].study = clients[name].create_study(spec(empty_dataset())).id
    times = {name: {"LeaseTrial": [], "ReportProgress": []} for name in CONFIGS}
    for cycle in range(cycles):
        for name in CONFIGS if cycle % 2 else reversed(CONFIGS):
            client = clients[name]
            started = time.perf_counter()
            trial, lease = client.lease_trial("bench", study_id=client.study, wait=10)
            times[name]["LeaseTrial"].append(time.perf_counter() - started)
            started = time.perf_counter()
            client.report_progress(trial.id, lease.id, "finetune", 1, {"val_accuracy": 0.5, "val_loss": 1.0})
            times[name]["ReportProgress"].append(time.perf_counter() - started)
            client.complete_trial(trial.id, lease.id, "SUCCEEDED", metrics={"val_accuracy": 0.5})
    for client in clients.values():
        client.close()
    for server, core in servers:
        server.stop(0).wait()
        core.close()
    return {name: {call: p50_ms(v[10:]) for call, v in calls.items()} for name, calls in times.items()}


def served_model(image_size: int, alpha: float):
    import keras

    from trainer_svc.models import build_model

    keras.utils.set_random_seed(1)
    return build_model("MobileNetV2", 3, image_size, None, alpha=alpha)


def predict(root: Path, certs, frames: int, image_size: int, alpha: float) -> dict[str, dict[str, float]]:
    from serving.client import GrpcFrameClient, RestFrameClient
    from serving.export import export_model
    from tests.serving.helpers import CLASSES, make_images, png, start_server

    exported = export_model(served_model(image_size, alpha), root / "models", "demo", backbone="MobileNetV2",
                            image_size=image_size, class_names=CLASSES,
                            card={"study_id": "st-bench", "trial_id": "tr-bench"})
    token = new_token()
    (root / "serving-hashes").write_text(line_for(token, ["reader"]) + "\n")
    base = Path(exported.uri).parent.parent
    plain = start_server(base)
    secure = start_server(base, tls=ServerTLS(certs.server_cert, certs.server_key),
                          tokens=TokenFile(root / "serving-hashes"))
    from serving.gateway import Gateway, GatewayConfig

    gateway = Gateway(GatewayConfig(f"127.0.0.1:{plain.grpc_port}", f"127.0.0.1:{plain.rest_port}", "127.0.0.1",
                                    0, 0, ServerTLS(certs.server_cert, certs.server_key),
                                    TokenFile(root / "serving-hashes")))
    gateway.start()
    security = ClientSecurity(ClientTLS(certs.ca), token)
    clients = {("plain", "gRPC"): GrpcFrameClient(f"localhost:{plain.grpc_port}", "demo", timeout_s=30),
               ("plain", "REST"): RestFrameClient(f"localhost:{plain.rest_port}", "demo", timeout_s=30),
               ("tls+token", "gRPC"): GrpcFrameClient(f"localhost:{secure.grpc_port}", "demo", timeout_s=30,
                                                      security=security),
               ("tls+token", "REST"): RestFrameClient(f"localhost:{secure.rest_port}", "demo", timeout_s=30,
                                                      security=security),
               ("gateway", "gRPC"): GrpcFrameClient(f"localhost:{gateway.grpc_port}", "demo", timeout_s=30,
                                                    security=security),
               ("gateway", "REST"): RestFrameClient(f"localhost:{gateway.rest_port}", "demo", timeout_s=30,
                                                    security=security)}
    images, _ = make_images(8, seed=2, size=image_size)
    encoded = [png(i) for i in images]
    times: dict[tuple[str, str], list[float]] = {key: [] for key in clients}
    for frame in range(frames):
        for key in clients if frame % 2 else reversed(list(clients)):
            started = time.perf_counter()
            clients[key].classify(encoded[frame % len(encoded)])
            times[key].append(time.perf_counter() - started)
    for client in clients.values():
        client.close()
    gateway.stop()
    plain.stop()
    secure.stop()
    result: dict[str, dict[str, float]] = {name: {} for name in (*CONFIGS, "gateway")}
    for (name, api), values in times.items():
        result[name][f"Predict {api}"] = p50_ms(values[10:])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=300, help="lease/report/complete cycles per configuration")
    parser.add_argument("--frames", type=int, default=300, help="Predict calls per configuration and API")
    parser.add_argument("--image-size", type=int, default=32, help="served model's input in px (default 32)")
    parser.add_argument("--alpha", type=float, default=0.35, help="served MobileNetV2's width (default 0.35)")
    parser.add_argument("--only", choices=("optimizer", "predict"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        certs = make_certs(root / "certs")
        results: dict[str, dict[str, float]] = {}
        if args.only != "predict":
            results = optimizer(root, certs, args.cycles)
        if args.only != "optimizer":
            for name, calls in predict(root, certs, args.frames, args.image_size, args.alpha).items():
                results.setdefault(name, {}).update(calls)
    print(f"{'call':<16} {'plain p50 ms':>13} {'tls+token p50 ms':>17} {'ratio':>6} {'gateway p50 ms':>15} {'ratio':>6}")
    for call in results["plain"]:
        plain, secure = results["plain"][call], results["tls+token"][call]
        line = f"{call:<16} {plain:>13.2f} {secure:>17.2f} {secure / plain:>6.2f}"
        if call in results.get("gateway", {}):
            line += f" {results['gateway'][call]:>15.2f} {results['gateway'][call] / plain:>6.2f}"
        print(line)


if __name__ == "__main__":
    main()
