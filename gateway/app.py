"""Assemble one gateway replica: ``create_app(config)`` -> a Litestar ASGI app.

Reading order of a request's path: ``api/openai.py`` (parse, hand off) -> ``dispatch.py`` (route with the
``routing/`` policy, reserve in ``coordination/``, retry) -> ``proxy.py`` (aiohttp upstream call). The
``fleet/`` package keeps the backends' health up to date in the background.

Everything is built here from the config (no module-level singletons); loop-bound resources (the aiohttp
session, the pollers) are created in the lifespan, inside the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException

from coordination import CoordinationStore, InMemoryStore
from coordination.connect import redis_client
from coordination.redis_store import RedisStore
from gateway.admission import Admission
from gateway.api.openai import chat_completions, completions, models
from gateway.api.ops import healthz, metrics_endpoint, readyz
from gateway.config import CoordinationConfig, GatewayConfig
from gateway.dispatch import Dispatcher
from gateway.errors import error_body
from gateway.fleet.backends import Fleet
from gateway.fleet.discovery import static_backends, watch_dns
from gateway.fleet.poller import HealthPoller
from gateway.proxy import UpstreamClient, new_session
from gateway.routing.prefix import PrefixHasher
from gateway.routing.registry import build_policy
from gateway.state import STATE_KEY, GatewayState
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import Tracing

log = logging.getLogger(__name__)

FIRST_POLL_WAIT_S = 2.0


def create_app(
    config: GatewayConfig,
    *,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    store: CoordinationStore | None = None,
    metrics: GatewayMetrics | None = None,
    tracing: Tracing | None = None,
) -> Litestar:
    fleet = Fleet(config.fleet.health, clock)
    fleet.set_members(static_backends(config.fleet))
    policy = build_policy(config.routing, rng)
    metrics = metrics or GatewayMetrics()
    store = store or build_store(config.coordination, metrics, clock)
    tracing = tracing or Tracing.disabled()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        session = new_session(config.proxy.max_connections)
        control = httpx.AsyncClient(headers={"accept-encoding": "identity"})
        client = UpstreamClient(session, config.proxy.timeouts, clock)
        hasher = PrefixHasher(config.routing.prefix_block_chars, config.routing.prefix_max_blocks)
        dispatcher = Dispatcher(fleet, store, policy, client, metrics, config.proxy.retries, hasher)
        admission = Admission(config.admission, fleet, store, metrics, clock)
        app.state[STATE_KEY] = GatewayState(config, fleet, store, dispatcher, metrics, clock, admission, tracing)
        poller = HealthPoller(fleet, config.fleet.health, control, store, clock)
        tasks: list[asyncio.Task[None]] = []
        await store.start()
        try:
            if config.fleet.dns is not None:
                tasks.append(asyncio.create_task(watch_dns(config.fleet.dns, fleet.set_members)))
            # One round of probes before serving, so /readyz and routing start from the truth.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FIRST_POLL_WAIT_S):
                    await poller.poll_once()
            tasks.append(asyncio.create_task(poller.run()))
            tasks.append(asyncio.create_task(_heartbeats(store, config.coordination.lease_ttl_s / 3)))
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await dispatcher.drain()
            await store.close()
            await control.aclose()
            await session.close()
            tracing.shutdown()  # flushes spans still in the batch

    return Litestar(
        route_handlers=[chat_completions, completions, models, healthz, readyz, metrics_endpoint],
        lifespan=[lifespan],
        request_max_body_size=config.server.max_body_bytes,
        exception_handlers={HTTPException: _openai_error, Exception: _internal_error},
        logging_config=None,
        openapi_config=None,
    )


def build_store(config: CoordinationConfig, metrics: GatewayMetrics, clock: Callable[[], float]) -> CoordinationStore:
    """In process unless a Redis URL is configured; then Redis, falling back to local state on failure."""
    if config.redis_url is None:
        return InMemoryStore(ewma_alpha=config.ewma_alpha, prefix_ttl_s=config.prefix_ttl_s, clock=clock)
    client = redis_client(
        config.redis_url,
        password=config.password,
        sentinels=config.sentinels,
        sentinel_service=config.sentinel_service,
        sentinel_password=config.sentinel_password,
        cluster=config.cluster,
        timeout_s=config.call_timeout_s,
    )
    return RedisStore(
        client,
        namespace=config.namespace,
        lease_ttl_s=config.lease_ttl_s,
        ewma_alpha=config.ewma_alpha,
        prefix_ttl_s=config.prefix_ttl_s,
        call_timeout_s=config.call_timeout_s,
        backoff_max_s=config.backoff_max_s,
        replica_id=f"{socket.gethostname()}-{os.getpid()}",
        observer=lambda operation, seconds: metrics.coordination_latency.labels(operation).observe(seconds),
        owns_client=True,
    )


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
