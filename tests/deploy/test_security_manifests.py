"""Who may reach what in the rendered manifests: network policies admit clients only from this
namespace or ones an admin labelled, each role has its own MinIO user with only the access it
needs, and the production overlays turn TLS and tokens on with Secrets mounted as files."""
from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest
import yaml

from .conftest import K8S, KUSTOMIZATIONS
from .kustomize import containers, pod_spec
from .objects import flag, one, trainer_workload, workloads

PRODUCTION = ("overlays/gpu", "overlays/keda", "overlays/kueue")
# The MinIO user each container's S3 keys belong to (k8s/base/minio-access.yaml).
ROLE_OF = {"optimizer": "optimizer", "trainer": "trainer", "serving-sync": "serving", "dashboard": "client",
           "minio": "root", "mc": "root", "saga": "client"}


def example_secrets() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text())}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_no_policy_admits_clients_from_every_namespace(rendered, name: str) -> None:
    for policy in (o for o in rendered[name] if o["kind"] == "NetworkPolicy"):
        rules = [*policy["spec"].get("ingress", []), *policy["spec"].get("egress", [])]
        for peer in (p for rule in rules for p in [*rule.get("from", []), *rule.get("to", [])]):
            if "namespaceSelector" in peer:  # a namespace chosen by name or by an admin's label
                assert peer["namespaceSelector"].get("matchLabels"), (policy["metadata"]["name"], peer)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_each_role_reads_its_own_minio_credentials_and_only_minio_sees_the_root_user(rendered, name: str) -> None:
    cli = yaml.safe_load((K8S / "saga-cli.yaml").read_text())
    for obj in [*workloads(rendered[name]), cli]:
        for container in containers(obj):
            refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {}) and e["valueFrom"]["secretKeyRef"]["name"].startswith("saga-s3")}
            if not refs:
                continue
            role = ROLE_OF[container["name"]]
            if container["name"] == "mc":  # the setup Job creates every role's user with the root user
                assert "saga-s3-root" in refs
            else:
                assert refs == {f"saga-s3-{role}"}, (obj["metadata"]["name"], container["name"], refs)


def _allowed(policy: dict, action: str, key: str) -> bool:
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow" and action in statement["Action"]:
            for resource in statement["Resource"]:
                prefix = resource.removeprefix("arn:aws:s3:::saga/")
                if resource != "arn:aws:s3:::saga" and (prefix == key or (prefix.endswith("*") and key.startswith(prefix[:-1]))):
                    return True
    return False


def test_minio_policies_give_each_role_only_what_it_does(rendered) -> None:
    access = one(rendered["base"], "ConfigMap", "minio-access")["data"]
    policy = {role: json.loads(access[f"{role}.json"]) for role in ("optimizer", "trainer", "serving", "client")}
    expect = {  # (action, key): roles allowed
        ("s3:GetObject", "datasets/kvasir/manifest.json"): {"optimizer", "trainer", "client"},
        ("s3:PutObject", "datasets/kvasir/images/x.jpg"): {"client"},
        ("s3:GetObject", "weights/vgg16.weights.h5"): {"trainer", "client"},
        ("s3:PutObject", "studies/st-1/trials/t/attempt-1/model.keras"): {"trainer"},
        ("s3:GetObject", "studies/st-1/trials/t/attempt-1/model.keras"): {"trainer", "client"},
        ("s3:PutObject", "models/classifier/3/saved_model.pb"): {"client"},
        ("s3:GetObject", "models/classifier/3/saved_model.pb"): {"serving", "client"},
        ("s3:DeleteObject", "datasets/kvasir/manifest.json"): set(),
    }
    for (action, key), roles in expect.items():
        assert {r for r in policy if _allowed(policy[r], action, key)} == roles, (action, key)
    job = pod_spec(one(rendered["base"], "Job", "minio-setup"))
    mc = job["containers"][0]
    env = {e["name"] for e in mc["env"]}
    for role in policy:
        assert f"/setup/{role}.json" in access["setup.sh"].replace("$role", role)
        assert {f"{role}_user", f"{role}_password"} <= env
    mount = next(m for m in mc["volumeMounts"] if m["mountPath"] == "/setup")
    assert next(v for v in job["volumes"] if v["name"] == mount["name"])["configMap"]["name"] == "minio-access"
    assert mc["command"] == ["/bin/sh", "/setup/setup.sh"]


def _secret_file(spec: dict, container: dict, path: str) -> tuple[str, str]:
    """(Secret name, key) of the file ``path`` as the container sees it: a Secret volume mounted
    whole (no subPath, so an updated Secret replaces the file)."""
    mount = max((m for m in container["volumeMounts"] if PurePosixPath(path).is_relative_to(m["mountPath"])),
                key=lambda m: len(m["mountPath"]))
    assert "subPath" not in mount, f"{path}: a subPath mount never sees a rotated Secret"
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    return volume["secret"]["secretName"], str(PurePosixPath(path).relative_to(mount["mountPath"]))


