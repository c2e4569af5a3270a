"""Who may talk to Saga's services: TLS from certificate files (``tls``), bearer tokens with roles
(``tokens``), the role checks servers run on every call (``guard``) and the channel clients open
(``channels``)."""
from __future__ import annotations


class SecurityConfigError(ValueError):
    """A TLS or token option cannot be used (incomplete, unreadable, malformed); the message names it."""
