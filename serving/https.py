"""A threaded HTTP server that speaks HTTPS when given a ServerTLS: the TLS handshake happens in the
request's own thread, so a slow or silent client never holds up accepting the next connection, and
a renewed certificate reaches new connections without a restart (saga.security.tls)."""
from __future__ import annotations

import logging
import ssl
from http.server import ThreadingHTTPServer

from saga.security.tls import ServerTLS

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_S = 30


class ThreadedHTTPSServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler, tls: ServerTLS | None = None) -> None:
        self._tls = tls.ssl_context() if tls else None
        super().__init__(address, handler)
        if self._tls is not None:
            self.socket = self._tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request, client_address) -> None:
        if self._tls is not None:
            try:
                request.settimeout(HANDSHAKE_TIMEOUT_S)
                request.do_handshake()
                request.settimeout(None)
            except (ssl.SSLError, OSError) as exc:  # no client certificate, plain HTTP, wrong CA
                log.info("TLS handshake with %s failed: %s", client_address[0], exc)
                return
        super().finish_request(request, client_address)
