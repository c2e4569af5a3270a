"""The security flags every server and client command shares (saga.security holds the logic)."""
from __future__ import annotations

import argparse
import os

from saga.security import channels, tls, tokens


def add_server(p: argparse.ArgumentParser) -> None:
    """--tls-cert, --tls-key, --tls-client-ca and --token-hashes."""
    tls.add_server_flags(p)
    p.add_argument("--token-hashes", default=os.environ.get(tokens.ENV_HASHES),
                   help=f"require tokens: a file of 'ROLES SHA256 [PROJECTS]' lines, reread on change "
                        f"(env {tokens.ENV_HASHES}; `saga token new` prints a token and its line)")


def add_client(p: argparse.ArgumentParser) -> None:
    """--tls-ca, --tls-client-cert, --tls-client-key and --token-file."""
    channels.add_flags(p)


def server_tls(args: argparse.Namespace) -> tls.ServerTLS | None:
    return tls.server_tls_from_args(args)


def token_file(args: argparse.Namespace) -> tokens.TokenFile | None:
    return tokens.TokenFile(args.token_hashes) if getattr(args, "token_hashes", None) else None


def client(args: argparse.Namespace) -> channels.ClientSecurity:
    return channels.ClientSecurity.from_args(args)
