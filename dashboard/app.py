"""The dashboard's ASGI app (Starlette): the page, its JSON API, live events and the actions.

| route | what |
|---|---|
| ``GET /`` | the single page (studies list and study view, ``static/``) |
| ``GET /api/config`` | whether actions are enabled, the export target |
| ``GET /api/studies`` | every study: state, strategy, progress, best value, failures |
| ``GET /api/studies/{id}`` | summary, trials, per-epoch curves, best-so-far per phase |
| ``GET /api/studies/{id}/insight`` | parameter importance, GP surrogate, the best trial's evaluation |
| ``GET /api/studies/{id}/events`` | server-sent events from WatchStudy |
| ``POST /api/studies/{id}/stop`` | stop the study (actions enabled) |
| ``POST /api/studies/{id}/export`` | ``{"model_name"}``: export the best trial (actions enabled) |
| ``GET /api/jobs/{id}`` | an export's state and output |

Errors are JSON ``{"error": ...}``: 400 for a request the caller can fix, 403 for a disabled
action, 404 for an unknown study or job, 503 when the optimizer cannot be reached.
"""
from __future__ import annotations

import contextlib
import html
import json
import urllib.parse
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response,
                                 StreamingResponse)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from optimizer_svc.client import Unavailable
from optimizer_svc.errors import FailedPrecondition, InvalidArgument, NotFound, OptimizerError, PermissionDenied

from .backend import Backend
from .config import COOKIE, MODEL_NAME, Access, DashboardConfig
from .live import relay
from .metrics import Metrics

STATIC = Path(__file__).parent / "static"
# With a token file, a browser signs in once; the token then rides in an HttpOnly cookie.
LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Saga: sign in</title></head>
<body style="font-family: sans-serif; margin: 4em auto; max-width: 28em">
<h1>Saga dashboard</h1><p>This dashboard asks for a token with the reader or client role
(<code>saga token new --role reader</code>).</p><p style="color: #b00">{message}</p>
<form method="post" action="/login"><input type="password" name="token" size="48" autofocus>
<button type="submit">Sign in</button></form></body></html>"""
MAX_BODY = 4096


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _optimizer_error(e: OptimizerError) -> JSONResponse:
    if isinstance(e, NotFound):
        return _error(404, str(e))
    if isinstance(e, InvalidArgument):
        return _error(400, str(e))
    if isinstance(e, FailedPrecondition):
        return _error(409, str(e))
    if isinstance(e, Unavailable):
        return _error(503, str(e))
    if isinstance(e, PermissionDenied):  # the dashboard's token may not do this
        return _error(403, str(e))
    return _error(502, str(e))


def make_app(config: DashboardConfig, backend: Backend | None = None, metrics: Metrics | None = None) -> Starlette:
    backend = backend or Backend(config)
    metrics = metrics or Metrics()
    access = Access(config)

    def measured(route: str, handler):
        async def timed(request: Request) -> Response:
            started = time.perf_counter()
            response = await handler(request)
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.seconds.labels(route).observe(time.perf_counter() - started)
            return response
        return timed

    async def call(fn, *args) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(fn, *args))
        except OptimizerError as e:
            return _optimizer_error(e)

    def readable(route: str, handler):
        async def guarded(request: Request) -> Response:
            refused = access.may_read(request)
            if refused:
                return _error(*refused)
            return await handler(request)
        return measured(route, guarded)

    def acting(route: str, handler):
        async def guarded(request: Request) -> Response:
            refused = access.may_act(request)
            if refused:
                return _error(*refused)
            return await handler(request)
        return measured(route, guarded)

    async def index(request: Request) -> Response:
        refused = access.may_read(request)
        if refused and refused[0] == 401:
            return RedirectResponse("/login", status_code=303)
        if refused:
            return _error(*refused)
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse(LOGIN_PAGE.format(message=""))
        body = await request.body()
        token = urllib.parse.parse_qs(body.decode(errors="replace")).get("token", [""])[0].strip() \
            if len(body) <= MAX_BODY else ""
        why = access.login(token) if token else "give a token"
        if why:
            return HTMLResponse(LOGIN_PAGE.format(message=html.escape(why)), status_code=401)
        page = RedirectResponse("/", status_code=303)
        page.set_cookie(COOKIE, token, httponly=True, secure=config.tls is not None, samesite="strict")
        return page

    async def settings(request: Request) -> Response:
        return JSONResponse({"actions": config.actions, "export_to": config.export_to if config.actions else None,
                             "optimizer": config.optimizer})

    async def studies(request: Request) -> Response:
        return await call(backend.studies)

    async def study(request: Request) -> Response:
        return await call(backend.overview, request.path_params["study_id"])

    async def insight(request: Request) -> Response:
        return await call(backend.insight, request.path_params["study_id"])

    async def events(request: Request) -> Response:
        try:
            stream = await run_in_threadpool(backend.watch, request.path_params["study_id"])
        except OptimizerError as e:
            return _optimizer_error(e)
        async def counted():
            metrics.live_streams.inc()
            try:
                async for chunk in relay(stream):
                    yield chunk
            finally:
                metrics.live_streams.dec()

        return StreamingResponse(counted(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def stop(request: Request) -> Response:
        return await call(backend.stop, request.path_params["study_id"])

    async def export(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(400, f"request body larger than {MAX_BODY} bytes")
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "body: not valid JSON")
        name = doc.get("model_name") if isinstance(doc, dict) else None
        if not isinstance(name, str) or not MODEL_NAME.match(name):
            return _error(400, "model_name: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        if not config.export_to:
            return _error(409, "no export target: start the dashboard with --export-to MODEL_BASE_URI")
        study_id = request.path_params["study_id"]
        try:
            best = await run_in_threadpool(backend.client.best_trial, study_id)
        except OptimizerError as e:
            return _optimizer_error(e)
        if best is None:
            return _error(409, f"study {study_id} has no finished trial to export yet")
        job = backend.jobs.start(study_id, name)
        return JSONResponse(job.view(), status_code=202)

    async def job(request: Request) -> Response:
        found = backend.jobs.get(request.path_params["job_id"])
        return JSONResponse(found.view()) if found else _error(404, "no such export job")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/", measured("index", index)),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/healthz", health),  # the process answers; the optimizer may still be away
        Route("/api/config", readable("config", settings)),
        Route("/api/studies", readable("studies", studies)),
        Route("/api/studies/{study_id}", readable("study", study)),
        Route("/api/studies/{study_id}/insight", readable("insight", insight)),
        Route("/api/studies/{study_id}/events", readable("events", events)),
        Route("/api/studies/{study_id}/stop", acting("stop", stop), methods=["POST"]),
        Route("/api/studies/{study_id}/export", acting("export", export), methods=["POST"]),
        Route("/api/jobs/{job_id}", readable("job", job)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        backend.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.backend = backend
    return app
