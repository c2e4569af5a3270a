"""The gateway that puts TLS and tokens in front of TF Serving (serving/gateway.py), with a real
model server behind it (``saga serve`` over plain gRPC and HTTP, as TF Serving on the pod's
loopback). Clients with the CA and a token get the same answers as from the server itself. Without
a token they are refused. Unknown paths, TF Serving's admin method and a TF Serving that is down
get a clear answer."""
from __future__ import annotations

import socket
import subprocess
import sys

import grpc
import pytest
import requests

from saga.security.channels import ClientSecurity
from saga.security.tls import ClientTLS, ServerTLS
from saga.security.tokens import TokenFile, line_for, new_token
from serving.client import ClassifyError, GrpcFrameClient, RestFrameClient
from serving.gateway import Gateway, GatewayConfig
from tests.serving.helpers import make_images, png

READER = new_token()


def image(seed: int = 3) -> bytes:
    images, _ = make_images(1, seed=seed)
    return png(images[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hashes(tmp_path_factory):
    path = tmp_path_factory.mktemp("gateway") / "hashes"
    path.write_text(line_for(READER, ["reader"]) + "\n")
    return path


def start(certs, hashes, upstream_grpc: str, upstream_rest: str) -> Gateway:
    gateway = Gateway(GatewayConfig(upstream_grpc, upstream_rest, "127.0.0.1", 0, 0,
                                    ServerTLS(certs.server_cert, certs.server_key), TokenFile(hashes)))
    gateway.start()
    return gateway


@pytest.fixture(scope="module")
def gateway(server, certs, hashes):
    g = start(certs, hashes, f"127.0.0.1:{server.grpc_port}", f"127.0.0.1:{server.rest_port}")
    yield g
    g.stop()


def test_clients_with_the_ca_and_a_token_get_what_the_server_answers(server, gateway, certs):
    security = ClientSecurity(ClientTLS(certs.ca), READER)
    for seed in (3, 4):
        frame = image(seed)
        direct = GrpcFrameClient(f"127.0.0.1:{server.grpc_port}", "demo", timeout_s=30)
        through = GrpcFrameClient(f"localhost:{gateway.grpc_port}", "demo", security=security, timeout_s=30)
        rest = RestFrameClient(f"localhost:{gateway.rest_port}", "demo", security=security, timeout_s=30)
        try:
            label, probability, version = direct.classify(frame)
            assert through.classify(frame) == (label, pytest.approx(probability), version)
            assert rest.classify(frame)[:2] == (label, pytest.approx(probability))
        finally:
            for client in (direct, through, rest):
                client.close()
    status = requests.get(f"https://localhost:{gateway.rest_port}/v1/models/demo", verify=str(certs.ca),
                          headers={"Authorization": f"Bearer {READER}"}, timeout=30)
    assert status.status_code == 200 and status.json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_no_token_unknown_paths_and_the_admin_method_are_refused(gateway, certs):
    for token in (None, "saga_made-up"):
        client = GrpcFrameClient(f"localhost:{gateway.grpc_port}", "demo", timeout_s=30,
                                 security=ClientSecurity(ClientTLS(certs.ca), token))
        with pytest.raises(ClassifyError, match="UNAUTHENTICATED"):
            client.classify(image())
        client.close()
        reply = requests.post(f"https://localhost:{gateway.rest_port}/v1/models/demo:predict", json={"instances": []},
                              verify=str(certs.ca), timeout=30,
                              headers={"Authorization": f"Bearer {token}"} if token else {})
        assert reply.status_code == 401 and "token" in reply.json()["error"]
    bearer = {"Authorization": f"Bearer {READER}"}
    for path in ("/monitoring/prometheus/metrics", "/v1/models/demo:reload", "/"):  # not TF Serving's API
        reply = requests.get(f"https://localhost:{gateway.rest_port}{path}", verify=str(certs.ca), timeout=30,
                             headers=bearer)
        assert reply.status_code == 404 and "no such endpoint" in reply.json()["error"], path
    with grpc.secure_channel(f"localhost:{gateway.grpc_port}", ClientTLS(certs.ca).grpc_credentials()) as channel:
        reload = channel.unary_unary("/tensorflow.serving.ModelService/HandleReloadConfigRequest")
        with pytest.raises(grpc.RpcError) as e:
            reload(b"", timeout=30, metadata=(("authorization", f"Bearer {READER}"),))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and "admin" in e.value.details()


def test_the_server_s_own_errors_come_back_unchanged(gateway, certs):
    bearer = {"Authorization": f"Bearer {READER}"}
    reply = requests.post(f"https://localhost:{gateway.rest_port}/v1/models/demo:predict", data=b"{not json",
                          verify=str(certs.ca), timeout=30, headers={**bearer, "Content-Type": "application/json"})
    assert reply.status_code == 400 and "JSON" in reply.json()["error"]
    missing = GrpcFrameClient(f"localhost:{gateway.grpc_port}", "no-such-model", timeout_s=30,
                              security=ClientSecurity(ClientTLS(certs.ca), READER))
    with pytest.raises(ClassifyError, match="NOT_FOUND"):
        missing.classify(image())
    missing.close()


def test_a_tf_serving_that_is_down_is_named(certs, hashes):
    down = start(certs, hashes, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    try:
        client = GrpcFrameClient(f"localhost:{down.grpc_port}", "demo", timeout_s=10,
                                 security=ClientSecurity(ClientTLS(certs.ca), READER))
        with pytest.raises(ClassifyError, match="UNAVAILABLE: TF Serving at 127.0.0.1:"):
            client.classify(image())
        client.close()
        reply = requests.get(f"https://localhost:{down.rest_port}/v1/models/demo", verify=str(certs.ca),
                             headers={"Authorization": f"Bearer {READER}"}, timeout=30)
        assert reply.status_code == 503 and "TF Serving at 127.0.0.1:" in reply.json()["error"]
    finally:
        down.stop()


@pytest.mark.parametrize("args, says", [
    (["--rest-port", "70000"], "--rest-port 70000"),
    (["--tls-cert", "/nonexistent.pem"], "--tls-key"),
    (["--upstream-rest", "8501"], "HOST:PORT"),
])
def test_bad_options_are_one_line_errors(args, says):
    done = subprocess.run([sys.executable, "-m", "serving.gateway", "--grpc-port", "0", "--rest-port", "0", *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
