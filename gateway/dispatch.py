"""Route, reserve, call upstream, retry, release: the part of a request's path between parsing and bytes.

``open`` picks a backend through the policy and reserves it in one step of the coordination store, opens
the upstream call, and on a connect error or a 5xx before the first byte tries once more on another
backend. ``finish`` releases the reservation with what was observed. Whatever happens - including the
caller's cancellation when a client leaves - a reservation taken here is released exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.trace import Span

from coordination import BackendLoad, CoordinationStore, Observation, OverCapacity, Reservation
from gateway.admission import Ticket
from gateway.errors import ModelNotFound, NoHealthyBackend, UpstreamTimeout, UpstreamUnavailable
from gateway.fleet.backends import Backend, Fleet
from gateway.proxy import Upstream, UpstreamClient, UpstreamConnectError
from gateway.routing.prefix import PrefixHasher
from gateway.routing.types import Candidate, Policy, RequestFeatures, RouteDecision
from gateway.telemetry.metrics import GatewayMetrics
from gateway.telemetry.tracing import NULL_TRACE, RequestTrace, end_span

NO_BACKEND_RETRY_AFTER_S = 1


@dataclass(slots=True)
class Dispatched:
    upstream: Upstream
    decision: RouteDecision
    reservation: Reservation
    attempts: int
    priority: str
    request_id: str
    trace: RequestTrace
    upstream_span: Span | None

    def receipt(self) -> str:
        """The x-gateway-route header: policy, reason and the numbers that decided the pick."""
        d = self.decision
        parts = "".join(f"; {k}={v:.4g}" for k, v in d.parts.items())
        return f"policy={d.policy}; reason={d.reason}; attempts={self.attempts}{parts}"


def candidates(backends: Sequence[Backend], loads: Mapping[str, BackendLoad]) -> list[Candidate]:
    out = []
    for b in backends:
        load = loads.get(b.id) or BackendLoad()
        stats = b.stats
        out.append(
            Candidate(
                id=b.id,
                weight=b.spec.weight,
                waiting=stats.waiting if stats else 0.0,
                running=stats.running if stats else 0.0,
                kv_usage=stats.kv_usage if stats else 0.0,
                in_flight=load.in_flight,
                ttft_ewma_s=load.ttft_ewma_s,
                kv_capacity_tokens=stats.kv_capacity_tokens if stats else None,
            )
        )
    return out


class Dispatcher:
    def __init__(
        self,
        fleet: Fleet,
        store: CoordinationStore,
        policy: Policy,
        client: UpstreamClient,
        metrics: GatewayMetrics,
        retries: int,
        hasher: PrefixHasher | None = None,
    ) -> None:
        self._hasher = hasher or PrefixHasher()
        self._fleet = fleet
        self._store = store
        self._policy = policy
        self._client = client
        self._metrics = metrics
        self._retries = retries
        self._background: set[asyncio.Task[None]] = set()

    async def open(
        self,
        path: str,
        features: RequestFeatures,
        body: bytes,
        headers: dict[str, str],
        ticket: Ticket | None = None,
        trace: RequestTrace = NULL_TRACE,
    ) -> Dispatched:
        self.require_model(features.model)
        if self._policy.uses_prefix and not features.prefix_blocks:
            blocks = self._hasher.blocks(features.model, features.prompt_text, features.cache_salt)
            features = dataclasses.replace(features, prefix_blocks=blocks)
        excluded: list[str] = []
        connect_error: UpstreamConnectError | None = None
        for attempt in range(1, self._retries + 2):
            backends = self._fleet.routable(features.model, excluded)
            if not backends:
                break
            if attempt > 1:
                self._metrics.retries.inc()
            route_span = trace.child("route", {"gateway.route.candidates": len(backends), "gateway.attempt": attempt})
            loads = self._store.cached_loads([b.id for b in backends])
            plan = self._policy.plan(features, candidates(backends, loads))
            request = plan.pick_request()
            limit = ticket.limit if ticket is not None and attempt == 1 else None  # a retry was admitted already
            if limit is not None:
                by_id = {b.id: b for b in backends}
                outside = tuple(
                    limit.outside(by_id[line.backend_id], loads[line.backend_id].in_flight) for line in request.lines
                )
                request = dataclasses.replace(
                    request, admit_max_load=limit.max_load(len(backends)), outside_load=outside
                )
            try:
                pick, reservation = await self._store.pick_and_reserve(request)
            except OverCapacity as e:
                end_span(route_span, gateway__route__refused_at_load=e.fleet_load)
                raise
            if ticket is not None:
                ticket.settle(admitted=True)
            decision = RouteDecision.of(plan, pick)
            if plan.prefix_blocks:
                decision.parts["predicted_cached_tokens"] = float(self._hasher.predicted_tokens(pick.cached_blocks))
            backend = next(b for b in backends if b.id == decision.backend_id)
            self._metrics.routing_decisions.labels(decision.policy, decision.reason, backend.id).inc()
            end_span(
                route_span,
                None,
                gateway__route__policy=decision.policy,
                gateway__route__backend=backend.id,
                gateway__route__reason=decision.reason,
                **{f"gateway__route__{k}": v for k, v in decision.parts.items()},
            )
            url = backend.spec.url + path
            upstream_span = trace.child("upstream", {"gateway.backend": backend.id, "url.full": url}, client=True)
            sent_headers = headers
            if upstream_span is not None:
                sent_headers = dict(headers)
                trace.inject(upstream_span, sent_headers)
            try:
                upstream = await self._client.open(backend.id, url, body, sent_headers)
            except UpstreamConnectError as e:
                end_span(upstream_span, error="connect")
                self._failed(backend.id, "connect", reservation)
                excluded.append(backend.id)
                connect_error = e
                continue
            except UpstreamTimeout:
                end_span(upstream_span, error="timeout")
                self._failed(backend.id, "timeout", reservation)
                raise
            except BaseException:  # cancelled because the client left
                end_span(upstream_span, error="cancelled")
                self.spawn(self._store.release(reservation, Observation()))
                raise
            if upstream.status >= 500:
                self._metrics.upstream_errors.labels(backend.id, "status_5xx").inc()
                self._fleet.record_failure(backend.id)
                if attempt <= self._retries and self._fleet.routable(features.model, [*excluded, backend.id]):
                    end_span(upstream_span, error=f"status {upstream.status}")
                    upstream.close()
                    self.spawn(self._store.release(reservation, Observation()))
                    excluded.append(backend.id)
                    continue
            request_id = headers.get("x-request-id", "")
            return Dispatched(
                upstream, decision, reservation, attempt, features.priority, request_id, trace, upstream_span
            )
        if connect_error is not None:
            raise UpstreamUnavailable(f"no backend for `{features.model}` could be reached: {connect_error}")
        raise NoHealthyBackend(
            f"no healthy backend serves `{features.model}` right now", retry_after_s=NO_BACKEND_RETRY_AFTER_S
        )

    def require_model(self, model: str) -> None:
        """404 for a model no backend serves: checked before admission, so it never waits in a queue."""
        if not self._fleet.knows_model(model):
            raise ModelNotFound(f"The model `{model}` does not exist.", param="model")

    def _failed(self, backend_id: str, kind: str, reservation: Reservation) -> None:
        self._metrics.upstream_errors.labels(backend_id, kind).inc()
        self._fleet.record_failure(backend_id)
        self.spawn(self._store.release(reservation, Observation()))

    def finish(self, dispatched: Dispatched, observation: Observation, *, ok: bool) -> None:
        """Release the reservation (in the background: the client must not wait on bookkeeping)."""
        if ok:
            self._fleet.record_success(dispatched.reservation.backend_id)
        self.spawn(self._store.release(dispatched.reservation, observation))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
