"""``saga token new --role ROLE [--projects A,B]``: a fresh bearer token, printed once, and the line
to add to the servers' token file (``--token-hashes``), which holds only its sha256."""
from __future__ import annotations

import argparse

from saga.security.tokens import ROLES, line_for, new_token


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = sub.add_parser("new", help="print a new token and its token-file line")
    new.add_argument("--role", action="append", choices=ROLES, required=True,
                     help="the token's role (repeatable: an ask/tell notebook needs client and worker)")
    new.add_argument("--projects", default="",
                     help="comma-separated projects the token is limited to (default: all)")


def run(args: argparse.Namespace) -> int:
    token = new_token()
    projects = [p for p in args.projects.split(",") if p.strip()]
    print(f"token (shown once; give it to the client as SAGA_TOKEN or in a SAGA_TOKEN_FILE): {token}")
    line = line_for(token, sorted(set(args.role)), projects)
    print(f"line for the token file (--token-hashes / SAGA_TOKEN_HASHES):\n{line}")
    return 0
