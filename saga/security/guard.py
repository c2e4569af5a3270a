"""Who may call what: a role policy checked on every gRPC call (server interceptors, grpc.aio and
threaded) and HTTP request, answering UNAUTHENTICATED / 401 for a missing or unknown token and
PERMISSION_DENIED / 403 for a role that is not allowed, with a message saying what to do.

Health checks and reflection stay open (kubelet probes carry no token).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import grpc

from .tokens import ENV_TOKEN, ENV_TOKEN_FILE, Principal, TokenFile, bearer

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
HTTP_STATUS = {grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403}


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    message: str

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class Guard:
    """``policy``: method name (the last part of a gRPC method, or any label for HTTP) -> the roles
    allowed (admin always is). A method the policy does not name is admin-only. ``on_refusal``:
    called with (method name, status code name) for every gRPC call refused (a metric)."""

    def __init__(self, tokens: TokenFile, policy: Mapping[str, Sequence[str]], service: str,
                 on_refusal: Callable[[str, str], None] | None = None):
        self.tokens, self.policy, self.service = tokens, policy, service
        self.on_refusal = on_refusal

    def principal(self, authorization: str | None) -> Principal | Refusal:
        token = bearer(authorization)
        if token is None:
            return Refusal(grpc.StatusCode.UNAUTHENTICATED,
                           f"{self.service} requires a token: send 'authorization: Bearer TOKEN' "
                           f"(saga clients read env {ENV_TOKEN} or {ENV_TOKEN_FILE})")
        found = self.tokens.lookup(token)
        if found is None:
            return Refusal(grpc.StatusCode.UNAUTHENTICATED,
                           f"{self.service} does not know this token (wrong, revoked or rotated); "
                           "ask its operator for a current one")
        return found

    def check(self, method: str, authorization: str | None) -> Principal | Refusal:
        """The caller's Principal, or why it is refused."""
        name = method.rsplit("/", 1)[-1]
        who = self.principal(authorization)
        if isinstance(who, Refusal):
            return who
        allowed = tuple(self.policy.get(name, ()))
        if not who.may(*allowed):
            need = " or ".join([*allowed, "admin"])
            return Refusal(grpc.StatusCode.PERMISSION_DENIED,
                           f"{name} needs the {need} role; this token ({who.name}) has "
                           f"{', '.join(sorted(who.roles))}")
        return who

    def check_call(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Refusal | None:
        if method.startswith(OPEN_PREFIXES):
            return None
        auth = next((v for k, v in metadata or () if k == "authorization"), None)
        result = self.check(method, auth if isinstance(auth, str) else None)
        if not isinstance(result, Refusal):
            return None
        if self.on_refusal is not None:
            self.on_refusal(method.rsplit("/", 1)[-1], result.code.name)
        return result


def _refusing(handler: grpc.RpcMethodHandler, refusal: Refusal, asynchronous: bool) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that only aborts with ``refusal``."""
    if asynchronous:
        async def behaviour(request, context):
            await context.abort(refusal.code, refusal.message)
    else:
        def behaviour(request, context):
            context.abort(refusal.code, refusal.message)
    kind = {(False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler}[
        (handler.request_streaming, handler.response_streaming)]
    return kind(behaviour, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)


class AioGuardInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, guard: Guard):
        self.guard = guard

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        refusal = self.guard.check_call(details.method, details.invocation_metadata)
        return handler if refusal is None or handler is None else _refusing(handler, refusal, True)


class GuardInterceptor(grpc.ServerInterceptor):
    def __init__(self, guard: Guard):
        self.guard = guard

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        refusal = self.guard.check_call(details.method, details.invocation_metadata)
        return handler if refusal is None or handler is None else _refusing(handler, refusal, False)
