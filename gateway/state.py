"""The replica's parts, built once by ``create_app``: everything a request's ``Exchange`` and the handlers use."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from coordination import CoordinationStore
from gateway.admission import Admission
from gateway.config import GatewayConfig
from gateway.fleet.backends import Fleet
from gateway.routing.runner import Router
from gateway.telemetry.metrics import UNKNOWN
from gateway.telemetry.observer import Telemetry
from gateway.upstream import Transport

STATE_KEY = "gateway"


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    fleet: Fleet
    store: CoordinationStore
    router: Router
    admission: Admission
    transport: Transport
    telemetry: Telemetry
    clock: Callable[[], float]
    background: set[asyncio.Task[None]] = field(default_factory=set)
    """Bookkeeping the client must not wait for (releases); awaited at shutdown."""

    def model_label(self, model: str) -> str:
        """The model as a metric label: only names the fleet serves, so the label set stays bounded."""
        return model if self.fleet.serves_model(model) else UNKNOWN

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def drain(self) -> None:
        while self.background:
            await asyncio.gather(*self.background, return_exceptions=True)


def gateway_state(request: Request[Any, Any, Any]) -> GatewayState:
    state: GatewayState = request.app.state[STATE_KEY]
    return state
