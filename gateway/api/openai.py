"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models.

The handlers only translate: HTTP in -> an ``Exchange`` (``gateway/exchange.py`` owns the request from
there) -> HTTP out, a stream chunk by chunk, anything else whole. They stay thin because the framework's
own cost per request is what remains at thousands of requests/s (docs/proxy-path-costs.md).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Stream

from gateway.admission import priority_of
from gateway.api.disconnect import until_disconnect
from gateway.config import RequestLimits
from gateway.errors import ClientDisconnected, GatewayError
from gateway.exchange import Exchange
from gateway.openai_request import chat_features, completion_features
from gateway.routing.types import RequestFeatures
from gateway.state import GatewayState, gateway_state
from gateway.telemetry.observer import RequestEvents
from gateway.upstream import forward_headers
from gateway.usage import with_usage

Decode = Callable[[bytes, RequestLimits], RequestFeatures]


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


async def _proxy(request: Request[Any, Any, Any], path: str, decode: Decode) -> Response[bytes] | Stream:
    state = gateway_state(request)
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    events = state.telemetry.begin(request_id, path, request.headers, state.config.admission.default_priority)
    try:
        exchange = await _exchange(state, request, path, decode, events)
        if not exchange.features.stream:
            # One disconnect watcher for the whole exchange: admission, routing, the upstream call, the answer.
            return await until_disconnect(request.receive, _answer_whole(exchange))
        await until_disconnect(request.receive, exchange.open())
    except GatewayError as e:
        events.refused(e.status)
        headers = {**e.headers(), "x-request-id": request_id}
        return Response(e.body(), status_code=e.status, media_type="application/json", headers=headers)
    except ClientDisconnected:
        events.refused(499)
        return Response(b"", status_code=499)
    assert exchange.upstream is not None
    if exchange.upstream.status != 200:  # an upstream error answers whole, whatever the client asked
        return await until_disconnect(request.receive, _answer_whole(exchange, opened=True))
    headers = exchange.response_headers()
    media_type = headers.pop("content-type", "text/event-stream")
    return Stream(exchange.relay(), status_code=200, headers=headers, media_type=media_type)


async def _exchange(
    state: GatewayState, request: Request[Any, Any, Any], path: str, decode: Decode, events: RequestEvents
) -> Exchange:
    """Parse the request into an ``Exchange``; a ``GatewayError`` (400, 413) for one that cannot be (every
    hostile body, over a limit or not decodable, is a ``BadRequest``: ``gateway/openai_request.py``)."""
    priority = priority_of(request.headers.get("x-priority"), state.config.admission.default_priority)
    body = await request.body()
    features = decode(body, state.config.server.limits)
    session_header = state.config.routing.session_header
    session = request.headers.get(session_header) if session_header else None
    features = dataclasses.replace(features, session_id=session, priority=priority)
    events.parsed(features, state.model_label(features.model))
    headers = forward_headers(request.headers.items(), state.config.proxy.forward_headers)
    headers["x-request-id"] = events.request_id
    strip_usage = False
    if features.stream:
        body, strip_usage = with_usage(body)
    return Exchange(state, path, features, body, headers, events, strip_usage=strip_usage)


async def _answer_whole(exchange: Exchange, *, opened: bool = False) -> Response[bytes]:
    if not opened:
        await exchange.open()
    status, body, headers = await exchange.read_whole()
    return Response(body, status_code=status, headers=headers, media_type=headers.pop("content-type", None))
