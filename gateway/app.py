"""Assemble one gateway replica: ``create_app(config)`` -> a Litestar ASGI app.

A request's path, in reading order: ``api/openai.py`` (HTTP in and out) -> ``exchange.py`` (the request's
whole life: ``admission/`` -> ``routing/runner.py`` picks, ``coordination/`` reserves -> ``upstream/``
calls the backend -> relay -> release), with every metric, span and log line in ``telemetry/observer.py``.
The ``fleet/`` package keeps the backends' health up to date in the background.

Everything is built here from the config, once (no module-level singletons); loop-bound resources (the
connection pools, the pollers) start in the lifespan, inside the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from coordination import CoordinationStore
from gateway.admission import Admission
from gateway.api.openai import chat_completions, completions, models
from gateway.api.ops import healthz, metrics_endpoint, readyz
from gateway.config import GatewayConfig
from gateway.errors import error_body
from gateway.fleet.backends import Fleet
from gateway.fleet.discovery import static_backends, watch_dns
from gateway.fleet.poller import HealthPoller
from gateway.routing.runner import build_router
from gateway.state import STATE_KEY, GatewayState
from gateway.stores import build_store
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.observer import Telemetry
from gateway.telemetry.tracing import Tracing
from gateway.upstream import AiohttpTransport, Transport

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 2.0


def create_app(
    config: GatewayConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    store: CoordinationStore | None = None,
    transport: Transport | None = None,
    metrics: GatewayMetrics | None = None,
    tracing: Tracing | None = None,
) -> Litestar:
    """The replica's parts, each built once, and the Litestar app that serves them. Every argument after
    ``config`` replaces a real part in tests: the clock, the seeded RNG of routing's tie-breaks, the store,
    the upstream transport, the metrics registry, the tracer."""
    telemetry = Telemetry(metrics or GatewayMetrics(), tracing or Tracing.disabled(), clock)
    store = store or build_store(config.coordination, observer=telemetry.coordination_call, clock=clock)
    fleet = Fleet(config.fleet.health, clock)
    fleet.set_members(static_backends(config.fleet))
    state = GatewayState(
        config=config,
        fleet=fleet,
        store=store,
        router=build_router(config.routing, rng or random.Random(), telemetry.plugin_timer),
        admission=Admission(config.admission, store, clock),
        transport=transport or AiohttpTransport(config.proxy, clock),
        telemetry=telemetry,
        clock=clock,
    )
    return Litestar(
        route_handlers=[chat_completions, completions, models, healthz, readyz, metrics_endpoint],
        lifespan=[functools.partial(_lifespan, state)],
        state=State({STATE_KEY: state}),
        request_max_body_size=config.server.max_body_bytes,
        exception_handlers={HTTPException: _openai_error, Exception: _internal_error},
        logging_config=None,
        openapi_config=None,
    )


@contextlib.asynccontextmanager
async def _lifespan(state: GatewayState, app: Litestar) -> AsyncIterator[None]:
    """Loop-bound resources (connection pools, the pollers) start inside the server's event loop."""
    config = state.config
    control = httpx.AsyncClient(headers={"accept-encoding": "identity"})
    poller = HealthPoller(state.fleet, config.fleet.health, control, state.store, state.clock)
    tasks: list[asyncio.Task[None]] = []
    await state.transport.start()
    await state.store.start()
    try:
        if config.fleet.dns is not None:
            tasks.append(asyncio.create_task(watch_dns(config.fleet.dns, state.fleet.set_members)))
        # One round of probes before serving, so /readyz and routing start from the truth.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_POLL_WAIT_S):
                await poller.poll_once()
        tasks.append(asyncio.create_task(poller.run()))
        tasks.append(asyncio.create_task(_heartbeats(state.store, config.coordination.lease_ttl_s / 3)))
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await state.drain()
        await state.store.close()
        await control.aclose()
        await state.transport.aclose()
        state.telemetry.tracing.shutdown()  # flushes spans still in the batch


async def _heartbeats(store: CoordinationStore, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await store.heartbeat()


_TYPES = {413: ("invalid_request_error", "request_too_large"), 404: ("invalid_request_error", "not_found")}


def _openai_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's own refusals (unknown path, wrong method, body over the limit) in the OpenAI shape."""
    type_, code = _TYPES.get(exc.status_code, ("invalid_request_error", None))
    return Response(
        error_body(str(exc.detail), type_, code),
        status_code=exc.status_code,
        media_type="application/json",
        headers=exc.headers or None,
    )


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return Response(
        error_body("internal gateway error", "server_error", "internal_error"),
        status_code=500,
        media_type="application/json",
    )
