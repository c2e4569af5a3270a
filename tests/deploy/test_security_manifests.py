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


def _ssl_config_message():
    """TF Serving's SSLConfig (tensorflow_serving/config/ssl_config.proto), built here: the
    tensorflow-serving-api package does not ship it."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="saga_test_ssl_config.proto", package="saga_test")
    message = proto.message_type.add(name="SSLConfig")
    for number, (name, kind) in enumerate((("server_key", 9), ("server_cert", 9), ("custom_ca", 9),
                                           ("client_verify", 8)), 1):
        message.field.add(name=name, number=number, type=kind, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("saga_test.SSLConfig"))


def test_tf_serving_gets_its_certificate_as_the_ssl_config_it_parses(rendered, certs, tmp_path) -> None:
    import subprocess
    import sys

    from google.protobuf import text_format

    spec = pod_spec(one(rendered["overlays/gpu"], "Deployment", "tfserving"))
    init = next(c for c in spec["initContainers"] if c["name"] == "tls-config")
    serving = next(c for c in spec["containers"] if c["name"] == "tfserving")
    config_path = flag(serving["args"], "--ssl_config_file")
    assert _secret_file(spec, init, "/etc/saga/tls/tls.key")[0] == "saga-serving-tls"
    # the file TF Serving reads is the one the init container writes, on the volume they share
    written = next(m for m in init["volumeMounts"] if m["name"] == "tls-config")["mountPath"]
    read = next(m for m in serving["volumeMounts"] if m["name"] == "tls-config")["mountPath"]
    assert PurePosixPath(config_path).parent == PurePosixPath(read)
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "tls.key").write_bytes(certs.server_key.read_bytes())
    (tmp_path / "tls" / "tls.crt").write_bytes(certs.server_cert.read_bytes())
    (tmp_path / "out").mkdir()
    script = init["command"][2].replace("/etc/saga/tls", str(tmp_path / "tls")).replace(written, str(tmp_path / "out"))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    parsed = text_format.Parse((tmp_path / "out" / PurePosixPath(config_path).name).read_text(), _ssl_config_message()())
    assert parsed.server_key == certs.server_key.read_text() and parsed.server_cert == certs.server_cert.read_text()
