"""The optimizer over real TLS on localhost (certificates from tests/certs.py): a client with the CA
works, a plain-text client, one trusting another CA and one facing an expired certificate fail at
once with a message saying what to fix; mutual TLS refuses a client without a certificate."""
from __future__ import annotations

import time

import pytest

from optimizer_svc.client import OptimizerClient
from optimizer_svc.core import OptimizerCore
from optimizer_svc.errors import Unavailable
from optimizer_svc.server import make_server
from saga.security.channels import ClientSecurity
from saga.security.tls import ClientTLS, ServerTLS, TLSConfigError, server_tls

from .conftest import small_spec


@pytest.fixture
def serve_tls(tmp_path):
    running = []

    def start(tls: ServerTLS) -> str:
        core = OptimizerCore(str(tmp_path / f"o{len(running)}.db"))
        server, port = make_server(core, "127.0.0.1:0", tls=tls)
        server.start()
        running.append((server, core))
        return f"localhost:{port}"
    yield start
    for server, core in running:
        server.stop(0).wait()
        core.close()


def refused(target: str, security: ClientSecurity | None) -> str:
    started = time.monotonic()
    with pytest.raises(Unavailable) as e:
        OptimizerClient(target, retry_for=0, security=security).list_studies()
    assert time.monotonic() - started < 10  # no waiting out an "outage" that is a configuration error
    return str(e.value)


def test_tls_client_with_the_ca_works_and_others_are_told_why_not(serve_tls, certs):
    target = serve_tls(ServerTLS(certs.server_cert, certs.server_key))
    with OptimizerClient(target, security=ClientSecurity(ClientTLS(certs.ca))) as client:
        study = client.create_study(small_spec())
        assert [s.id for s in client.list_studies()] == [study.id]
    assert "--tls-ca" in refused(target, None)  # plain text against TLS
    message = refused(target, ClientSecurity(ClientTLS(certs.other_ca)))
    assert "CERTIFICATE_VERIFY_FAILED" in message and "CA bundle" in message


def test_expired_server_certificate_is_refused_with_a_clear_message(serve_tls, certs):
    target = serve_tls(ServerTLS(certs.expired_cert, certs.expired_key))
    assert "certificate has expired" in refused(target, ClientSecurity(ClientTLS(certs.ca)))


def test_mutual_tls_refuses_a_client_without_a_certificate(serve_tls, certs):
    target = serve_tls(ServerTLS(certs.server_cert, certs.server_key, client_ca=certs.ca))
    assert "--tls-client-cert" in refused(target, ClientSecurity(ClientTLS(certs.ca)))
    with OptimizerClient(target, security=ClientSecurity(ClientTLS(certs.ca, certs.client_cert,
                                                                   certs.client_key))) as client:
        assert client.list_studies() == []


def test_incomplete_or_unreadable_tls_options_are_named(tmp_path, certs):
    with pytest.raises(TLSConfigError, match="--tls-key"):
        server_tls(str(certs.server_cert), None)
    with pytest.raises(TLSConfigError, match="needs --tls-cert"):
        server_tls(None, None, str(certs.ca))
    with pytest.raises(TLSConfigError, match="cannot read"):
        ServerTLS(tmp_path / "missing.pem", certs.server_key).grpc_credentials()
    with pytest.raises(TLSConfigError, match="needs its key"):
        ClientTLS(certs.ca, cert=certs.client_cert)


def test_health_alone_answers_kubelet_in_plain_text_beside_the_tls_port(tmp_path, certs):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from saga.v1 import optimizer_pb2 as pb
    from saga.v1 import optimizer_pb2_grpc as pb_grpc

    core = OptimizerCore(str(tmp_path / "o.db"))
    server, port = make_server(core, "127.0.0.1:0", tls=ServerTLS(certs.server_cert, certs.server_key),
                               health_address="127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as e:  # the API is not on the plain-text port
                pb_grpc.OptimizerStub(channel).ListStudies(pb.ListStudiesRequest(), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(0).wait()
        core.close()


def test_a_server_open_beyond_loopback_without_tls_or_tokens_is_warned_about(certs):
    from saga.security.tls import exposure_warning

    tls = ServerTLS(certs.server_cert, certs.server_key)
    assert exposure_warning("the optimizer", "127.0.0.1", None, None) is None  # saga up, saga demo
    assert exposure_warning("the optimizer", "0.0.0.0", tls, object()) is None
    assert "without TLS and tokens" in exposure_warning("the optimizer", "0.0.0.0", None, None)
    assert "without tokens" in exposure_warning("the optimizer", "0.0.0.0", tls, None)


def test_a_renewed_certificate_is_served_without_a_restart(serve_tls, certs, tmp_path):
    from tests.certs import install

    cert, key = install(tmp_path / "tls", certs.expired_cert, certs.expired_key)
    target = serve_tls(ServerTLS(cert, key))
    security = ClientSecurity(ClientTLS(certs.ca))
    assert "certificate has expired" in refused(target, security)

    def lists() -> bool:
        try:
            with OptimizerClient(target, retry_for=0, security=security) as client:
                return client.list_studies() == []
        except Unavailable:
            return False

    install(tmp_path / "tls", certs.server_cert, certs.server_key)  # the Secret was renewed
    deadline = time.monotonic() + 10
    while not lists():
        assert time.monotonic() < deadline, "the renewed certificate was not served within 10 s"
        time.sleep(0.2)
    (tmp_path / "tls" / "tls.crt").write_text("half-written")  # a rotation caught in the middle
    time.sleep(1.5)
    assert lists()  # the last good certificate is kept
