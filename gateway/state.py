"""The replica's typed application state: everything a handler reaches, built once by ``create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar import Request

from coordination import CoordinationStore, Observation
from gateway.admission import Admission
from gateway.config import GatewayConfig
from gateway.dispatch import Dispatched, Dispatcher
from gateway.fleet.backends import Fleet
from gateway.telemetry.metrics import UNKNOWN, GatewayMetrics
from gateway.usage import Usage

STATE_KEY = "gateway"


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    fleet: Fleet
    store: CoordinationStore
    dispatcher: Dispatcher
    metrics: GatewayMetrics
    clock: Callable[[], float]
    admission: Admission

    def model_label(self, model: str) -> str:
        """The model as a metric label: only names the fleet serves, so the label set stays bounded."""
        return model if self.fleet.serves_model(model) else UNKNOWN

    def record(self, model: str, backend: str, status: int, started: float, priority: str) -> None:
        self.metrics.requests.labels(model, backend, str(status), priority).inc()
        self.metrics.request_duration.labels(model, backend, str(status)).observe(self.clock() - started)

    def completed(
        self,
        dispatched: Dispatched,
        model: str,
        status: int,
        started: float,
        observation: Observation,
        usage: Usage | None,
    ) -> None:
        """An upstream answer is over: release its reservation, count it, compare predicted with real cache."""
        self.dispatcher.finish(dispatched, observation, ok=status < 500)
        self.admission.notify()
        if observation.tpot_s is not None:
            self.metrics.tpot.labels(model, dispatched.upstream.backend_id).observe(observation.tpot_s)
        self.record(model, dispatched.upstream.backend_id, status, started, dispatched.priority)
        predicted = dispatched.decision.parts.get("predicted_cached_tokens")
        if predicted is not None and usage is not None and usage.cached_tokens is not None:
            self.metrics.observe_prefix_prediction(predicted, usage.cached_tokens, usage.prompt_tokens)


def gateway_state(request: Request[Any, Any, Any]) -> GatewayState:
    state: GatewayState = request.app.state[STATE_KEY]
    return state
