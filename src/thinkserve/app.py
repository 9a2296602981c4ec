"""The app factory: everything is built here, nothing at import time (imports every layer)."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Mapping

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from thinkserve.api.admin import routes as admin_routes
from thinkserve.api.app_state import AppState
from thinkserve.api.dashscope import routes as dashscope_routes
from thinkserve.api.http import json_response, new_request_id
from thinkserve.api.openai import routes as openai_routes
from thinkserve.api.openapi import openapi_document
from thinkserve.config import Settings
from thinkserve.console import page as console_page
from thinkserve.core.errors import EngineFailure, MethodNotAllowed, RouteNotFound, ThinkserveError
from thinkserve.engine.protocol import Engine
from thinkserve.engine.registry import build_engine, model_file
from thinkserve.monitor.metrics import Metrics
from thinkserve.platform.metering import ObservedGate
from thinkserve.platform.port import Gate
from thinkserve.platform.stored_keys import StoredKeys
from thinkserve.progress import file_label, waiting
from thinkserve.search.web_search import WebSearch
from thinkserve.service.flow import RequestFlow
from thinkserve.service.generation import DEPTH, GenerationService, Runtime
from thinkserve.thinking.chat_format import ChatFormat

log = logging.getLogger(__name__)


def render_error(request: Request, error: ThinkserveError) -> Response:
    """An error outside a route, in the dialect of the URL."""
    if request.url.path.startswith("/api/v1/"):
        return dashscope_routes.error_response(error, new_request_id())
    return openai_routes.error_response(error, new_request_id())


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return render_error(request, MethodNotAllowed(f"Method {request.method} is not allowed here."))
    return render_error(request, RouteNotFound(f"No route for {request.method} {request.url.path}."))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return render_error(request, EngineFailure("The server failed to process the request."))


async def health(request: Request) -> Response:
    """``{"status": "ok"}`` while every engine is up; otherwise each engine's state and reason::

        {"status": "degraded", "engines": {"default": {"state": "down", "reason": "the engine
        process was killed by SIGILL; restarting in 2 s", "restarts": 1}}}

    503 only when no engine is up: the gateway still serves the others, admin and metrics.
    """
    engines: Mapping[str, Engine] = request.app.state.engines
    states: dict[str, dict[str, object]] = {}
    for name, engine in engines.items():
        h = engine.health()
        states[name] = {"state": h.state, "reason": h.reason, "restarts": h.restarts}
    up = sum(1 for s in states.values() if s["state"] == "up")
    if up == len(states):
        return json_response({"status": "ok", "engines": states})
    return json_response({"status": "degraded", "engines": states}, status=200 if up else 503)


def create_app(
    settings: Settings,
    *,
    runtimes: Mapping[str, Runtime] | None = None,
    gate: Gate | None = None,
    tune_gc: bool = False,
) -> Starlette:
    """Build the ASGI app. Engines given in ``runtimes`` are used as is (tests); otherwise the
    engines named by the settings are loaded at startup and closed at shutdown. Without ``gate``,
    the platform (keys, limits, metering; platform.stored_keys) is started from the settings.
    Either way, metering feeds the app's metrics. ``tune_gc`` (``thinkserve serve``) sets the
    process's garbage collector for serving once started (``_tune_gc``)."""
    metrics = Metrics()
    engines: dict[str, Engine] = {}
    slots: dict[str, int | None] = {}
    """Engine -> sequences it decodes at once (``n_seq``; None without slots), for /admin/v1/engines."""
    metrics.watch_engines(lambda: engines, lambda name: _waiting(app, name))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loaded: dict[str, Runtime] = dict(runtimes or {})
        files: dict[str, str] = {}
        owned = []
        platform: StoredKeys | None = None
        search: WebSearch | None = None
        try:
            if runtimes is None:
                for name, spec in settings.engines.items():
                    path = model_file(spec, settings.data_dir)
                    files[name] = str(path)
                    log.info("loading engine %s from %s", name, path)
                    with waiting(f"loading engine {name}: {file_label(path)}"):
                        engine = await build_engine(spec, path, settings.data_dir)
                    owned.append(engine)
                    # Not every kind has slots (the fake decodes all at once): no fair line there.
                    places = getattr(spec, "n_seq", None)
                    depth = getattr(spec, "max_queue", DEPTH)
                    loaded[name] = Runtime(engine, ChatFormat(engine.tokenizer), places, depth)
            service = GenerationService(settings.models, loaded)
            engines.update({name: runtime.engine for name, runtime in loaded.items()})
            slots.update({name: runtime.places for name, runtime in loaded.items()})
            active = gate
            if active is None:
                active = platform = await StoredKeys.start(settings.platform, observer=metrics)
            observed = ObservedGate(active, metrics)
            search = await WebSearch.start(settings.search)
            app.state.thinkserve = AppState(
                settings=settings,
                flow=RequestFlow(service, observed, search),
                gate=observed,
                created=int(time.time()),
                model_files=files,
            )
            if tune_gc:
                _tune_gc()
            yield
            # Cancelled streams' usage records wait for their engines' answers: before those close.
            await app.state.thinkserve.flow.settled()
        finally:
            for engine in owned:
                await engine.aclose()
            if search is not None:
                await search.aclose()
            if platform is not None:
                await platform.aclose()

    document = orjson.dumps(openapi_document())

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    routes += openai_routes.routes()
    routes += dashscope_routes.routes()
    routes += admin_routes.routes()
    routes += console_page.routes()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    app.state.metrics = metrics
    app.state.engines = engines
    app.state.engine_slots = slots
    return app


YOUNG_COLLECTION = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def _tune_gc() -> None:
    """Set the collector for serving: what startup built (engines, tokenizers, templates, the
    platform) lives as long as the process, so it is frozen out of every later collection; and a
    request allocates hundreds of short-lived containers, so the youngest generation is collected
    every 10,000 allocations rather than 700. Unfrozen, the full collections that walk all of it
    stall every request in flight: ``bench/gateway.py --rounds 3`` against the tree before (AMD
    EPYC, 2026-11-26; the same change also made ids and templates cheaper) gave p99 37 ms instead
    of 119 at 32 concurrent requests, and 0.52 ms of gateway CPU a request instead of 0.60 at 8."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION, middle, old)


def _waiting(app: Starlette, engine: str) -> int:
    state: AppState | None = getattr(app.state, "thinkserve", None)
    return 0 if state is None else state.flow.waiting(engine)
