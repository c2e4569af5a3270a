"""The dashboard over HTTPS with tokens, in front of an optimizer with TLS and tokens: its API
needs a bearer token (reader reads, client acts), and it reaches the optimizer with its own CA and
token from the environment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from optimizer_svc.core import OptimizerCore
from optimizer_svc.server import make_server
from saga.security.tls import ServerTLS
from saga.security.tokens import TokenFile, line_for, new_token

from .conftest import stop

DASHBOARD, READER, CLIENT = new_token(), new_token(), new_token()


@dataclass(frozen=True)
class Secured:
    url: str        # the dashboard, https
    optimizer: str  # HOST:PORT, TLS and tokens
    hashes: Path    # the token file of both


def start_dashboard(optimizer: str, certs, cert: Path, key: Path, hashes: Path) -> tuple[subprocess.Popen, str]:
    """A dashboard process serving HTTPS with ``cert``; its URL (https://localhost:PORT/)."""
    env = {**os.environ, "SAGA_TLS_CA": str(certs.ca), "SAGA_TOKEN": DASHBOARD}
    p = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "dashboard", "--optimizer", optimizer,
                          "--port", "0", "--enable-actions", "--tls-cert", str(cert),
                          "--tls-key", str(key), "--token-hashes", str(hashes)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    line = p.stdout.readline()
    assert "dashboard listening on https://" in line, line + p.stdout.read()
    return p, line.split()[3].replace("127.0.0.1", "localhost")


@pytest.fixture(scope="module")
def secured(tmp_path_factory, certs):
    root = tmp_path_factory.mktemp("secured")
    hashes = root / "hashes"
    hashes.write_text("\n".join([line_for(DASHBOARD, ["reader"]), line_for(READER, ["reader"]),
                                 line_for(CLIENT, ["client"])]) + "\n")
    core = OptimizerCore(str(root / "opt.db"))
    server, port = make_server(core, "127.0.0.1:0", tls=ServerTLS(certs.server_cert, certs.server_key),
                               tokens=TokenFile(hashes))
    server.start()
    p, url = start_dashboard(f"localhost:{port}", certs, certs.server_cert, certs.server_key, hashes)
    yield Secured(url, f"localhost:{port}", hashes)
    stop(p)
    server.stop(grace=None).wait()
    core.close()


def get(url: str, certs, token: str | None, method: str = "GET") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, url, headers=headers, verify=str(certs.ca), timeout=30)


def test_reader_reads_through_the_dashboard_and_the_optimizer_and_cannot_act(secured, certs):
    reply = get(f"{secured.url}api/studies", certs, READER)
    assert reply.status_code == 200, reply.text  # the dashboard's own token and CA reached the optimizer
    refused = get(f"{secured.url}api/studies/st-none/stop", certs, READER, "POST")
    assert refused.status_code == 403 and "client" in refused.json()["error"]


def test_no_token_or_an_unknown_one_is_401(secured, certs):
    for token in (None, "saga_made-up"):
        reply = get(f"{secured.url}api/studies", certs, token)
        assert reply.status_code == 401 and "token" in reply.json()["error"]
    with pytest.raises(requests.exceptions.SSLError):  # HTTPS with a certificate this CA did not sign
        requests.get(f"{secured.url}api/studies", verify=str(certs.other_ca), timeout=30)


def test_live_events_reach_the_page_through_tls_and_tokens(secured, certs):
    from optimizer_svc.client import OptimizerClient
    from saga.security.channels import ClientSecurity
    from saga.security.tls import ClientTLS
    from tests.optimizer.conftest import small_spec

    optimizer = secured.optimizer
    with OptimizerClient(optimizer, security=ClientSecurity(ClientTLS(certs.ca), CLIENT)) as client:
        study = client.create_study(small_spec())
    with requests.get(f"{secured.url}api/studies/{study.id}/events", headers={"Authorization": f"Bearer {READER}"},
                      verify=str(certs.ca), timeout=30, stream=True) as events:
        assert events.status_code == 200
        # the first event relayed from the optimizer's WatchStudy (the dashboard's token went with it)
        first = next(line for line in events.iter_lines() if line.startswith(b"data:"))
    assert json.loads(first[5:])["study_id"] == study.id, first  # an event, not a failure


def test_a_browser_signs_in_once_and_its_token_rides_in_an_http_only_cookie(secured, certs):
    browser = requests.Session()
    page = browser.get(secured.url, verify=str(certs.ca), timeout=30)
    assert page.url.endswith("/login") and 'name="token"' in page.text  # sent to sign in first
    refused = browser.post(f"{secured.url}login", data={"token": "saga_made-up"}, verify=str(certs.ca), timeout=30)
    assert refused.status_code == 401 and "does not know this token" in refused.text
    signed = browser.post(f"{secured.url}login", data={"token": READER}, verify=str(certs.ca), timeout=30,
                          allow_redirects=False)
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    assert 'id="main"' in browser.get(secured.url, verify=str(certs.ca), timeout=30).text  # the page itself
    assert browser.get(f"{secured.url}api/studies", verify=str(certs.ca), timeout=30).status_code == 200
    assert browser.post(f"{secured.url}api/studies/st-x/stop", verify=str(certs.ca), timeout=30).status_code == 403


def test_a_renewed_certificate_is_served_without_a_restart(secured, certs, tmp_path):
    from tests.certs import install

    cert, key = install(tmp_path / "tls", certs.expired_cert, certs.expired_key)
    p, url = start_dashboard(secured.optimizer, certs, cert, key, secured.hashes)
    try:
        with pytest.raises(requests.exceptions.SSLError, match="certificate has expired"):
            get(f"{url}api/studies", certs, READER)
        install(tmp_path / "tls", certs.server_cert, certs.server_key)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert get(f"{url}api/studies", certs, READER).status_code == 200
                break
            except requests.exceptions.SSLError:
                assert time.monotonic() < deadline, "the renewed certificate was not served within 10 s"
                time.sleep(0.2)
    finally:
        stop(p)
