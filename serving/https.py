"""A threaded HTTP server that speaks HTTPS when given a ServerTLS: the TLS handshake happens in the
request's own thread, so a slow or silent client never holds up accepting the next connection, and
a renewed certificate reaches new connections without a restart (saga.security.tls)."""
from __future__ import annotations

import logging
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from saga.security.tls import ServerTLS

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_S = 30


class JSONRequestHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with JSON answers, sent in one write (the REST API and the gateway)."""

    protocol_version = "HTTP/1.1"  # keep-alive: a frame stream reuses one connection
    # One buffered write per response and no Nagle: headers and body sent as two small packets
    # otherwise meet the client's delayed ACK and cost ~40 ms a request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def send_json(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Answers ``data`` (encoded JSON); ``Connection: close`` when the connection will close."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)


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
