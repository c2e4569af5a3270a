"""A TCP proxy that can drop every connection for a while: an S3 server restarting, a network
partition. Used between trainers and the test S3 server (tests/e2e)."""
from __future__ import annotations

import socket
import threading
import time


class DroppingProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream``. Once armed with ``trigger`` bytes, the first
    client data containing them starts an outage: every open connection is cut and every new one
    is closed at once, for ``outage_s`` seconds."""

    def __init__(self, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._trigger: bytes | None = None
        self._outage_s = 0.0
        self.down_until = 0.0
        self.triggered_at: float | None = None
        self.dropped = 0
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def arm(self, trigger: bytes, outage_s: float) -> None:
        with self._lock:
            self._trigger, self._outage_s = trigger, outage_s

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self._cut_all()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                self.dropped += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and self._trigger is not None and self._trigger in data:
                    self._start_outage()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                self._discard(s)

    def _start_outage(self) -> None:
        with self._lock:
            if self._trigger is None:
                return
            self._trigger = None
            self.triggered_at = time.monotonic()
            self.down_until = self.triggered_at + self._outage_s
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            victims, self._open = list(self._open), set()
        for s in victims:
            self.dropped += 1
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _discard(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        try:
            s.close()
        except OSError:
            pass
