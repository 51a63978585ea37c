"""Cancelling a handler's work when its client leaves.

The server cancels a streaming response when the client disconnects, but not a handler that is still
awaiting its answer (docs/proxy-path-costs.md shows this for granian): without a watcher on the ASGI
``receive`` channel, a client that gave up would keep its backend busy until the answer was complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from litestar.types import Receive

from gateway.errors import ClientDisconnected

T = TypeVar("T")


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
