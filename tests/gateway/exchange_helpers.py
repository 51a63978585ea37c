"""An in-process gateway over a ``MockTransport``: the request path without sockets or subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from litestar import Litestar
from prometheus_client import CollectorRegistry

from coordination import CoordinationStore, InMemoryStore
from gateway.app import create_app
from gateway.config import (
    AdmissionConfig,
    BackendConfig,
    CoordinationConfig,
    FleetConfig,
    GatewayConfig,
    HealthConfig,
    RoutingConfig,
)
from gateway.fleet.vllm_metrics import EngineStats
from gateway.state import STATE_KEY, GatewayState
from gateway.telemetry.metrics import GatewayMetrics
from gateway.upstream import MockReply, MockRequest, MockTransport
from gateway.upstream.mock import Handler

MODEL = "m"


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]


def completion(text: str = "ok", completion_tokens: int = 2) -> MockReply:
    body = {
        "id": "c",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": completion_tokens, "total_tokens": 5 + completion_tokens},
    }
    return MockReply(200, [json.dumps(body).encode()])


def stream(tokens: int = 3, **reply: Any) -> MockReply:
    chunks = sse(*({"choices": [{"index": 0, "delta": {"content": f"t{i}"}}]} for i in range(tokens)))
    return MockReply(200, chunks, {"content-type": "text/event-stream"}, **reply)


def config(
    backends: int = 2, policy: str = "round_robin", redis_url: str | None = None, **admission: Any
) -> GatewayConfig:
    return GatewayConfig(
        coordination=CoordinationConfig(redis_url=redis_url),
        fleet=FleetConfig(
            backends=[BackendConfig(id=f"b{i}", url=f"http://b{i}.invalid", models=[MODEL]) for i in range(backends)],
            health=HealthConfig(interval_s=3600, healthy_threshold=1, consecutive_errors=100),
        ),
        routing=RoutingConfig(policy=policy),
        admission=AdmissionConfig(**admission) if admission else AdmissionConfig(),
    )


def idle() -> EngineStats:
    return EngineStats(0, 0, 0.0, 0, 0, 16, 1000, frozenset({MODEL}))


@dataclass
class Gateway:
    app: Litestar
    client: httpx.AsyncClient
    transport: MockTransport
    state: GatewayState
    registry: CollectorRegistry

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    async def in_flight(self) -> dict[str, int]:
        await self.state.drain()
        loads = self.state.store.cached_loads(list(self.state.fleet.backends))
        return {b: load.in_flight for b, load in loads.items()}

    def mark_scraped(self, *backend_ids: str) -> None:
        for backend_id in backend_ids or tuple(self.state.fleet.backends):
            self.state.fleet.record_scrape(backend_id, idle())


@contextlib.asynccontextmanager
async def gateway(
    handler: Handler, cfg: GatewayConfig | None = None, store: CoordinationStore | None = None
) -> AsyncIterator[Gateway]:
    """A gateway whose backends are all healthy and idle, answering through ``handler``; its store is
    ``store``, an ``InMemoryStore``, or (``store=None`` with a Redis URL configured) the configured one."""
    cfg = cfg or config()
    if store is None and cfg.coordination.redis_url is None:
        store = InMemoryStore()
    transport = MockTransport(handler)
    metrics = GatewayMetrics()
    app = create_app(cfg, rng=random.Random(1), transport=transport, metrics=metrics, store=store)
    # One event loop for the test, the app and its lifespan: litestar's AsyncTestClient runs the app in a
    # portal thread and blocks the caller, so two requests in flight at once would deadlock.
    asgi = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # litestar types its ASGI callable narrower
    async with app.lifespan(), httpx.AsyncClient(transport=asgi, base_url="http://gateway.test") as client:
        gw = Gateway(app, client, transport, app.state[STATE_KEY], metrics.registry)
        gw.mark_scraped()
        yield gw


def by_backend(replies: dict[str, MockReply | Exception]) -> Handler:
    def handler(request: MockRequest) -> MockReply:
        reply = replies[request.backend_id]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return handler


async def post_then_leave(app: Litestar, body: dict[str, Any], leave_after_s: float) -> list[dict[str, Any]]:
    """POST through the raw ASGI interface, and disconnect after ``leave_after_s``; the messages sent back."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(leave_after_s)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    return sent
