"""Checking a study's dataset at creation, when the optimizer can reach the store.

The optimizer reaches a local directory, and S3 when the SAGA_S3_* variables are in its
environment (docs/DEPLOY.md). It then refuses a dataset without a manifest or without the splits
the spec names (a default ``test`` split the upload did not make becomes "no test split"), and pins
the manifest's sha256 in the study: every task carries it, and a trainer refuses a dataset whose
manifest changed under the study. Without a reachable store the study is created unpinned.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from datastore import InvalidStoreUri, ManifestError, StoreError, StoreUnavailable, load_manifest, open_store
from datastore.retry import RetryPolicy
from trial_contract.registry import did_you_mean
from trial_contract.uris import is_s3

from .errors import FailedPrecondition, InvalidArgument
from .spec import StudySpec, parse_spec

log = logging.getLogger(__name__)
# A creation request waits seconds, not the minutes a trainer's upload may wait.
_RETRY = RetryPolicy(attempts=2, base_delay_s=0.2, max_delay_s=1.0)


class DatasetCheck:
    """Reads the manifest of a new study's dataset and pins it in the spec."""

    def __init__(self, env: Mapping[str, str] | None = None):
        self.env = dict(os.environ if env is None else env)

    def reachable(self, uri: str) -> bool:
        return not is_s3(uri) or bool(self.env.get("SAGA_S3_ENDPOINT", "").strip())

    def pin(self, spec: StudySpec, given: Mapping[str, Any]) -> StudySpec:
        """``spec`` with ``dataset.manifest_sha256`` set (and ``dataset.test`` null when the
        default test split does not exist); InvalidArgument naming the field otherwise."""
        ds = spec.dataset
        if not self.reachable(ds["uri"]):
            log.info("dataset %s: no S3 settings in the optimizer's environment; not checked", ds["uri"])
            return spec
        try:
            manifest = load_manifest(open_store(ds["uri"], env=self.env, retry=_RETRY))
        except (InvalidStoreUri, ManifestError) as e:
            raise InvalidArgument(f"dataset.uri: {e}") from None
        except StoreUnavailable as e:
            raise FailedPrecondition(f"dataset.uri: the store did not answer ({e}); try again") from None
        except StoreError as e:
            raise InvalidArgument(f"dataset.uri: cannot read the dataset: {e}") from None
        splits = manifest.splits
        raw = {**spec.raw, "dataset": dict(ds)}
        test_given = "test" in (given.get("dataset") or {})
        for role in ("train", "validation", "test"):
            name = ds[role]
            if name is None or name in splits:
                continue
            if role == "test" and not test_given:
                log.info("dataset %s has no split %r: the study runs without a test split", ds["uri"], name)
                raw["dataset"]["test"] = None
                continue
            raise InvalidArgument(f"dataset.{role}: the dataset has no split {name!r}{did_you_mean(name, splits)}; "
                                  f"its splits are {', '.join(splits)}"
                                  + (" (null: no test split)" if role == "test" else ""))
        pinned = ds.get("manifest_sha256")
        if pinned and pinned != manifest.sha256:
            raise InvalidArgument(f"dataset.manifest_sha256: the dataset's manifest is {manifest.sha256}, not "
                                  f"{pinned} (uploaded again?)")
        raw["dataset"]["manifest_sha256"] = manifest.sha256
        return parse_spec(raw)
