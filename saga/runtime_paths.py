"""Every path a Saga process writes, derived in one place from its command line and environment.

On Kubernetes a container's root filesystem is read-only and only the volumes its manifest declares
are writable (k8s/), so every file a process creates must land under a directory returned here:

| process            | writes                                                                 |
|--------------------|------------------------------------------------------------------------|
| ``saga optimizer`` | the database's directory (SQLite puts its WAL beside the database)    |
| ``saga trainer``   | the dataset cache; the per-attempt work directories (default: under   |
|                    | the cache, whose volume is sized for checkpoints); Keras's home, where |
|                    | downloaded weights go (default: under the cache)                       |
| every command      | the temporary directory (``TMPDIR``, else ``/tmp``); matplotlib's      |
|                    | config and Keras's home: under the home directory where it is          |
|                    | writable, else under the temporary directory                           |

``saga.cli.main`` calls :func:`prepare` before a command is imported, so that Keras and matplotlib,
which read ``KERAS_HOME`` and ``MPLCONFIGDIR`` when first imported, never try a read-only home.
``tests/deploy`` checks every rendered manifest against :func:`for_command`: each directory must be
on a writable volume of its container.
"""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

# Roles, as named in WritablePaths.dirs (and in error messages).
TMP, CACHE, WORK, KERAS_HOME, MATPLOTLIB, DATABASE = "tmp", "cache", "work", "keras home", "matplotlib", "database"
# What each library calls its directory.
_VARIABLES = {KERAS_HOME: "KERAS_HOME", MATPLOTLIB: "MPLCONFIGDIR"}
# Commands whose paths depend on their own flags; every other command gets command_paths().
OWN_PATHS = ("optimizer", "trainer")

Writable = Callable[[Path], bool]


@dataclass(frozen=True)
class WritablePaths:
    """The directories one process writes, by role, and the variables that point libraries at them."""

    dirs: dict[str, Path]
    env: dict[str, str] = field(default_factory=dict)


def temp_dir(env: Mapping[str, str]) -> Path:
    """Where :mod:`tempfile` puts files: ``TMPDIR``, ``TEMP`` or ``TMP``, else ``/tmp``."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        if env.get(name):
            return Path(env[name])
    return Path("/tmp")


def home_writable(env: Mapping[str, str]) -> bool:
    """Whether the home directory can be written (it cannot on a read-only container root)."""
    home = env.get("HOME")
    return bool(home) and os.access(home, os.W_OK)


def _paths(env: Mapping[str, str], writable_home: bool, **dirs: Path) -> WritablePaths:
    """``dirs`` plus the temporary directory and the libraries' directories, with their variables.

    A library directory set in ``env`` is kept; one given in ``dirs`` is the process's own choice;
    otherwise it stays under a writable home (the library's default), or goes under the temporary
    directory."""
    tmp = temp_dir(env)
    found = {TMP: tmp, **dirs}
    variables = {}
    for role, variable in _VARIABLES.items():
        if env.get(variable):
            found[role] = Path(env[variable])
        elif role not in found and not writable_home:
            found[role] = tmp / role.replace(" ", "_")
        if role in found:
            variables[variable] = str(found[role])
    return WritablePaths(found, variables)


def trainer_work_dir(cache_dir: str | Path, work_dir: str | Path | None) -> Path:
    """The root of the per-attempt work directories: ``work_dir``, else ``<cache_dir>/work``."""
    return Path(work_dir) if work_dir else Path(cache_dir) / "work"


def trainer_paths(cache_dir: str | Path, work_dir: str | Path | None, env: Mapping[str, str],
                  writable_home: bool) -> WritablePaths:
    """``saga trainer``: the cache, the work root, Keras's home (downloaded weights) under the cache."""
    cache = Path(cache_dir)
    return _paths(env, writable_home, **{CACHE: cache, WORK: trainer_work_dir(cache, work_dir),
                                         KERAS_HOME: cache / "keras"})


def optimizer_paths(db: str | Path, env: Mapping[str, str], writable_home: bool) -> WritablePaths:
    """``saga optimizer``: the database's directory."""
    return _paths(env, writable_home, **{DATABASE: Path(db).parent})


def command_paths(env: Mapping[str, str], writable_home: bool) -> WritablePaths:
    """Any other command: the temporary directory and the libraries' directories."""
    return _paths(env, writable_home)


def for_command(command: str, args: argparse.Namespace | None, env: Mapping[str, str],
                writable_home: bool) -> WritablePaths:
    """The paths ``saga <command>`` writes when run with the parsed ``args`` in environment ``env``
    (``args`` may be None for a command not in OWN_PATHS)."""
    if command == "trainer":
        return trainer_paths(args.cache_dir, args.work_dir, env, writable_home)
    if command == "optimizer":
        return optimizer_paths(args.db, env, writable_home)
    return command_paths(env, writable_home)


def prepare(paths: WritablePaths, environ: MutableMapping[str, str] = os.environ) -> None:
    """Points the libraries at their directories (in ``environ``) and creates every directory.

    A directory that cannot be created (e.g. on a read-only root) raises OSError naming it and its
    role before any work starts, instead of failing a trial later.
    """
    environ.update(paths.env)
    for role, path in paths.dirs.items():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot create the {role} directory {path}: {exc.strerror}; "
                                     "mount a writable volume there or choose another path") from None