@pytest.mark.parametrize("name", PRODUCTION)
def test_production_overlays_serve_tls_and_ask_for_tokens_from_mounted_secrets(rendered, name: str) -> None:
    objects, documented = rendered[name], example_secrets()

    def documented_file(spec, container, path) -> str:
        secret, key = _secret_file(spec, container, path)
        assert key in documented[secret]["stringData"], (secret, key)
        return secret

    for workload in ("optimizer", "dashboard"):
        spec = pod_spec(one(objects, "Deployment", workload))
        container = spec["containers"][0]
        args = container["args"]
        tls = {documented_file(spec, container, flag(args, f)) for f in ("--tls-cert", "--tls-key")}
        assert len(tls) == 1 and documented[tls.pop()]["type"] == "kubernetes.io/tls"
        assert documented_file(spec, container, flag(args, "--token-hashes")) == "saga-token-hashes"
    for workload in (trainer_workload(objects), one(objects, "Deployment", "dashboard")):
        spec = pod_spec(workload)
        container = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert documented_file(spec, container, env["SAGA_TLS_CA"]) == "saga-optimizer-tls"
        assert documented_file(spec, container, env["SAGA_TOKEN_FILE"]).endswith("-token")
    for probe in ("readinessProbe", "livenessProbe"):
        assert pod_spec(one(objects, "Deployment", "dashboard"))["containers"][0][probe]["httpGet"]["scheme"] == "HTTPS"


def _port_number(container: dict, name_or_number) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    return next(p["containerPort"] for p in container["ports"] if p["name"] == name_or_number)


def _tcp_ports(rule: dict) -> set[int]:
    return {p["port"] for p in rule.get("ports", [])}


@pytest.mark.parametrize("name", PRODUCTION)
def test_clients_reach_tf_serving_only_through_the_gateway_with_tls_and_tokens(rendered, name: str) -> None:
    from serving.gateway import parser

    objects, documented = rendered[name], example_secrets()
    spec = pod_spec(one(objects, "Deployment", "tfserving"))
    serving, gateway = (next(c for c in spec["containers"] if c["name"] == n) for n in ("tfserving", "gateway"))
    assert gateway["command"] == ["python", "-m", "serving.gateway"]
    args = parser().parse_args(gateway["args"])  # the flags the gateway has, with their values
    # it forwards to TF Serving's own ports, on the pod's loopback
    assert args.upstream_grpc == f"127.0.0.1:{flag(serving['args'], '--port')}"
    assert args.upstream_rest == f"127.0.0.1:{flag(serving['args'], '--rest_api_port')}"
    assert flag(serving["args"], "--ssl_config_file") is None  # TF Serving itself: loopback, plain
    # TLS from the serving certificate, tokens from the same hashes as the optimizer
    assert {_secret_file(spec, gateway, f)[0] for f in (args.tls_cert, args.tls_key)} == {"saga-serving-tls"}
    assert documented["saga-serving-tls"]["type"] == "kubernetes.io/tls"
    assert _secret_file(spec, gateway, args.token_hashes) == ("saga-token-hashes", "hashes")
    # the Service's ports are the gateway's
    service = one(objects, "Service", "tfserving")
    targets = {p["name"]: _port_number(gateway, p["targetPort"]) for p in service["spec"]["ports"]}
    assert targets == {"grpc": args.grpc_port, "rest": args.rest_port}
    gateway_ports = {args.grpc_port, args.rest_port}
    # clients are admitted to the pod at the gateway's ports only; TF Serving's REST stays open to
    # Prometheus alone (its metrics path), its gRPC to nobody outside the pod
    policy = one(objects, "NetworkPolicy", "tfserving")["spec"]
    for rule in policy["ingress"]:
        peers = [p.get("podSelector", {}).get("matchLabels", {}) for p in rule["from"]]
        if any(p.get("saga.io/client") == "true" for p in peers):
            assert _tcp_ports(rule) == gateway_ports
        else:
            assert peers == [{"app.kubernetes.io/name": "prometheus"}]
            assert int(flag(serving["args"], "--port")) not in _tcp_ports(rule)
    egress = one(objects, "NetworkPolicy", "clients")["spec"]["egress"]
    to_serving = [r for r in egress if any(p.get("podSelector", {}).get("matchLabels", {}).get(
        "app.kubernetes.io/name") == "tfserving" for p in r.get("to", []))]
    assert [_tcp_ports(r) for r in to_serving] == [gateway_ports]
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
