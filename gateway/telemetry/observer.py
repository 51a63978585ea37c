"""Telemetry at one seam: every metric, span and log line of a request is written here, and only here.

The request path (``gateway/exchange.py``, ``gateway/admission/``) calls hooks on a ``RequestEvents``
that ``Telemetry.begin`` hands it; the business modules import neither prometheus_client nor
opentelemetry. The hooks, in the order a request meets them:

    parsed -> admission_started -> [queued -> left_queue] -> admission_done | shed
           -> route_started -> routed | route_refused -> upstream_sending -> [upstream_error]
           -> [upstream_abandoned -> route_started ...] -> first_token -> finished | refused
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from gateway.telemetry.logs import request_line, request_lines_on
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import RequestTrace, Tracing, end_span

if TYPE_CHECKING:
    from coordination import Observation
    from gateway.routing.runner import RouteDecision
    from gateway.routing.types import RequestFeatures
    from gateway.usage import Usage


class Telemetry:
    """The replica's metrics and tracer, and the factory of each request's ``RequestEvents``."""

    def __init__(self, metrics: GatewayMetrics, tracing: Tracing, clock: Callable[[], float]) -> None:
        self.metrics = metrics
        self.tracing = tracing
        self.clock = clock

    def begin(self, request_id: str, path: str, headers: Mapping[str, str], priority: str) -> RequestEvents:
        operation = "chat" if path.endswith("chat/completions") else "text_completion"
        attributes = {
            "http.request.method": "POST",
            "url.path": path,
            "gen_ai.operation.name": operation,
            "gateway.request_id": request_id,
        }
        trace = self.tracing.start_request(f"POST {path}", headers, attributes)
        events = RequestEvents(self, request_id, trace, self.clock())
        events.priority = priority
        return events

    def plugin_timer(self, extension_point: str, plugin_type: str, plugin_name: str) -> Callable[[float], None]:
        """The routing runner's timer: one histogram for every filter, scorer and picker, its labels bound
        once when the router is built (a labels lookup per plugin per request would cost more than the plugin)."""
        return self.metrics.plugin_duration.labels(extension_point, plugin_type, plugin_name).observe

    def coordination_call(self, operation: str, seconds: float) -> None:
        self.metrics.coordination_latency.labels(operation).observe(seconds)


class RequestEvents:
    """One request's telemetry: its spans, and what its metrics and log line need to remember."""

    def __init__(self, telemetry: Telemetry, request_id: str, trace: RequestTrace, started: float) -> None:
        self._t = telemetry
        self._m = telemetry.metrics
        self.request_id = request_id
        self.trace = trace
        self.started = started
        self.model = "unknown"
        self.priority = "normal"
        self._admission: Span | None = None
        self._route: Span | None = None
        self._upstream: Span | None = None
        self._admission_open = False

    def parsed(self, features: RequestFeatures, model_label: str) -> None:
        self.model, self.priority = model_label, features.priority
        self.trace.set(
            gen_ai__request__model=features.model, gateway__priority=features.priority, gateway__stream=features.stream
        )

    # -- admission ---------------------------------------------------------------------------------

    def admission_started(self) -> None:
        self._admission = self.trace.child("admission", {"gateway.priority": self.priority})
        self._admission_open = True

    def queued(self) -> None:
        self._m.queued.labels(self.priority).inc()

    def left_queue(self, waited_s: float) -> None:
        self._m.queue_wait.labels(self.priority).observe(waited_s)

    def shed(self, reason: str) -> None:
        self._m.shed.labels(self.priority, reason).inc()

    def admission_done(self, *, waited: bool) -> None:
        """Let through admission (the first time: a request the store refuses goes back to waiting)."""
        if self._admission_open:
            self._admission_open = False
            end_span(self._admission, gateway__admission__outcome="admitted", gateway__admission__waited=waited)

    def admitted(self) -> None:
        """The reservation that followed admission landed: the request counts as admitted."""
        self._m.admitted.labels(self.priority).inc()

    # -- routing and upstream ------------------------------------------------------------------------

    def route_started(self, attempt: int, candidates: int) -> None:
        if attempt > 1:
            self._m.retries.inc()
        self._route = self.trace.child("route", {"gateway.route.candidates": candidates, "gateway.attempt": attempt})

    def route_refused(self, fleet_load: float) -> None:
        end_span(self._route, gateway__route__refused_at_load=fleet_load)
        self._route = None

    def routed(self, decision: RouteDecision) -> None:
        self._m.routing_decisions.labels(decision.policy, decision.reason, decision.backend_id).inc()
        if self._route is None:
            return  # tracing is off: no span attributes to build
        parts = {f"gateway__route__{k}": v for k, v in decision.parts.items()}
        end_span(
            self._route,
            None,
            gateway__route__policy=decision.policy,
            gateway__route__backend=decision.backend_id,
            gateway__route__reason=decision.reason,
            **parts,
        )
        self._route = None

    def upstream_sending(self, backend_id: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        """Start the upstream span; the headers to send (with its traceparent when tracing is on)."""
        self._upstream = self.trace.child("upstream", {"gateway.backend": backend_id, "url.full": url}, client=True)
        if self._upstream is None:
            return headers
        sent = dict(headers)
        self.trace.inject(self._upstream, sent)
        return sent

    def upstream_error(self, backend_id: str, kind: str) -> None:
        """A backend failed a call: ``connect``, ``timeout`` or ``status_5xx``."""
        self._m.upstream_errors.labels(backend_id, kind).inc()

    def upstream_abandoned(self, detail: str) -> None:
        """This attempt's upstream call is given up (failed, retried elsewhere, or the client left)."""
        end_span(self._upstream, error=detail)
        self._upstream = None

    def first_token(self, backend_id: str) -> None:
        self._m.ttft.labels(self.model, backend_id).observe(self._t.clock() - self.started)
        if self._upstream is not None:
            self._upstream.add_event("first_token")

    # -- the end -------------------------------------------------------------------------------------

    def finished(self, decision: RouteDecision, status: int, observation: Observation, usage: Usage | None) -> None:
        """An upstream answer is over (whole, broken off, or abandoned by the client)."""
        backend = decision.backend_id
        if observation.tpot_s is not None:
            self._m.tpot.labels(self.model, backend).observe(observation.tpot_s)
        self._count(backend, status)
        cached = usage.cached_tokens if usage is not None else None
        predicted = decision.predicted_cached_tokens
        if predicted is not None and usage is not None and cached is not None:
            self._m.observe_prefix_prediction(predicted, cached, usage.prompt_tokens)
        end_span(self._upstream, error=None if status < 500 else f"status {status}", http__response__status_code=status)
        if usage is not None:
            self.trace.set(
                gen_ai__usage__input_tokens=usage.prompt_tokens,
                gen_ai__usage__output_tokens=usage.completion_tokens,
                gateway__cached_tokens=cached,
            )
        ttft = observation.ttft_s
        self._log(status, backend=backend, route=decision.reason, cached_tokens=cached,
                  ttft_ms=round(ttft * 1000, 2) if ttft is not None else None)  # fmt: skip

    def refused(self, status: int) -> None:
        """The gateway answered itself: an error, a shed, a client that left before a backend was chosen."""
        if self._admission_open:
            self._admission_open = False
            end_span(self._admission, gateway__admission__outcome="shed" if status == 429 else "refused")
        end_span(self._route)
        self._route = None
        self._count("none", status)
        self._log(status)

    def _count(self, backend: str, status: int) -> None:
        self._m.requests.labels(self.model, backend, str(status), self.priority).inc()
        elapsed = self._t.clock() - self.started
        self._m.request_duration.labels(self.model, backend, str(status)).observe(elapsed)

    def _log(self, status: int, **fields: Any) -> None:
        self.trace.finish(status)
        if not request_lines_on():
            return
        ids = self.trace.ids()
        request_line(
            request_id=self.request_id,
            trace_id=ids[0] if ids else None,
            model=self.model,
            status=status,
            priority=self.priority,
            duration_ms=round((self._t.clock() - self.started) * 1000, 2),
            **fields,
        )
