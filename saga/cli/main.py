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
import sys

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
    "dashboard": ("saga.cli.dashboard", "the web interface: live studies, trials, analysis and actions"),
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


def version() -> str:
    try:
        return importlib.metadata.version("saga")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = _available()
    parser = argparse.ArgumentParser(prog="saga", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.add_argument("--version", action="version", version=f"saga {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_) in commands.items():
        sub.add_parser(name, help=help_, add_help=False)
    # Parse only the command name first, then let the command's module build its own parser.
    known, rest = parser.parse_known_args(argv)
    module = importlib.import_module(commands[known.command][0])
    cmd_parser = argparse.ArgumentParser(prog=f"saga {known.command}",
                                         description=commands[known.command][1])
    module.configure(cmd_parser)
    args = cmd_parser.parse_args(rest)
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
