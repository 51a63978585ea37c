"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models.

The handlers stay thin (FACTS-proxy.md: Litestar's own cost shows at thousands of requests/s): read the
body once, decode the routing fields, hand off to the dispatcher, and pass the answer through - a stream
chunk by chunk, anything else whole.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import msgspec
from litestar import Request, Response, get, post
from litestar.response import Stream
from litestar.types import Receive

from coordination import Observation
from gateway.dispatch import Dispatched
from gateway.errors import ClientDisconnected, GatewayError, UpstreamTimeout, error_body
from gateway.openai_request import chat_features, completion_features
from gateway.proxy import Upstream, forward_headers
from gateway.routing.types import RequestFeatures
from gateway.state import GatewayState, gateway_state

T = TypeVar("T")


class _Usage(msgspec.Struct):
    completion_tokens: int = 0


class _UsageOnly(msgspec.Struct):
    usage: _Usage | None = None


_usage_decoder = msgspec.json.Decoder(_UsageOnly)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    return await _proxy(request, "/v1/chat/completions", chat_features)


@post("/v1/completions", status_code=200)
async def completions(request: Request[Any, Any, Any]) -> Response[bytes] | Stream:
    return await _proxy(request, "/v1/completions", completion_features)


@get("/v1/models")
async def models(request: Request[Any, Any, Any]) -> dict[str, Any]:
    created = int(time.time())
    data = [
        {"id": m, "object": "model", "created": created, "owned_by": "vllm-fleet-gateway"}
        for m in gateway_state(request).fleet.served_models()
    ]
    return {"object": "list", "data": data}


async def _proxy(
    request: Request[Any, Any, Any], path: str, decode: Callable[[bytes], RequestFeatures]
) -> Response[bytes] | Stream:
    state = gateway_state(request)
    started = state.clock()
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    model = "unknown"
    try:
        body = await request.body()
        features = decode(body)
        session_header = state.config.routing.session_header
        if session_header and (session := request.headers.get(session_header)):
            features = dataclasses.replace(features, session_id=session)
        model = state.model_label(features.model)
        headers = forward_headers(request.headers.items())
        headers["x-request-id"] = request_id
        dispatched = await _until_disconnect(request.receive, state.dispatcher.open(path, features, body, headers))
    except GatewayError as e:
        state.record(model, "none", e.status, started)
        return Response(
            e.body(),
            status_code=e.status,
            media_type="application/json",
            headers={**e.headers(), "x-request-id": request_id},
        )
    except ClientDisconnected:
        state.record(model, "none", 499, started)
        return Response(b"", status_code=499)
    upstream = dispatched.upstream
    response_headers = upstream.headers()
    response_headers["x-request-id"] = request_id
    response_headers["x-gateway-backend"] = upstream.backend_id
    response_headers["x-gateway-route"] = dispatched.receipt()
    if features.stream and upstream.status == 200:
        return Stream(
            _relay(state, dispatched, model, started),
            status_code=200,
            headers=response_headers,
            media_type=response_headers.pop("content-type", "text/event-stream"),
        )
    return await _whole(request, state, dispatched, model, started, response_headers)


async def _whole(
    request: Request[Any, Any, Any],
    state: GatewayState,
    dispatched: Dispatched,
    model: str,
    started: float,
    headers: dict[str, str],
) -> Response[bytes]:
    upstream = dispatched.upstream
    status = upstream.status
    observation = Observation()
    try:
        body = await _until_disconnect(request.receive, upstream.read_all())
    except GatewayError as e:
        body, status = e.body(), e.status
        headers["content-type"] = "application/json"
    except ClientDisconnected:
        status, body = 499, b""
    else:
        if status == 200:
            observation = _observe_whole(body, state.clock() - started)
    finally:
        upstream.close()
    state.dispatcher.finish(dispatched, observation, ok=status < 500)
    state.record(model, upstream.backend_id, status, started)
    return Response(body, status_code=status, headers=headers, media_type=headers.pop("content-type", None))


def _observe_whole(body: bytes, elapsed_s: float) -> Observation:
    try:
        usage = _usage_decoder.decode(body).usage
    except msgspec.DecodeError:
        return Observation()
    if usage is None or usage.completion_tokens <= 0:
        return Observation()
    return Observation(tpot_s=elapsed_s / usage.completion_tokens)


async def _relay(state: GatewayState, dispatched: Dispatched, model: str, started: float) -> AsyncIterator[bytes]:
    upstream = dispatched.upstream
    events = 0
    status = 200
    try:
        async for chunk in upstream.chunks():
            if events == 0:
                state.metrics.ttft.labels(model, upstream.backend_id).observe(state.clock() - started)
            events += chunk.count(b"data:")
            yield chunk
    except (UpstreamTimeout, aiohttp.ClientError) as e:
        # Headers are gone already: tell the client in-band, the way vLLM reports mid-stream errors.
        status = 504 if isinstance(e, UpstreamTimeout) else 502
        message = e.message if isinstance(e, UpstreamTimeout) else f"backend broke the stream off: {e!r}"
        yield b"data: " + error_body(message, "upstream_error", "upstream_stream_error") + b"\n\n"
    except asyncio.CancelledError:
        status = 499  # the client left; closing the upstream below makes vLLM abort the request
        raise
    finally:
        upstream.close()
        state.dispatcher.finish(dispatched, _observe_stream(upstream, events, started), ok=status < 500)
        state.record(model, upstream.backend_id, status, started)


def _observe_stream(upstream: Upstream, events: int, started: float) -> Observation:
    """TTFT as the client saw it (queueing included: that is what routing must predict); time per
    output token from the SSE events after the first (vLLM sends about one token per event)."""
    first = upstream.first_byte_at
    if first is None:
        return Observation()
    tpot = (upstream.clock() - first) / (events - 1) if events > 2 else None
    return Observation(ttft_s=first - started, tpot_s=tpot)


async def _until_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` unless the client disconnects first; then cancel it (so the upstream is aborted)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnected
    return task.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
