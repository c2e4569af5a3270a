"""S3/MinIO connection settings, read from the environment in one place.

Variables: ``SAGA_S3_ENDPOINT`` (``host:port`` or ``http(s)://host:port``), ``SAGA_S3_ACCESS_KEY``
and ``SAGA_S3_SECRET_KEY`` (fallback: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, as MinIO
documents), ``SAGA_S3_SECURE`` (``true``/``false``; default from the endpoint's scheme, else true)
``SAGA_S3_REGION`` (optional; saves a bucket-location lookup) and ``SAGA_S3_RETRY_SECONDS`` (how long
to retry a call while the server is unreachable or failing; default 300, so a MinIO restart during a
trial's upload costs time, not the trial).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from datastore.retry import DEFAULT_BUDGET_S
from datastore.store import StoreError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class S3ConfigError(StoreError, ValueError):
    """The S3 environment variables are missing or malformed."""


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom to reach S3. Secrets are excluded from ``repr`` so they never reach logs."""

    endpoint: str  # host:port, no scheme
    secure: bool
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    region: str | None = None
    retry_s: float = DEFAULT_BUDGET_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "S3Settings":
        """Builds settings from environment variables; raises :class:`S3ConfigError` naming the
        variable that is wrong."""
        raw = env.get("SAGA_S3_ENDPOINT", "").strip()
        if not raw:
            raise S3ConfigError("SAGA_S3_ENDPOINT is not set; set it to the MinIO/S3 endpoint, "
                                "e.g. localhost:9000 or https://minio.example:9000")
        endpoint, scheme_secure = _parse_endpoint(raw)
        secure = _parse_secure(env.get("SAGA_S3_SECURE", ""), scheme_secure)
        access = env.get("SAGA_S3_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID") or None
        secret = env.get("SAGA_S3_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY") or None
        if (access is None) != (secret is None):
            missing = "SAGA_S3_SECRET_KEY" if secret is None else "SAGA_S3_ACCESS_KEY"
            raise S3ConfigError(f"{missing} (or its AWS_* fallback) is not set while its pair is; "
                                "set both or neither (anonymous access)")
        region = env.get("SAGA_S3_REGION", "").strip() or None
        return cls(endpoint=endpoint, secure=secure, access_key=access, secret_key=secret,
                   region=region, retry_s=_parse_seconds(env.get("SAGA_S3_RETRY_SECONDS", "")))


def _parse_endpoint(raw: str) -> tuple[str, bool | None]:
    """``host:port`` or a URL -> (``host:port``, secure implied by the scheme or None)."""
    if "://" not in raw:
        raw_url, scheme_secure = f"//{raw}", None
    else:
        raw_url, scheme_secure = raw, None
    parts = urlsplit(raw_url)
    if parts.scheme:
        if parts.scheme not in ("http", "https"):
            raise S3ConfigError(f"SAGA_S3_ENDPOINT {raw!r}: scheme must be http or https")
        scheme_secure = parts.scheme == "https"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise S3ConfigError(f"SAGA_S3_ENDPOINT {raw!r} must be host[:port] without a path")
    if parts.username or parts.password:
        raise S3ConfigError("SAGA_S3_ENDPOINT must not contain credentials; use "
                            "SAGA_S3_ACCESS_KEY and SAGA_S3_SECRET_KEY")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise S3ConfigError(f"SAGA_S3_ENDPOINT {raw!r}: bad port") from exc
    if not host:
        raise S3ConfigError(f"SAGA_S3_ENDPOINT {raw!r} has no host")
    host = f"[{host}]" if ":" in host else host  # IPv6 literal
    return (f"{host}:{port}" if port else host), scheme_secure


def _parse_secure(raw: str, scheme_secure: bool | None) -> bool:
    value = raw.strip().lower()
    if not value:
        return True if scheme_secure is None else scheme_secure
    if value not in _TRUE | _FALSE:
        raise S3ConfigError(f"SAGA_S3_SECURE must be true or false, got {raw!r}")
    secure = value in _TRUE
    if scheme_secure is not None and secure != scheme_secure:
        raise S3ConfigError(f"SAGA_S3_SECURE={raw} contradicts the scheme of SAGA_S3_ENDPOINT")
    return secure


def _parse_seconds(raw: str) -> float:
    if not raw.strip():
        return DEFAULT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86400:
        raise S3ConfigError(f"SAGA_S3_RETRY_SECONDS must be a number of seconds in [0, 86400], got {raw!r}")
    return value
