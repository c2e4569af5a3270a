"""TLS and tokens in front of TF Serving, whose REST API has neither and whose gRPC API has no tokens.

The gateway runs beside TF Serving in its pod (k8s/components/security). Clients reach TF Serving's
two APIs only through it:

- gRPC: each of TF Serving's methods (``serving.access.GRPC_METHODS``) is passed on as raw bytes,
  with the caller's deadline. TF Serving's status codes and messages come back unchanged.
- REST: TF Serving's paths (``serving.access.REST_PATH``) are passed on, and nothing else. The
  metrics path is not among them: Prometheus scrapes TF Serving directly.

Both APIs check the same bearer tokens and roles as ``saga serve`` (``serving.access.POLICY``).
The ``authorization`` header is not passed on. TF Serving answers on the pod's loopback, so only
the gateway's ports are open to clients (k8s/base/networkpolicies.yaml). When TF Serving does not
answer, the caller gets UNAVAILABLE or 503, naming it.

    python -m serving.gateway --tls-cert C --tls-key K --token-hashes H \
        [--upstream-grpc 127.0.0.1:8500] [--upstream-rest 127.0.0.1:8501] [--grpc-port 8600] [--rest-port 8601]
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import signal
import sys
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc

from saga.cli import security_flags
from saga.ports import GRPC_SERVER_OPTIONS, bind_failed, check_free, split_address
from saga.security import SecurityConfigError
from saga.security.guard import Guard, GuardInterceptor, Refusal
from saga.security.tls import ServerTLS, add_port, exposure_warning
from saga.security.tokens import TokenFile
from serving.access import GRPC_METHODS, POLICY, rest_method
from serving.https import JSONRequestHandler, ThreadedHTTPSServer

log = logging.getLogger("saga.gateway")
DEFAULT_MAX_MESSAGE_BYTES = 64 << 20  # a batch of full-resolution endoscopy frames fits
UPSTREAM_TIMEOUT_S = 60.0  # a REST call to TF Serving (gRPC calls keep the caller's deadline)
# Headers that describe one hop, never passed on (RFC 9110 section 7.6.1), and the caller's token.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
               "authorization", "host", "content-length"}


@dataclass(frozen=True)
class GatewayConfig:
    upstream_grpc: str = "127.0.0.1:8500"
    upstream_rest: str = "127.0.0.1:8501"
    host: str = "0.0.0.0"
    grpc_port: int | None = 8600  # None: this API is not served
    rest_port: int | None = 8601
    tls: ServerTLS | None = None
    tokens: TokenFile | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    workers: int = 16


class _Forward(grpc.GenericRpcHandler):
    """Every allowed method, passed on to TF Serving as bytes (no messages decoded here)."""

    def __init__(self, channel: grpc.Channel, upstream: str):
        self._calls = {m: channel.unary_unary(m) for m in GRPC_METHODS}  # no (de)serializers: bytes
        self._upstream = upstream

    def service(self, details):
        call = self._calls.get(details.method)
        if call is None:
            return None  # UNIMPLEMENTED, as TF Serving answers an unknown method

        def forward(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = tuple((k, v) for k, v in context.invocation_metadata()
                             if k != "authorization" and not k.startswith(("grpc-", ":")))
            try:
                return call(request, timeout=context.time_remaining(), metadata=metadata)
            except grpc.RpcError as e:
                code, text = e.code(), e.details()
                if code == grpc.StatusCode.UNAVAILABLE:
                    text = f"TF Serving at {self._upstream} is not answering: {text}"
                context.abort(code, text or code.name)
        return grpc.unary_unary_rpc_method_handler(forward)


class _RestHandler(JSONRequestHandler):
    server: "RestGateway"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def _handle(self, method: str) -> None:
        route = rest_method(method, self.path)
        length = self.headers.get("Content-Length")
        if method == "POST" and (length is None or not length.isdigit()):
            self.close_connection = True
            return self._error(411, "a Content-Length header is required")
        size = int(length or 0)
        if route is None:
            self.close_connection = size > 0  # the unread body must not be parsed as the next request
            return self._error(404, f"no such endpoint: {method} {self.path.split('?', 1)[0]}")
        if self.server.guard is not None:
            who = self.server.guard.check(route[1], self.headers.get("Authorization"))
            if isinstance(who, Refusal):
                self.close_connection = size > 0
                return self._error(who.http_status, who.message,
                                   {"WWW-Authenticate": "Bearer"} if who.http_status == 401 else None)
        if size > self.server.config.max_message_bytes:
            self.close_connection = True
            return self._error(413, f"the request body has {size} bytes; this gateway accepts at most "
                                    f"{self.server.config.max_message_bytes}")
        body = self.rfile.read(size) if size else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            status, reply_headers, data = self.server.upstream(method, self.path, body, headers)
        except (OSError, http.client.HTTPException) as e:
            return self._error(503, f"TF Serving at {self.server.config.upstream_rest} is not answering: {e}")
        self.send_response(status)
        for key, value in reply_headers:
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, json.dumps({"error": message}).encode(), headers)


class RestGateway(ThreadedHTTPSServer):
    """HTTPS in front of TF Serving's REST API; one kept-alive upstream connection per thread."""

    def __init__(self, config: GatewayConfig, guard: Guard | None):
        self.config, self.guard = config, guard
        self._host, self._port = split_address(config.upstream_rest)
        self._local = threading.local()
        super().__init__((config.host, config.rest_port), _RestHandler, config.tls)

    def upstream(self, method: str, path: str, body: bytes | None,
                 headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):  # a kept-alive connection TF Serving closed meanwhile: once more, fresh
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=UPSTREAM_TIMEOUT_S)
            try:
                connection.request(method, path, body=body, headers=headers)
                reply = connection.getresponse()
                return reply.status, reply.getheaders(), reply.read()
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                self._local.connection = None
                closed = isinstance(e, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected))
                if attempt == 2 or not closed:
                    raise
        raise AssertionError("unreachable")


