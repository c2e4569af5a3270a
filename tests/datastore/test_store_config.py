"""Opening stores: URIs, S3 settings from the environment, retries on transient failures."""
from __future__ import annotations

import socket
import time

import pytest
from minio.error import S3Error, ServerError

from datastore import InvalidStoreUri, StoreError, StoreUnavailable, open_store
from datastore.local_store import LocalStore
from datastore.retry import RetryPolicy, call_with_retry
from datastore.s3_settings import S3ConfigError, S3Settings
from datastore.s3_store import is_transient
from tests.s3server import s3_env

BASE = {"SAGA_S3_ENDPOINT": "minio:9000", "SAGA_S3_ACCESS_KEY": "ak", "SAGA_S3_SECRET_KEY": "sk"}


def test_settings_from_env_defaults_to_tls_and_accepts_urls() -> None:
    plain = S3Settings.from_env(BASE)
    assert (plain.endpoint, plain.secure, plain.access_key) == ("minio:9000", True, "ak")
    url = S3Settings.from_env({**BASE, "SAGA_S3_ENDPOINT": "http://10.0.0.5:9000/"})
    assert (url.endpoint, url.secure) == ("10.0.0.5:9000", False)
    insecure = S3Settings.from_env({**BASE, "SAGA_S3_SECURE": "false", "SAGA_S3_REGION": "eu-1"})
    assert (insecure.secure, insecure.region) == (False, "eu-1")


def test_settings_fall_back_to_aws_variables_and_hide_secrets() -> None:
    env = {"SAGA_S3_ENDPOINT": "minio:9000", "AWS_ACCESS_KEY_ID": "AKIAFALLBACK",
           "AWS_SECRET_ACCESS_KEY": "very-secret-value"}
    settings = S3Settings.from_env(env)
    assert (settings.access_key, settings.secret_key) == ("AKIAFALLBACK", "very-secret-value")
    assert "very-secret-value" not in repr(settings) and "AKIAFALLBACK" not in repr(settings)


@pytest.mark.parametrize("env, names", [
    ({}, "SAGA_S3_ENDPOINT"),
    ({**BASE, "SAGA_S3_SECURE": "maybe"}, "SAGA_S3_SECURE"),
    ({**BASE, "SAGA_S3_ENDPOINT": "https://m:9000", "SAGA_S3_SECURE": "false"}, "SAGA_S3_SECURE"),
    ({**BASE, "SAGA_S3_ENDPOINT": "ftp://m:21"}, "SAGA_S3_ENDPOINT"),
    ({**BASE, "SAGA_S3_ENDPOINT": "m:9000/bucket"}, "SAGA_S3_ENDPOINT"),
    ({**BASE, "SAGA_S3_ENDPOINT": "m:notaport"}, "SAGA_S3_ENDPOINT"),
    ({"SAGA_S3_ENDPOINT": "m:9000", "SAGA_S3_ACCESS_KEY": "only-half"}, "SAGA_S3_SECRET_KEY"),
])
def test_bad_settings_name_the_variable(env: dict[str, str], names: str) -> None:
    with pytest.raises(S3ConfigError, match=names):
        S3Settings.from_env(env)


@pytest.mark.parametrize("uri", ["", "gs://bucket/x", "s3://Bad_Bucket/x", "s3://ab/x",
                                 "s3://bucket/a/../b", "file://otherhost/x"])
def test_bad_uris_are_refused(uri: str) -> None:
    with pytest.raises(InvalidStoreUri):
        open_store(uri, env=BASE)


def test_local_uris(tmp_path) -> None:
    assert isinstance(open_store(f"file://{tmp_path}/a"), LocalStore)
    assert open_store(f"file://{tmp_path}/a").uri == open_store(str(tmp_path / "a")).uri


def test_retry_recovers_from_transient_errors_and_gives_up_on_others() -> None:
    calls, slept = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("reset")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay_s=0.1, max_delay_s=0.1)
    assert call_with_retry(flaky, is_transient=is_transient, policy=policy, what="op",
                           sleep=slept.append) == "ok"
    assert len(calls) == 3 and len(slept) == 2 and all(0 <= s <= 0.1 for s in slept)

    def denied() -> None:
        calls.append(1)
        raise S3Error(None, "AccessDenied", "no", "r", "req", "host")

    calls.clear()
    with pytest.raises(S3Error):
        call_with_retry(denied, is_transient=is_transient, policy=policy, what="op",
                        sleep=slept.append)
    assert len(calls) == 1


def test_slowdown_and_5xx_are_transient() -> None:
    assert is_transient(S3Error(None, "SlowDown", "slow", "r", "req", "host"))
    assert not is_transient(S3Error(None, "NoSuchKey", "gone", "r", "req", "host"))
    assert is_transient(ServerError("bad gateway", 502)) and not is_transient(ServerError("forbidden", 403))


def test_unreachable_endpoint_fails_fast_with_store_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**BASE, "SAGA_S3_ENDPOINT": f"127.0.0.1:{port}", "SAGA_S3_SECURE": "false",
           "SAGA_S3_REGION": "us-east-1", "SAGA_S3_SECRET_KEY": "hidden-secret"}
    store = open_store("s3://bucket/x", env=env,
                       retry=RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.01))
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="3 attempts") as failure:
        store.get_bytes("k")
    assert time.monotonic() - started < 5
    assert "hidden-secret" not in str(failure.value)


def test_tls_to_a_plain_http_endpoint_says_to_turn_tls_off(s3_endpoint: str) -> None:
    """MinIO listens on plain HTTP by default; TLS against it is a configuration error, not an outage."""
    env = {**s3_env(s3_endpoint), "SAGA_S3_SECURE": "true"}
    store = open_store("s3://bucket/x", env=env, retry=RetryPolicy(attempts=6, base_delay_s=0.5, max_delay_s=1.0))
    started = time.monotonic()
    with pytest.raises(StoreError, match="SAGA_S3_SECURE=false") as failure:
        store.get_bytes("k")
    assert not isinstance(failure.value, StoreUnavailable)  # not retried: one attempt, no backoff
    assert time.monotonic() - started < 2.5
