"""Passing an upstream answer back to the client, and noting what it showed on the way.

A stream goes through chunk by chunk (``relay_stream``; the server cancels it when the client leaves);
anything else is read whole (``relay_whole``) under ``until_disconnect``, a watcher on the ASGI ``receive``
channel that cancels the work if the client leaves (a non-streaming handler is not cancelled by the server
itself, see FACTS-proxy.md). Either way the reservation is released with the observed TTFT, time per output
token and usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import aiohttp
from litestar import Response
from litestar.types import Receive

from coordination import Observation
from gateway.dispatch import Dispatched
from gateway.errors import ClientDisconnected, GatewayError, UpstreamTimeout, error_body
from gateway.state import GatewayState
from gateway.usage import Usage, UsageTap, usage_of

T = TypeVar("T")


async def relay_stream(
    state: GatewayState, dispatched: Dispatched, model: str, started: float, *, strip_usage: bool
) -> AsyncIterator[bytes]:
    upstream = dispatched.upstream
    tap = UsageTap(strip=strip_usage)
    status = 200
    try:
        async for chunk in upstream.chunks():
            if tap.events == 0:
                state.metrics.ttft.labels(model, upstream.backend_id).observe(state.clock() - started)
                if dispatched.upstream_span is not None:
                    dispatched.upstream_span.add_event("first_token")
            out = tap.feed(chunk)
            if out:
                yield out
        if rest := tap.flush():
            yield rest
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
        first = upstream.first_byte_at
        observation = Observation()
        if first is not None:
            # TTFT as the client saw it (queueing included: that is what routing must predict); time per
            # output token from the events after the first (vLLM sends about one token per event).
            tpot = (state.clock() - first) / (tap.events - 1) if tap.events > 2 else None
            observation = Observation(ttft_s=first - started, tpot_s=tpot)
        state.completed(dispatched, model, status, started, observation, tap.usage)


async def relay_whole(
    state: GatewayState, dispatched: Dispatched, model: str, started: float, headers: dict[str, str]
) -> Response[bytes]:
    """Read the whole answer. Run it under ``until_disconnect``: a client that leaves cancels the read,
    which closes the upstream connection (vLLM aborts) and is recorded as 499 here, once."""
    upstream = dispatched.upstream
    status = upstream.status
    observation = Observation()
    usage: Usage | None = None
    try:
        body = await upstream.read_all()
    except GatewayError as e:
        body, status = e.body(), e.status
        headers["content-type"] = "application/json"
    except asyncio.CancelledError:
        status, body = 499, b""  # swallowed: the response goes nowhere, the bookkeeping below must happen
    else:
        if status == 200 and (usage := usage_of(body)) is not None and usage.completion_tokens > 0:
            observation = Observation(tpot_s=(state.clock() - started) / usage.completion_tokens)
    finally:
        upstream.close()
    state.completed(dispatched, model, status, started, observation, usage)
    return Response(body, status_code=status, headers=headers, media_type=headers.pop("content-type", None))


async def until_disconnect(receive: Receive, work: Coroutine[Any, Any, T]) -> T:
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
