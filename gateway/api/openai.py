"""OpenAI-compatible endpoints: /v1/chat/completions, /v1/completions, /v1/models.

The handlers stay thin (FACTS-proxy.md: Litestar's own cost shows at thousands of requests/s): read the
body once, decode the routing fields, hand off to the dispatcher, and pass the answer through - a stream
chunk by chunk, anything else whole.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Stream

from coordination import OverCapacity
from gateway.admission import priority_of
from gateway.api.relay import relay_stream, relay_whole, until_disconnect
from gateway.dispatch import Dispatched
from gateway.errors import ClientDisconnected, GatewayError
from gateway.openai_request import chat_features, completion_features
from gateway.proxy import forward_headers
from gateway.routing.types import RequestFeatures
from gateway.state import GatewayState, gateway_state
from gateway.telemetry.tracing import RequestTrace, end_span
from gateway.usage import with_usage


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
    priority: str = state.config.admission.default_priority
    trace = state.tracing.start_request(
        f"POST {path}",
        request.headers,
        {
            "http.request.method": "POST",
            "url.path": path,
            "gen_ai.operation.name": "chat" if path.endswith("chat/completions") else "text_completion",
            "gateway.request_id": request_id,
        },
    )
    try:
        priority = priority_of(request.headers.get("x-priority"), priority)
        body = await request.body()
        features = decode(body)
        session_header = state.config.routing.session_header
        session = request.headers.get(session_header) if session_header else None
        features = dataclasses.replace(features, session_id=session, priority=priority)
        model = state.model_label(features.model)
        trace.set(gen_ai__request__model=features.model, gateway__priority=priority, gateway__stream=features.stream)
        headers = forward_headers(request.headers.items())
        headers["x-request-id"] = request_id
        if not features.stream:
            # One disconnect watcher for the whole exchange: admission, routing, the upstream call, the answer.
            whole = _answer_whole(state, path, features, body, headers, trace, model, started, request_id)
            return await until_disconnect(request.receive, whole)
        body, strip_usage = with_usage(body)
        work = _admit_and_open(state, path, features, body, headers, trace)
        dispatched = await until_disconnect(request.receive, work)
    except GatewayError as e:
        state.refused(trace, request_id, model, e.status, started, priority)
        return Response(
            e.body(),
            status_code=e.status,
            media_type="application/json",
            headers={**e.headers(), "x-request-id": request_id},
        )
    except ClientDisconnected:
        state.refused(trace, request_id, model, 499, started, priority)
        return Response(b"", status_code=499)
    response_headers = _response_headers(dispatched, request_id)
    if dispatched.upstream.status == 200:
        return Stream(
            relay_stream(state, dispatched, model, started, strip_usage=strip_usage),
            status_code=200,
            headers=response_headers,
            media_type=response_headers.pop("content-type", "text/event-stream"),
        )
    return await until_disconnect(request.receive, relay_whole(state, dispatched, model, started, response_headers))


async def _answer_whole(
    state: GatewayState,
    path: str,
    features: RequestFeatures,
    body: bytes,
    headers: dict[str, str],
    trace: RequestTrace,
    model: str,
    started: float,
    request_id: str,
) -> Response[bytes]:
    dispatched = await _admit_and_open(state, path, features, body, headers, trace)
    return await relay_whole(state, dispatched, model, started, _response_headers(dispatched, request_id))


def _response_headers(dispatched: Dispatched, request_id: str) -> dict[str, str]:
    headers = dispatched.upstream.headers()
    headers["x-request-id"] = request_id
    headers["x-gateway-backend"] = dispatched.upstream.backend_id
    headers["x-gateway-route"] = dispatched.receipt()
    return headers


async def _admit_and_open(
    state: GatewayState,
    path: str,
    features: RequestFeatures,
    body: bytes,
    headers: dict[str, str],
    trace: RequestTrace,
) -> Dispatched:
    """Admission and the pick are one step in the store: a request the store refuses at the fleet's load
    limit (another replica took the room first) goes back to waiting, until its deadline."""
    state.dispatcher.require_model(features.model)
    admission = state.admission
    deadline = admission.deadline(features.priority)
    refused = False
    span = trace.child("admission", {"gateway.priority": features.priority})
    outcome = "shed"
    try:
        while True:
            ticket = await admission.admit(features.priority, features.model, deadline, refused=refused)
            if outcome == "shed":
                outcome = "admitted"
                end_span(span, gateway__admission__outcome=outcome, gateway__admission__waited=refused)
            try:
                return await state.dispatcher.open(path, features, body, headers, ticket, trace)
            except OverCapacity:
                refused = True
            finally:
                ticket.settle(admitted=False)  # no-op once the dispatcher settled it at the reservation
    finally:
        if outcome == "shed":
            end_span(span, gateway__admission__outcome=outcome)
