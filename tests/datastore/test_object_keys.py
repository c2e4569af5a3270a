"""Key validation: whatever a caller passes, a local key never leaves the store's root."""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from datastore import InvalidKey
from datastore.keys import validate_key
from datastore.local_store import LocalStore

SEGMENTS = st.sampled_from(["a", "..", ".", "", "b c", "~", "x.jpg", "/", "\\", "é", "\x00"])


@settings(max_examples=300, deadline=None)
@given(st.lists(SEGMENTS, min_size=0, max_size=5).map("/".join) | st.text(max_size=20))
def test_valid_keys_stay_inside_the_root(key: str) -> None:
    root = Path("/srv/store")
    try:
        validate_key(key)
    except InvalidKey:
        return
    resolved = Path(os.path.normpath(LocalStore(root)._path(key)))
    assert resolved.is_relative_to(root) and resolved != root
