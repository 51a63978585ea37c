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
from gateway.telemetry.logs import request_line
from gateway.telemetry.metrics import UNKNOWN, GatewayMetrics
from gateway.telemetry.tracing import RequestTrace, Tracing, end_span
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
    tracing: Tracing

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
        backend = dispatched.upstream.backend_id
        self.dispatcher.finish(dispatched, observation, ok=status < 500)
        self.admission.notify()
        if observation.tpot_s is not None:
            self.metrics.tpot.labels(model, backend).observe(observation.tpot_s)
        self.record(model, backend, status, started, dispatched.priority)
        predicted = dispatched.decision.parts.get("predicted_cached_tokens")
        cached = usage.cached_tokens if usage is not None else None
        if predicted is not None and usage is not None and cached is not None:
            self.metrics.observe_prefix_prediction(predicted, cached, usage.prompt_tokens)
        trace = dispatched.trace
        end_span(
            dispatched.upstream_span,
            error=None if status < 500 else f"status {status}",
            http__response__status_code=status,
        )
        if usage is not None:
            trace.set(
                gen_ai__usage__input_tokens=usage.prompt_tokens,
                gen_ai__usage__output_tokens=usage.completion_tokens,
                gateway__cached_tokens=cached,
            )
        trace.finish(status)
        ids = trace.ids()
        request_line(
            request_id=dispatched.request_id,
            trace_id=ids[0] if ids else None,
            model=model,
            backend=backend,
            status=status,
            priority=dispatched.priority,
            duration_ms=round((self.clock() - started) * 1000, 2),
            ttft_ms=round(observation.ttft_s * 1000, 2) if observation.ttft_s is not None else None,
            route=dispatched.decision.reason,
            cached_tokens=cached,
        )

    def refused(
        self, trace: RequestTrace, request_id: str, model: str, status: int, started: float, priority: str
    ) -> None:
        """The gateway answered itself (an error, a shed, a client that left before a backend was chosen)."""
        self.record(model, "none", status, started, priority)
        trace.finish(status)
        ids = trace.ids()
        request_line(
            request_id=request_id,
            trace_id=ids[0] if ids else None,
            model=model,
            status=status,
            priority=priority,
            duration_ms=round((self.clock() - started) * 1000, 2),
        )


def gateway_state(request: Request[Any, Any, Any]) -> GatewayState:
    state: GatewayState = request.app.state[STATE_KEY]
    return state
