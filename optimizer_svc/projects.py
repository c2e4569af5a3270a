"""Projects (tenants) and where their studies may read and write.

A projects file (YAML) names each project and the URI prefixes its studies may use::

    projects:
      gastro:
        datasets: [s3://saga/datasets/gastro/]     # dataset.uri
        weights:  [s3://saga/weights/]             # model.weights, when a URI
        artifacts: [s3://saga/artifacts/gastro/]   # artifacts_uri (null: the trainers' --store)

A study spec names its project (``project``, default ``default``). With a projects file, a study
of a project it does not name, or one whose URIs leave the project's prefixes, is refused at
creation (PERMISSION_DENIED naming the field); without one, any URI the contract accepts is
allowed (one tenant). Which projects a token may use is the token file's business
(saga.security.tokens).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trial_contract.uris import scheme

from .errors import PermissionDenied

FIELDS = {"datasets": "dataset.uri", "weights": "model.weights", "artifacts": "artifacts_uri"}


class ProjectsFileError(ValueError):
    """The projects file cannot be read or is malformed; the message names the place."""


def _segments(uri: str) -> tuple[str, ...]:
    """A URI as comparable path segments: the scheme (file:// and a plain path are the same) and
    the normalized path, so that a prefix matches whole segments only (``a/b`` is not under ``a/bc``)."""
    kind = scheme(uri)
    if kind == "s3":
        return ("s3", *[p for p in uri[len("s3://"):].split("/") if p])
    path = uri.split("://", 1)[1] if kind == "file" else uri
    root = "/" if path.startswith("/") else "."
    return ("file", root, *[p for p in os.path.normpath(path).split("/") if p not in ("", ".")])


def within(uri: str, prefix: str) -> bool:
    """True when ``uri`` is ``prefix`` or lies under it (whole segments)."""
    u, p = _segments(uri), _segments(prefix)
    return u[:len(p)] == p


@dataclass(frozen=True)
class Project:
    name: str
    prefixes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # datasets/weights/artifacts -> prefixes


@dataclass(frozen=True)
class Projects:
    """The projects file's contents; :meth:`check` is called on every study created."""

    projects: dict[str, Project]

    @classmethod
    def load(cls, path: str | Path) -> "Projects":
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as e:
            raise ProjectsFileError(f"projects file {path}: cannot read ({e.strerror})") from None
        except yaml.YAMLError as e:
            raise ProjectsFileError(f"projects file {path}: not valid YAML: {e}") from None
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: Any, source: str = "projects file") -> "Projects":
        if not isinstance(data, dict) or not isinstance(data.get("projects"), dict):
            raise ProjectsFileError(f"{source}: expected a mapping with 'projects: {{NAME: {{datasets: [...]}}}}'")
        found = {}
        for name, entry in data["projects"].items():
            entry = entry or {}
            if not isinstance(entry, dict) or set(entry) - set(FIELDS):
                raise ProjectsFileError(f"{source}: project {name!r}: only {', '.join(FIELDS)} lists are allowed")
            prefixes = {}
            for key, values in entry.items():
                if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                    raise ProjectsFileError(f"{source}: project {name!r}: {key} must be a list of URI prefixes")
                prefixes[key] = tuple(values)
            found[str(name)] = Project(str(name), prefixes)
        return cls(found)

    def check(self, project: str, uris: dict[str, str | None]) -> None:
        """PermissionDenied unless ``project`` is configured and every URI given (``datasets``,
        ``weights``, ``artifacts`` -> URI or None) lies under one of its prefixes for that kind."""
        config = self.projects.get(project)
        if config is None:
            raise PermissionDenied(f"project: {project!r} is not one of the configured projects "
                                   f"({', '.join(sorted(self.projects)) or 'none'})")
        for kind, uri in uris.items():
            if uri is None:
                continue
            allowed = config.prefixes.get(kind, ())
            if not any(within(uri, prefix) for prefix in allowed):
                where = ", ".join(allowed) if allowed else "nowhere"
                raise PermissionDenied(f"{FIELDS[kind]}: {uri!r} is outside what project {project!r} may use "
                                       f"for {kind} ({where})")


def study_uris(raw: dict[str, Any]) -> dict[str, str | None]:
    """The URIs of a spec (filled in) that a project confines."""
    weights = (raw.get("model") or {}).get("weights")
    return {"datasets": (raw.get("dataset") or {}).get("uri"),
            "weights": weights if weights not in (None, "imagenet") else None,
            "artifacts": raw.get("artifacts_uri")}
