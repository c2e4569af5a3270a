"""Who may talk to Saga's services: TLS from certificate files (``tls``), bearer tokens with roles
(``tokens``), the role checks servers run on every call (``guard``) and the channel clients open
(``channels``)."""
from __future__ import annotations

import os


class SecurityConfigError(ValueError):
    """A TLS or token option cannot be used (incomplete, unreadable, malformed); the message names it."""


def file_stamp(path: str | os.PathLike) -> tuple[int, int, int]:
    """What changes when a file is rewritten or a mounted Secret's ``..data`` symlink is swapped
    (stat follows links): the files servers and clients reread on change. OSError if it is gone."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ino, st.st_size
