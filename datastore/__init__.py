"""Object store (MinIO/S3 or a local directory, behind one interface) and dataset manifests.

``open_store(uri)`` gives an :class:`ObjectStore`; dataset upload, synthesis and the trainer's
local cache live in :mod:`datastore.upload`, :mod:`datastore.synth` and :mod:`datastore.cache`
(imported on demand: they pull in Pillow/NumPy).
"""
from datastore.factory import InvalidStoreUri, open_store
from datastore.manifest import MANIFEST_KEY, Item, Manifest, ManifestError, Skipped, load_manifest
from datastore.store import (IntegrityError, InvalidKey, ObjectNotFound, ObjectStore, StoreError,
                             StoreUnavailable)

__all__ = [
    "MANIFEST_KEY", "IntegrityError", "InvalidKey", "InvalidStoreUri", "Item", "Manifest",
    "ManifestError", "ObjectNotFound", "ObjectStore", "Skipped", "StoreError", "StoreUnavailable",
    "load_manifest", "open_store",
]