class Gateway:
    """The gateway's servers; ``start()`` binds and serves, ``stop()`` ends both."""

    def __init__(self, config: GatewayConfig):
        self.config = config
        guard = Guard(config.tokens, POLICY, "this model server") if config.tokens is not None else None
        self.grpc_port = self.rest_port = None
        self._grpc = self._rest = None
        self._channel = None
        if config.grpc_port is not None:
            check_free("gateway gRPC", config.host, config.grpc_port)
            limits = [("grpc.max_receive_message_length", config.max_message_bytes),
                      ("grpc.max_send_message_length", config.max_message_bytes)]
            self._channel = grpc.insecure_channel(config.upstream_grpc, options=limits)
            self._grpc = grpc.server(futures.ThreadPoolExecutor(config.workers, thread_name_prefix="gateway"),
                                     handlers=[_Forward(self._channel, config.upstream_grpc)],
                                     interceptors=[GuardInterceptor(guard)] if guard else [],
                                     options=[*GRPC_SERVER_OPTIONS, *limits])
            try:
                self.grpc_port = add_port(self._grpc, f"{config.host}:{config.grpc_port}", config.tls)
            except RuntimeError as e:
                raise bind_failed("gateway gRPC", config.host, config.grpc_port, e) from None
        if config.rest_port is not None:
            try:
                self._rest = RestGateway(config, guard)
            except OSError as e:
                raise bind_failed("gateway REST", config.host, config.rest_port, e) from None
            self.rest_port = self._rest.server_address[1]

    def start(self) -> None:
        warning = exposure_warning("the TF Serving gateway", self.config.host, self.config.tls, self.config.tokens)
        if warning:
            log.warning("%s", warning)
        if self._grpc is not None:
            self._grpc.start()
        if self._rest is not None:
            threading.Thread(target=self._rest.serve_forever, name="gateway-rest", daemon=True).start()

    def stop(self) -> None:
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=5).wait()
        if self._channel is not None:
            self._channel.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving.gateway", description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream-grpc", default="127.0.0.1:8500", help="TF Serving's gRPC address (plain text)")
    p.add_argument("--upstream-rest", default="127.0.0.1:8501", help="TF Serving's REST address (plain HTTP)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--grpc-port", type=int, default=8600, help="gRPC for clients; -1: none")
    p.add_argument("--rest-port", type=int, default=8601, help="REST (HTTPS with TLS) for clients; -1: none")
    p.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES)
    security_flags.add_server(p)
    return p


def config_from_args(args: argparse.Namespace) -> GatewayConfig:
    for name in ("grpc_port", "rest_port"):
        value = getattr(args, name)
        if not -1 <= value <= 65535:
            raise SecurityConfigError(f"--{name.replace('_', '-')} {value}: a port is 0-65535, or -1 for none")
    if args.max_message_bytes <= 0:
        raise SecurityConfigError(f"--max-message-bytes {args.max_message_bytes}: must be positive")
    for name in ("upstream_grpc", "upstream_rest"):
        value = getattr(args, name)
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise SecurityConfigError(f"--{name.replace('_', '-')} {value!r}: expected HOST:PORT")
    return GatewayConfig(args.upstream_grpc, args.upstream_rest, args.host,
                         None if args.grpc_port == -1 else args.grpc_port,
                         None if args.rest_port == -1 else args.rest_port,
                         security_flags.server_tls(args), security_flags.token_file(args), args.max_message_bytes)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        gateway = Gateway(config_from_args(args))
    except (SecurityConfigError, OSError) as e:
        print(f"gateway: {e}", file=sys.stderr)
        return 2
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    gateway.start()
    scheme = "https" if gateway.config.tls else "http"
    print(f"gateway listening: gRPC {gateway.grpc_port}, REST {scheme} {gateway.rest_port} "
          f"-> TF Serving {args.upstream_grpc} / {args.upstream_rest}", flush=True)
    stopped.wait()
    gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
