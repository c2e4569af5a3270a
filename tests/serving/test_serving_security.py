"""Serving over real TLS with tokens: gRPC and REST (https) answer a client with the CA, a client
certificate (mutual TLS) and a token from the token file; a plain-text client, a client without a
certificate and a request without a token are refused with a clear answer; health stays open."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from saga.security import channels
from saga.security.channels import ClientSecurity
from saga.security.tls import ClientTLS, ServerTLS
from saga.security.tokens import TokenFile, line_for, new_token
from serving.client import ClassifyError, GrpcFrameClient, RestFrameClient
from tests.serving.helpers import make_images, png, start_server

TOKEN = new_token()


@pytest.fixture(scope="module")
def secured(exported, certs, tmp_path_factory):
    hashes = tmp_path_factory.mktemp("tokens") / "hashes"
    hashes.write_text(line_for(TOKEN, ["reader"]) + "\n")
    server = start_server(Path(exported.uri).parent.parent,
                          tls=ServerTLS(certs.server_cert, certs.server_key, client_ca=certs.ca),
                          tokens=TokenFile(hashes))
    yield server
    server.stop()


def image() -> bytes:
    images, _ = make_images(1, seed=3)
    return png(images[0])


def test_grpc_and_https_answer_a_client_with_ca_certificate_and_token(secured, certs):
    security = ClientSecurity(ClientTLS(certs.ca, certs.client_cert, certs.client_key), TOKEN)
    for kind, port in ((GrpcFrameClient, secured.grpc_port), (RestFrameClient, secured.rest_port)):
        client = kind(f"localhost:{port}", "demo", security=security, timeout_s=30)
        label, probability, _ = client.classify(image())
        assert label and 0 <= probability <= 1
        client.close()


def test_requests_without_a_valid_token_are_refused(secured, certs):
    tls = ClientTLS(certs.ca, certs.client_cert, certs.client_key)
    for token in (None, "saga_not-a-token"):
        client = GrpcFrameClient(f"localhost:{secured.grpc_port}", "demo", security=ClientSecurity(tls, token),
                                 timeout_s=30)
        with pytest.raises(ClassifyError, match="UNAUTHENTICATED"):
            client.classify(image())
        client.close()
        reply = requests.get(f"https://localhost:{secured.rest_port}/v1/models/demo", timeout=30,
                             verify=str(certs.ca), cert=(str(certs.client_cert), str(certs.client_key)),
                             headers=ClientSecurity(tls, token).http_headers())
        assert reply.status_code == 401 and "token" in reply.json()["error"]
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    # kubelet probes carry no token: health stays open
    with channels.channel(f"localhost:{secured.grpc_port}", ClientSecurity(tls)) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def test_plain_text_and_clients_without_a_certificate_are_refused(secured, certs):
    with pytest.raises(requests.ConnectionError):  # plain HTTP against HTTPS
        requests.get(f"http://localhost:{secured.rest_port}/v1/models/demo", timeout=30)
    with pytest.raises(requests.exceptions.SSLError):  # mutual TLS: no client certificate
        requests.get(f"https://localhost:{secured.rest_port}/v1/models/demo", timeout=30, verify=str(certs.ca))
    no_cert = GrpcFrameClient(f"localhost:{secured.grpc_port}", "demo",
                              security=ClientSecurity(ClientTLS(certs.ca), TOKEN), timeout_s=30)
    with pytest.raises(ClassifyError, match="UNAVAILABLE.*--tls-client-cert"):
        no_cert.classify(image())
    plain = GrpcFrameClient(f"localhost:{secured.grpc_port}", "demo", security=ClientSecurity(None, TOKEN),
                            timeout_s=30)
    with pytest.raises(ClassifyError, match="UNAVAILABLE.*--tls-ca"):
        plain.classify(image())


def test_a_renewed_certificate_reaches_grpc_and_https_without_a_restart(exported, certs, tmp_path):
    import time

    from tests.certs import install

    cert, key = install(tmp_path / "tls", certs.expired_cert, certs.expired_key)
    server = start_server(Path(exported.uri).parent.parent, tls=ServerTLS(cert, key))
    url = f"https://localhost:{server.rest_port}/v1/models/demo"
    security = ClientSecurity(ClientTLS(certs.ca))

    def both_answer() -> bool:
        try:
            assert requests.get(url, timeout=30, verify=str(certs.ca)).status_code == 200
            client = GrpcFrameClient(f"localhost:{server.grpc_port}", "demo", security=security, timeout_s=30)
            try:
                client.classify(image())
            finally:
                client.close()
            return True
        except (requests.exceptions.SSLError, ClassifyError):
            return False
    try:
        with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
            requests.get(url, timeout=30, verify=str(certs.ca))
        install(tmp_path / "tls", certs.server_cert, certs.server_key)
        deadline = time.monotonic() + 10
        while not both_answer():
            assert time.monotonic() < deadline, "the renewed certificate was not served within 10 s"
            time.sleep(0.2)
    finally:
        server.stop()
