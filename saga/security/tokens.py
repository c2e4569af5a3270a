"""Bearer tokens with roles: the token file servers read, and the token clients present.

The file holds one line per token, never the token itself::

    # ROLES            SHA256 OF THE TOKEN                                                 PROJECTS
    worker             9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08    kvasir,nerthus
    client,worker      60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752

Roles: ``worker`` (lease, report, complete), ``client`` (create, read, stop studies), ``reader``
(read only), ``admin`` (everything). PROJECTS (comma-separated, optional; ``*`` or absent: all)
limits which studies a token sees and changes. ``saga token new`` prints a fresh token and its line.

The server rereads the file when it changes (a Kubernetes Secret mounted as a file is swapped on
rotation): a token removed from the file is refused from the next call on.
"""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from saga.security import SecurityConfigError, file_stamp

log = logging.getLogger(__name__)

ROLES = ("worker", "client", "reader", "admin")
ENV_TOKEN, ENV_TOKEN_FILE, ENV_HASHES = "SAGA_TOKEN", "SAGA_TOKEN_FILE", "SAGA_TOKEN_HASHES"
TOKEN_PREFIX = "saga_"
ALL_PROJECTS: frozenset[str] = frozenset({"*"})


class TokenFileError(SecurityConfigError):
    """A line of the token file is malformed; the message names the line (never a token)."""


@dataclass(frozen=True)
class Principal:
    """Who a valid token is: its roles, the projects it may touch (``*``: all) and a name for logs
    (the first 8 hex digits of the hash, which reveal nothing of the token)."""

    roles: frozenset[str]
    projects: frozenset[str]
    name: str

    def may(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)

    def sees(self, project: str) -> bool:
        return "*" in self.projects or project in self.projects


def digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def line_for(token: str, roles: list[str], projects: list[str] | None = None) -> str:
    """The token file line for ``token`` (its hash, never the token)."""
    return " ".join([",".join(roles), digest(token), *([",".join(projects)] if projects else [])])


def parse(text: str, source: str = "token file") -> dict[str, Principal]:
    """sha256 -> Principal for every line; TokenFileError naming the first bad line."""
    found: dict[str, Principal] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        where = f"{source} line {number}"
        if len(fields) not in (2, 3):
            raise TokenFileError(f"{where}: expected 'ROLES SHA256 [PROJECTS]', got {len(fields)} fields")
        roles = frozenset(fields[0].split(","))
        unknown = sorted(roles - set(ROLES))
        if unknown:
            raise TokenFileError(f"{where}: unknown role {unknown[0]!r}; roles are {', '.join(ROLES)}")
        sha = fields[1].lower().removeprefix("sha256:")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise TokenFileError(f"{where}: the second field must be the token's sha256 (64 hex digits), "
                                 "not the token; `saga token new` prints the line")
        projects = frozenset(p for p in fields[2].split(",") if p) if len(fields) == 3 else ALL_PROJECTS
        found[sha] = Principal(roles, projects or ALL_PROJECTS, sha[:8])
    return found


class TokenFile:
    """The server's view of a token file, reread when it changes (checked on every lookup with a
    stat; a file that became unreadable or malformed keeps the last good contents, logged)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._tokens = parse(self._read(), str(self.path))  # a bad file at start is an error
        self._stamp = self._stat()

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except OSError as e:
            raise TokenFileError(f"token file {self.path}: cannot read ({e.strerror})") from None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            return file_stamp(self.path)
        except OSError:
            return None

    def lookup(self, token: str) -> Principal | None:
        self._refresh()
        return self._tokens.get(digest(token))

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp or stamp is None:
            return
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                self._tokens = parse(self._read(), str(self.path))
                log.info("token file %s reread: %d tokens", self.path, len(self._tokens))
            except TokenFileError as e:
                log.error("%s; keeping the previous tokens", e)
            self._stamp = stamp


def client_token_source(env: Mapping[str, str] = os.environ,
                        token_file: str | None = None) -> tuple[str | None, "ClientTokenFile | None"]:
    """Where a client's token comes from: (token, None) from env SAGA_TOKEN, or (None, a
    ClientTokenFile) for ``token_file`` (a flag) or the file named by SAGA_TOKEN_FILE; (None, None)
    when none is set. An unreadable file is a TokenFileError now, not at the first call."""
    path = token_file or (None if env.get(ENV_TOKEN) else env.get(ENV_TOKEN_FILE))
    if path:
        source = ClientTokenFile(path)
        source.current()
        return None, source
    return (env.get(ENV_TOKEN) or "").strip() or None, None


class ClientTokenFile:
    """A client's token in a file (a mounted Secret), reread when the file changes, so that a
    long-running client (a trainer) follows a rotation without a restart."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._token: str | None = None

    def current(self) -> str | None:
        try:
            stamp = file_stamp(self.path)
        except OSError as e:
            if self._stamp is None:
                raise TokenFileError(f"token file {self.path}: cannot read ({e.strerror})") from None
            return self._token  # mid-rotation: keep the last one read
        if stamp != self._stamp:
            with self._lock:
                try:
                    self._token = self.path.read_text().strip() or None
                except OSError as e:
                    if self._stamp is None:
                        raise TokenFileError(f"token file {self.path}: cannot read ({e.strerror})") from None
                    return self._token
                self._stamp = stamp
        return self._token


def bearer(header: str | None) -> str | None:
    """The token of an ``authorization: Bearer TOKEN`` value, or None."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
