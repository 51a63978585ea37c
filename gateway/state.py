"""The replica's typed application state: everything a handler reaches, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request

from coordination import CoordinationStore
from gateway.config import GatewayConfig
from gateway.dispatch import Dispatcher
from gateway.fleet.backends import Fleet
from gateway.telemetry.metrics import UNKNOWN, GatewayMetrics

STATE_KEY = "gateway"


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    fleet: Fleet
    store: CoordinationStore
    dispatcher: Dispatcher
    metrics: GatewayMetrics
    clock: Callable[[], float]

    def model_label(self, model: str) -> str:
        """The model as a metric label: only names the fleet serves, so the label set stays bounded."""
        return model if self.fleet.serves_model(model) else UNKNOWN

    def record(self, model: str, backend: str, status: int, started: float) -> None:
        labels = (model, backend, str(status))
        self.metrics.requests.labels(*labels).inc()
        self.metrics.request_duration.labels(*labels).observe(self.clock() - started)


def gateway_state(request: Request[Any, Any, Any]) -> GatewayState:
    state: GatewayState = request.app.state[STATE_KEY]
    return state
