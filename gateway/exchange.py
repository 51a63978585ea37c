"""One request's life, top to bottom, owned by one object.

    open:    model known? -> admit (maybe wait) -> pick and reserve (the store's one atomic step)
             -> open the upstream call; a connect error, or a 5xx before the first byte, releases the
                reservation and tries another backend; the store refusing at the admission limit
                (``OverCapacity``: another replica took the room first) sends the request back to waiting
    answer:  ``relay`` (a stream, chunk by chunk) or ``read_whole``
    finish:  release the reservation with what was observed, wake the admission queue, report

The HTTP handlers (``gateway/api/openai.py``) only turn HTTP into an ``Exchange`` and its answer back into
HTTP. Every metric, span and log line goes through ``events`` (``gateway/telemetry/observer.py``).
Whatever happens, cancellation included, a reservation taken here is released exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from coordination import Observation, OverCapacity, Pick, PickRequest, Reservation
from gateway.admission import Routable, Ticket
from gateway.errors import (
    GatewayError,
    ModelNotFound,
    NoHealthyBackend,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_body,
)
from gateway.fleet.backends import Backend
from gateway.fleet.view import FleetView
from gateway.routing.runner import RouteDecision
from gateway.routing.types import RequestFeatures
from gateway.state import GatewayState
from gateway.telemetry.observer import RequestEvents
from gateway.upstream import Upstream, UpstreamBroken, UpstreamConnectError, returned_headers
from gateway.usage import Usage, UsageTap, usage_of

NO_BACKEND_RETRY_AFTER_S = 1


@dataclass(slots=True)
class Exchange:
    state: GatewayState
    path: str
    features: RequestFeatures
    body: bytes
    headers: dict[str, str]
    """The headers sent upstream (end-to-end ones, and x-request-id)."""
    events: RequestEvents
    strip_usage: bool = False
    """The gateway asked the backend for usage in a stream the client did not ask it in: strip it out."""
    decision: RouteDecision | None = None
    reservation: Reservation | None = None
    upstream: Upstream | None = None
    attempts: int = 0
    excluded: list[str] = field(default_factory=list)
    _look: Routable | None = None
    _connect_error: UpstreamConnectError | None = None
    _suspect: str | None = None
    """A backend that answered this request 5xx before the first byte; it is blamed only if another
    backend then answers the same request without a 5xx (otherwise the request itself is the likely cause)."""

    @property
    def request_id(self) -> str:
        return self.events.request_id

    # -- open: admit, pick and reserve, connect ------------------------------------------------------

    async def open(self) -> None:
        """Until the upstream answered with its status and headers; a ``GatewayError`` if it cannot."""
        state = self.state
        if not state.fleet.knows_model(self.features.model):
            raise ModelNotFound(f"The model `{_shown(self.features.model)}` does not exist.", param="model")
        self.features = state.router.prepare(self.features)
        self.events.admission_started()
        admission = state.admission
        deadline = admission.deadline(self.features.priority)
        refused = False
        while True:
            ticket = await admission.admit(self.features.priority, deadline, self.look, self.events, refused=refused)
            self.events.admission_done(waited=refused)
            try:
                await self._route(ticket)
                return
            except OverCapacity:
                refused = True  # back to waiting: the fleet filled up between admission and the pick
            finally:
                admission.settle(ticket, self.events, admitted=False)  # no-op once the reservation settled it

    def look(self) -> Routable:
        """The backends this request may use now, judged in one fresh view (kept for the next attempt)."""
        state = self.state
        view = FleetView.take(state.fleet, state.store, state.clock())
        self._look = Routable(state.router.filter(self.features, view, self.excluded), view)
        return self._look

    async def _route(self, ticket: Ticket) -> None:
        retries = self.state.config.proxy.retries
        router = self.state.router
        for attempt in range(1, retries + 2):
            routable, self._look = self._look or self.look(), None
            if not routable.backends:
                break
            self.attempts = attempt
            self.events.route_started(attempt, len(routable.backends))
            plan = router.plan(self.features, routable.backends, routable.view)
            # Only the first attempt is held to the admission limit: a retry was admitted already.
            request = _limited(plan.pick_request(), ticket if attempt == 1 else None, routable)
            pick, self.reservation = await self._reserve(request)
            self.state.admission.settle(ticket, self.events, admitted=True)
            self.decision = router.decide(plan, pick)
            self.events.routed(self.decision)
            if await self._connect(plan.backend(pick.backend_id), may_retry=attempt <= retries):
                return
        if self._connect_error is not None:
            model = self.features.model
            # The cause (an address, an OS error) stays in the upstream span: clients learn no internals.
            raise UpstreamUnavailable(f"no backend serving `{model}` could be reached")
        raise NoHealthyBackend(
            f"no healthy backend serves `{self.features.model}` right now", retry_after_s=NO_BACKEND_RETRY_AFTER_S
        )

    async def _reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        """The store's pick-and-reserve. A client leaving cancels it; the store holds nothing for it then
        (``CoordinationStore.pick_and_reserve`` is safe to cancel)."""
        try:
            return await self.state.store.pick_and_reserve(request)
        except OverCapacity as e:
            self.events.route_refused(e.fleet_load)
            raise

    async def _connect(self, backend: Backend, *, may_retry: bool) -> bool:
        """Open the upstream call; False when another backend should be tried."""
        url = backend.spec.url + self.path
        headers = self.events.upstream_sending(backend.id, url, self.headers)
        try:
            upstream = await self.state.transport.open(backend.id, url, self.body, headers)
        except UpstreamConnectError as e:
            self._failed(backend.id, "connect", "connect")
            self._connect_error = e
            return False
        except UpstreamTimeout:
            self._failed(backend.id, "timeout", "timeout")
            raise
        except BaseException:  # cancelled: the client left
            self.events.upstream_abandoned("cancelled")
            self._release(Observation())
            raise
        if upstream.status >= 500:
            self.events.upstream_error(backend.id, "status_5xx")
            if may_retry and self._elsewhere(backend.id):
                upstream.close()
                self.events.upstream_abandoned(f"status {upstream.status}")
                self._release(Observation())
                self.excluded.append(backend.id)
                self._suspect = self._suspect or backend.id
                return False
        elif self._suspect is not None:
            self.state.fleet.record_failure(self._suspect)  # another backend served it: the 5xx was the backend's
        self._suspect = None
        self.upstream = upstream
        return True

    def _elsewhere(self, backend_id: str) -> bool:
        """Is there another backend to retry on? (The look is kept for the retry's attempt.)"""
        self.excluded.append(backend_id)
        try:
            return bool(self.look().backends)
        finally:
            self.excluded.pop()

    def _failed(self, backend_id: str, kind: str, detail: str) -> None:
        self.events.upstream_error(backend_id, kind)
        self.events.upstream_abandoned(detail)
        self.state.fleet.record_failure(backend_id)
        self._release(Observation())
        self.excluded.append(backend_id)

    def _release(self, observation: Observation) -> None:
        """Give the reservation back, in the background (the client must not wait on bookkeeping)."""
        if self.reservation is not None:
            self.state.spawn(self.state.store.release(self.reservation, observation))
            self.reservation = None

    # -- answer ---------------------------------------------------------------------------------------

    def response_headers(self) -> dict[str, str]:
        assert self.upstream is not None
        assert self.decision is not None
        headers = returned_headers(self.upstream.headers().items(), self.state.config.proxy.return_headers)
        headers["x-request-id"] = self.request_id
        headers["x-gateway-backend"] = self.upstream.backend_id
        headers["x-gateway-route"] = self.decision.receipt(self.attempts)
        return headers

    async def relay(self) -> AsyncIterator[bytes]:
        """The stream, chunk by chunk; the server cancels (or closes) it when the client leaves."""
        assert self.upstream is not None
        upstream, tap, status = self.upstream, UsageTap(strip=self.strip_usage), 200
        try:
            async for chunk in upstream.chunks():
                if tap.events == 0:
                    self.events.first_token(upstream.backend_id)
                if out := tap.feed(chunk):
                    yield out
            if rest := tap.flush():
                yield rest
        except (UpstreamTimeout, UpstreamBroken) as e:
            # The headers are gone already: say it in-band, the way vLLM reports mid-stream errors.
            status = 504 if isinstance(e, UpstreamTimeout) else 502
            yield b"data: " + error_body(str(e), "upstream_error", "upstream_stream_error") + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            status = 499  # the client left; closing the upstream below makes vLLM abort the request
            raise
        finally:
            upstream.close()
            self.finish(status, self._stream_observation(tap.events), tap.usage)

    def _stream_observation(self, events: int) -> Observation:
        first = self.upstream.first_byte_at if self.upstream is not None else None
        if first is None:
            return Observation()
        # TTFT as the client saw it (queueing included: that is what routing must predict); time per output
        # token from the events after the first (vLLM sends about one token per event).
        tpot = (self.state.clock() - first) / (events - 1) if events > 2 else None
        return Observation(ttft_s=first - self.events.started, tpot_s=tpot)

    async def read_whole(self) -> tuple[int, bytes, dict[str, str]]:
        """The whole answer: status, body, headers. A client leaving cancels the read (vLLM aborts): 499."""
        assert self.upstream is not None
        upstream, headers = self.upstream, self.response_headers()
        status, observation, usage = upstream.status, Observation(), None
        try:
            body = await upstream.read_all()
        except (GatewayError, UpstreamBroken) as e:
            error = e if isinstance(e, GatewayError) else UpstreamUnavailable("the backend broke the answer off")
            body, status = error.body(), error.status
            headers["content-type"] = "application/json"
        except asyncio.CancelledError:
            status, body = 499, b""  # swallowed: the answer goes nowhere, the bookkeeping below must happen
        else:
            if status == 200 and (usage := usage_of(body)) is not None and usage.completion_tokens > 0:
                observation = Observation(tpot_s=(self.state.clock() - self.events.started) / usage.completion_tokens)
        finally:
            upstream.close()
        self.finish(status, observation, usage)
        return status, body, headers

    # -- finish ---------------------------------------------------------------------------------------

    def finish(self, status: int, observation: Observation, usage: Usage | None) -> None:
        """The upstream answer is over: release with what was observed, wake the queue, report."""
        assert self.decision is not None
        if status < 500 and self.reservation is not None:
            self.state.fleet.record_success(self.reservation.backend_id)
        self._release(observation)
        self.state.admission.notify()
        self.events.finished(self.decision, status, observation, usage)


def _shown(value: str, limit: int = 200) -> str:
    """A client's value as an error message may quote it: bounded, so a huge one is not echoed back whole."""
    return value if len(value) <= limit else value[:limit] + "..."


def _limited(request: PickRequest, ticket: Ticket | None, routable: Routable) -> PickRequest:
    """The pick, held to the ticket's admission limit: refused by the store at that fleet load."""
    limit = ticket.limit if ticket is not None else None
    if limit is None:
        return request
    view = routable.view
    by_id = {b.id: b for b in routable.backends}
    outside = tuple(
        limit.outside(by_id[line.backend_id], view.load(line.backend_id).in_flight, view.now) for line in request.lines
    )
    return dataclasses.replace(request, admit_max_load=limit.max_load(len(routable.backends)), outside_load=outside)
