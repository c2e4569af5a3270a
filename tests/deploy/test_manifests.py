"""What an operator relies on in the rendered manifests: schema-valid, safe, and wired together."""
from __future__ import annotations

import re

import pytest
import yaml
from kubernetes_validate import utils as kv

from .conftest import K8S, KUSTOMIZATIONS
from .kustomize import containers, pod_spec, split_image
from .objects import flag, is_custom, one, pod_labels, ports, selects, trainer_workload, workloads

Object = dict

# The oldest Kubernetes Saga supports (native gRPC probes are GA since 1.27) and the newest schema.
K8S_VERSIONS = ("1.28.0", kv.latest_version())
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL|MC_HOST_", re.IGNORECASE)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schema(rendered, name: str, version: str) -> None:
    for obj in rendered[name]:
        if not is_custom(obj):  # custom resources: test_custom_resources.py
            kv.validate(obj, version, strict=True)  # raises ValidationError naming the field


def test_schema_validation_rejects_a_misspelt_field(rendered) -> None:
    trainer = one(rendered["base"], "Deployment", "trainer")
    broken = yaml.safe_load(yaml.safe_dump(trainer))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # not `resources`
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSIONS[0], strict=True)


def _assert_limited_and_locked_down(obj: Object) -> None:
    spec = pod_spec(obj)
    pod_security = spec.get("securityContext", {})
    assert pod_security.get("runAsNonRoot") is True, obj["metadata"]["name"]
    assert pod_security.get("runAsUser", 0) != 0, obj["metadata"]["name"]
    assert pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    for container in containers(obj):
        where = f"{obj['metadata']['name']}/{container['name']}"
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where}: {kind}"
        security = container.get("securityContext", {})
        assert security.get("allowPrivilegeEscalation") is False, where
        assert security.get("readOnlyRootFilesystem") is True, where
        assert security.get("capabilities", {}).get("drop") == ["ALL"], where
        assert security.get("runAsUser", 1) != 0 and security.get("privileged") is not True, where


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_container_is_limited_and_locked_down(rendered, name: str) -> None:
    for obj in workloads(rendered[name]):
        _assert_limited_and_locked_down(obj)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("filename", ["saga-cli.yaml", "secret.example.yaml"])
def test_manifests_applied_by_hand_are_valid(filename: str, version: str) -> None:
    for doc in yaml.safe_load_all((K8S / filename).read_text()):
        kv.validate(doc, version, strict=True)


