"""Entry point of the ``saga`` command.

Each top-level command lives in its own module under ``saga.cli`` exposing
``configure(parser)`` (add arguments / sub-commands) and ``run(args) -> int``.
Modules are imported only when their command is used, and no command module imports TensorFlow
(or anything heavy) before its ``run``: every ``--help`` and every argument error answers at once
(tests/cli/test_fast_cli.py).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import importlib.metadata
import logging
import os
import sys

from saga import runtime_paths
from saga.cli.interrupt import run_interruptible

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "optimizer": ("saga.cli.optimizer", "run the optimizer gRPC service"),
    "study": ("saga.cli.study", "create, inspect, watch and stop studies"),
    "data": ("saga.cli.data", "make synthetic datasets and upload image folders to the store"),
    "trainer": ("saga.cli.trainer", "run a trainer worker that leases and trains trials"),
    "report": ("saga.cli.report", "the seed's figures and tables for a study, as an HTML page"),
    "export": ("saga.cli.export", "export a study's best trial as a TF Serving SavedModel"),
    "serve": ("saga.cli.serve", "serve exported models over TF Serving's gRPC and REST APIs"),
    "classify": ("saga.cli.classify", "classify the frames of a video, folder or image"),
    "up": ("saga.cli.up", "run optimizer, trainers and serving as local processes"),
    "demo": ("saga.cli.demo", "the whole system end to end on synthetic data"),
    "weights": ("saga.cli.weights", "pre-train a backbone or upload a weights file for transfer learning"),
    "dashboard": ("saga.cli.dashboard", "the web interface: live studies, trials, analysis and actions"),
    "token": ("saga.cli.token", "make a bearer token with roles, and its line for the servers' token file"),
}
# Long-running services handle SIGINT/SIGTERM themselves (stop children, hand trials back); every
# other command is a client, run so that a signal ends it at once (saga.cli.interrupt).
SERVICES = {"optimizer", "trainer", "serve", "up", "demo", "dashboard"}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = (module, help_)
    return found


def _prepare(command: str, args: argparse.Namespace | None, env: dict[str, str], writable_home: bool) -> bool:
    try:
        runtime_paths.prepare(runtime_paths.for_command(command, args, env, writable_home))
    except OSError as exc:
        print(f"saga {command}: {exc}", file=sys.stderr)
        return False
    return True
def version() -> str:
    try:
        return importlib.metadata.version("saga")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ)  # as started: the derived paths honour what the caller set, not what we set
    writable_home = runtime_paths.home_writable(env)
    commands = _available()
    parser = argparse.ArgumentParser(prog="saga", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--optimizer", help="optimizer HOST:PORT, for the commands that talk to it "
                                            "(also accepted after the command)")
    parser.add_argument("--version", action="version", version=f"saga {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_) in commands.items():
        sub.add_parser(name, help=help_, add_help=False)
    # Parse only the command name first, then let the command's module build its own parser.
    known, rest = parser.parse_known_args(argv)
    # The directories the command writes, before the import (which may load Keras or matplotlib),
    # or, for commands whose paths are flags, right after parsing them.
    if known.command not in runtime_paths.OWN_PATHS and not _prepare(known.command, None, env, writable_home):
        return 1
    module = importlib.import_module(commands[known.command][0])
    cmd_parser = argparse.ArgumentParser(prog=f"saga {known.command}",
                                         description=commands[known.command][1])
    module.configure(cmd_parser)
    if known.optimizer is not None:  # `saga --optimizer HOST:PORT study list`: hand it to the command
        if not any("--optimizer" in a.option_strings for a in cmd_parser._actions):
            parser.error(f"saga {known.command} does not talk to the optimizer; --optimizer is not one of its options")
        rest = ["--optimizer", known.optimizer, *rest]
    args = cmd_parser.parse_args(rest)
    if known.command in runtime_paths.OWN_PATHS and not _prepare(known.command, args, env, writable_home):
        return 1
    logging.basicConfig(level=known.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if known.command not in SERVICES:
        return run_interruptible(lambda: int(module.run(args) or 0))
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