def test_cli_pod_is_a_locked_down_client_with_the_shared_settings(rendered) -> None:
    pod = yaml.safe_load((K8S / "saga-cli.yaml").read_text())
    _assert_limited_and_locked_down(pod)
    base = rendered["base"]
    clients = one(base, "NetworkPolicy", "clients")["spec"]["podSelector"]
    assert selects(clients, pod["metadata"]["labels"])
    assert pod["metadata"]["namespace"] == one(base, "Deployment", "optimizer")["metadata"]["namespace"]
    config = one(base, "ConfigMap", pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"])
    grpc_port = next(p["port"] for p in one(base, "Service", "optimizer")["spec"]["ports"] if p["name"] == "grpc")
    assert config["data"]["SAGA_OPTIMIZER"] == f"optimizer:{grpc_port}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_images_are_pinned(rendered, name: str) -> None:
    for obj in workloads(rendered[name]):
        for container in containers(obj):
            _, tag, digest = split_image(container["image"])
            assert digest or (tag and tag != "latest"), f"{container['image']} is not pinned"


def test_gpu_overlay_gives_each_trainer_one_gpu_on_a_gpu_node(rendered) -> None:
    trainer = one(rendered["overlays/gpu"], "Deployment", "trainer")
    spec = pod_spec(trainer)
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 and resources["requests"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert spec["nodeSelector"]
    assert trainer["spec"]["replicas"] > 1  # parallel trials
    assert one(rendered["overlays/gpu"], "Deployment", "tfserving")["spec"]["replicas"] == 2


def test_dev_overlay_needs_no_gpu(rendered) -> None:
    dev = rendered["overlays/dev"]
    assert "nvidia.com/gpu" not in yaml.safe_dump(dev)
    trainer = one(dev, "Deployment", "trainer")
    assert trainer["spec"]["replicas"] == 1
    assert "nodeSelector" not in pod_spec(trainer) and "tolerations" not in pod_spec(trainer)
    assert split_image(pod_spec(trainer)["containers"][0]["image"])[0] == "saga-trainer-cpu"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_trainer_hands_back_its_lease_and_caches_on_scratch_space(rendered, name: str) -> None:
    trainer = trainer_workload(rendered[name])
    spec = pod_spec(trainer)
    container = spec["containers"][0]
    assert container["command"] == ["saga", "trainer"]
    assert spec["terminationGracePeriodSeconds"] >= 60  # finish the batch, CompleteTrial, upload
    args = container["args"]
    cache = args[args.index("--cache-dir") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts[cache]]
    optimizer_service = one(rendered[name], "Service", "optimizer")
    grpc_port = next(p["port"] for p in optimizer_service["spec"]["ports"] if p["name"] == "grpc")
    assert args[args.index("--optimizer") + 1] == f"optimizer:{grpc_port}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_optimizer_is_a_single_writer_with_grpc_health_probes_and_a_volume(rendered, name: str) -> None:
    objects = rendered[name]
    optimizer = one(objects, "Deployment", "optimizer")
    assert optimizer["spec"]["replicas"] == 1
    assert optimizer["spec"]["strategy"]["type"] == "Recreate"
    spec = pod_spec(optimizer)
    container = spec["containers"][0]
    assert container["command"] == ["saga", "optimizer"]
    args = container["args"]
    port = int(args[args.index("--port") + 1])
    assert ports(optimizer)["grpc"] == port
    # kubelet's gRPC probes cannot speak TLS: with TLS they ask the plain-text health-only port
    health = flag(args, "--health-port")
    assert health is not None or flag(args, "--tls-cert") is None
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == int(health or port), probe
    assert ports(optimizer)["metrics"] == int(args[args.index("--metrics-port") + 1])
    db = args[args.index("--db") + 1]
    mount = max((m for m in container["volumeMounts"] if db.startswith(m["mountPath"].rstrip("/") + "/")),
                key=lambda m: len(m["mountPath"]))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    one(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_no_plaintext_secrets(rendered, name: str) -> None:
    objects = rendered[name]
    assert not [o for o in objects if o["kind"] == "Secret"], "Secrets are created out of band"
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            assert not [k for k in obj.get("data", {}) if SECRET_NAME.search(k)], obj["metadata"]["name"]
    example = {d["metadata"]["name"]: d for d in yaml.safe_load_all((K8S / "secret.example.yaml").read_text())}
    for obj in workloads(objects):
        for container in containers(obj):
            for env in container.get("env", []):
                if not SECRET_NAME.search(env["name"]):
                    continue
                if "valueFrom" in env:
                    ref = env["valueFrom"]["secretKeyRef"]
                    assert ref["name"] in example, ref  # a documented Secret, with the key
                    assert ref["key"] in example[ref["name"]]["stringData"]
                else:  # only $(VAR) references to secret-backed variables, never a literal credential
                    literal = re.sub(r"\$\([A-Za-z_][A-Za-z0-9_]*\)", "", env["value"])
                    assert not re.search(r"://[^/@]*[^:/@][^/@]*@", literal), env["name"]
                    assert not re.search(r"://[^/@]*:[^/@]+@", literal), env["name"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_variable_references_resolve(rendered, name: str) -> None:
    """Kubernetes leaves an unknown $(VAR) in args as literal text; every one must be defined."""
    config_maps = {o["metadata"]["name"]: o.get("data", {}) for o in rendered[name] if o["kind"] == "ConfigMap"}
    for obj in workloads(rendered[name]):
        for container in containers(obj):
            defined = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                defined |= set(config_maps[source["configMapRef"]["name"]])
            for text in container.get("command", []) + container.get("args", []) + [
                    e.get("value", "") for e in container.get("env", [])]:
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", text):
                    assert var in defined, f"{container['name']}: $({var}) is not defined"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_references_between_objects_resolve(rendered, name: str) -> None:
    objects = rendered[name]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for obj in workloads(objects):
        spec = pod_spec(obj)
        assert selects(obj["spec"].get("selector", {"matchLabels": {}}), pod_labels(obj)) or obj["kind"] == "Job"
        if "serviceAccountName" in spec:
            assert ("ServiceAccount", spec["serviceAccountName"]) in names
        if obj["kind"] == "StatefulSet":
            assert ("Service", obj["spec"]["serviceName"]) in names
        claim_templates = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"] for v in spec.get("volumes", [])} | claim_templates
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
        for container in containers(obj):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{container['name']} mounts unknown {mount['name']}"
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    data = one(objects, "ConfigMap", ref["name"]).get("data", {})
                    assert ref["key"] in data


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_service_reaches_pods_on_declared_ports(rendered, name: str) -> None:
    running = workloads(rendered[name])
    for service in (o for o in rendered[name] if o["kind"] == "Service"):
        selected = [w for w in running if selects({"matchLabels": service["spec"]["selector"]}, pod_labels(w))]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert all(target in ports(w) for w in selected), f"{service['metadata']['name']}:{target}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_network_policy_port_exists_on_the_pods_it_names(rendered, name: str) -> None:
    running = workloads(rendered[name])
    policies = [o for o in rendered[name] if o["kind"] == "NetworkPolicy"]
    assert any(p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies), "default deny"

    def pods(selector: dict) -> list[Object]:
        return [w for w in running if selects(selector, pod_labels(w))]

    for policy in policies:
        spec = policy["spec"]
        where = policy["metadata"]["name"]
        targets = pods(spec["podSelector"])
        if spec["podSelector"] != {"matchLabels": {"saga.io/client": "true"}}:  # clients run later
            assert targets, f"{where} selects no pod"
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                if peer.get("podSelector") == {"matchLabels": {"saga.io/client": "true"}}:
                    continue  # clients run later (k8s/saga-cli.yaml)
                if "namespaceSelector" not in peer and "podSelector" in peer:
                    assert pods(peer["podSelector"]), f"{where}: ingress peer {peer} selects no pod"
            for port in rule.get("ports", []):
                assert any(port["port"] in ports(t) for t in targets), f"{where}: ingress {port['port']}"
        for rule in spec.get("egress", []):
            peers = [p["podSelector"] for p in rule.get("to", []) if set(p) == {"podSelector"}]
            for selector in peers:
                assert pods(selector), f"{where}: egress peer {selector} selects no pod"
                for port in rule.get("ports", []):
                    assert any(port["port"] in ports(p) for p in pods(selector)), f"{where}: egress {port['port']}"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_prometheus_scrapes_what_pods_expose(rendered, name: str) -> None:
    objects = rendered[name]
    config = yaml.safe_load(one(objects, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for obj in workloads(objects):
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        if annotations.get("prometheus.io/scrape") == "true":
            assert int(annotations["prometheus.io/port"]) in ports(obj), obj["metadata"]["name"]
    monitoring = one(objects, "ConfigMap", "tfserving-monitoring")["data"]["monitoring.config"]
    assert f'path: "{jobs["tfserving"]["metrics_path"]}"' in monitoring
    tfserving = one(objects, "Deployment", "tfserving")
    args = pod_spec(tfserving)["containers"][0]["args"]
    mount = next(m for m in pod_spec(tfserving)["containers"][0]["volumeMounts"] if m["name"] == "monitoring")
    assert f"--monitoring_config_file={mount['mountPath']}/monitoring.config" in args


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_tf_serving_and_its_sync_share_the_model_volume(rendered, name: str) -> None:
    objects = rendered[name]
    spec = pod_spec(one(objects, "Deployment", "tfserving"))
    serving, sync = (next(c for c in spec["containers"] if c["name"] == n) for n in ("tfserving", "serving-sync"))
    serving_mount = next(m for m in serving["volumeMounts"] if m["mountPath"] == "/models")
    sync_mount = next(m for m in sync["volumeMounts"] if m["name"] == serving_mount["name"])
    assert serving_mount.get("readOnly") and not sync_mount.get("readOnly")
    assert sync["args"][sync["args"].index("--dest") + 1] == sync_mount["mountPath"]
    assert "--model_base_path=/models/$(MODEL_NAME)" in serving["args"]
    assert "--model_name=$(MODEL_NAME)" in serving["args"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_tf_serving_readiness_names_no_model_and_asks_tf_serving_for_the_configured_one(rendered, name: str) -> None:
    """A probe path cannot expand $(MODEL_NAME): the sync sidecar, which has it in its flags, is the probe."""
    spec = pod_spec(one(rendered[name], "Deployment", "tfserving"))
    serving, sync = (next(c for c in spec["containers"] if c["name"] == n) for n in ("tfserving", "serving-sync"))
    probes = [c.get(p, {}) for c in spec["containers"] for p in ("readinessProbe", "livenessProbe", "startupProbe")]
    assert not [p for p in probes if "/v1/models" in p.get("httpGet", {}).get("path", "")]
    assert sync["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    args = sync["args"]
    assert args[args.index("--model-name") + 1] == "$(MODEL_NAME)"
    rest = next(p["containerPort"] for p in serving["ports"] if p["name"] == "rest")
    assert f"--rest_api_port={rest}" in serving["args"]
    assert args[args.index("--serving-url") + 1] == f"http://127.0.0.1:{rest}"  # same pod, same network
