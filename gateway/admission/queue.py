"""Priority admission: admit, wait in a bounded priority queue, or shed (429) - as a fleet decision.

The signal is the fleet's pressure for the requested model, from the shared state every replica sees:

    load_b     = max(fleet in-flight on b, vLLM running_b + waiting_b)
    pressure_b = load_b / backend_capacity, raised to 1 when b's KV cache is full with requests waiting,
                 or when b's last scrape is older than ``stale_after_s`` (a blind spot counts as saturated)
    fleet pressure = mean of pressure_b over the model's routable backends

A priority is admitted while the fleet pressure is under its threshold (``low_threshold``,
``normal_threshold``); ``high`` only waits when *every* backend is saturated (pressure >= 1: none can take
anything). Over its threshold a request waits, in a bounded queue ordered by priority, for up to its
``max_wait_s``, re-checked whenever a request ends and every ``recheck_s``; then it is shed with 429 and
``Retry-After``. A lower priority also waits while any replica has a higher priority queued: the queue
depths are published in the shared store (``queued`` table) only while queueing happens, so admission
costs no round trip below the thresholds. A client that leaves while queued frees its place at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from coordination import CoordinationStore
from gateway.admission.rules import (
    PRIORITIES,
    RANK,
    AdmissionEvents,
    LoadLimit,
    Look,
    Pressure,
    Shed,
    admissible,
    fleet_pressure,
)
from gateway.config import AdmissionConfig

FLEET_VIEW_TTL_S = 1.0


@dataclass(slots=True)
class Ticket:
    """A request let through admission, until the store reserves it a backend (or refuses it): until
    ``Admission.settle`` it counts as load on this replica, so a burst released from the queue at once
    does not slip past the threshold before its reservations land in the store."""

    priority: str
    limit: LoadLimit | None
    open: bool = True


class _QueueDepths(msgspec.Struct, array_like=True):
    high: int = 0
    normal: int = 0
    low: int = 0


@dataclass(order=True, slots=True)
class _Waiter:
    rank: int
    seq: int
    wake: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class Admission:
    def __init__(self, config: AdmissionConfig, store: CoordinationStore, clock: Callable[[], float]) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()
        self._fleet_queued = _QueueDepths()
        self._fleet_queued_at = float("-inf")
        self._refreshed_at = float("-inf")
        self.pending = 0
        """Admitted here but not yet reserved in the store: counted as load, or a burst would slip through."""

    def local_depths(self) -> dict[str, int]:
        depths = dict.fromkeys(PRIORITIES, 0)
        for waiter in self._queue:
            depths[PRIORITIES[waiter.rank]] += 1
        return depths

    def fleet_depths(self) -> dict[str, int]:
        q = self._fleet_queued
        return {"high": q.high, "normal": q.normal, "low": q.low}

    def deadline(self, priority: str) -> float:
        wait: float = getattr(self._config.max_wait_s, priority)
        return self._clock() + wait

    async def admit(
        self, priority: str, deadline: float, look: Look, events: AdmissionEvents, *, refused: bool = False
    ) -> Ticket:
        """Return when the request may try to reserve a backend; raise ``Shed`` when it may not.

        ``refused``: the store just refused this request at its admission limit, so it queues at once.
        Cancellation (the client left) takes it out of the queue.
        """
        rank = RANK[priority]
        if not self._config.enabled or (not refused and self._may_go(priority, look)):
            return self._ticket(priority)
        if sum(1 for w in self._queue if w.rank == rank) >= self._config.max_queue:
            self._shed(priority, "queue_full", events)
        waiter = _Waiter(rank, next(self._seq))
        heapq.heappush(self._queue, waiter)
        if not refused:
            events.queued()
        started = self._clock()
        await self._publish_depths()
        try:
            await self._wait_turn(waiter, priority, deadline, look, events, must_wait=refused)
        finally:
            self._queue.remove(waiter)
            heapq.heapify(self._queue)
            events.left_queue(self._clock() - started)
            self.notify()
            await self._publish_depths()
        return self._ticket(priority)

    async def _wait_turn(
        self, waiter: _Waiter, priority: str, deadline: float, look: Look, events: AdmissionEvents, *, must_wait: bool
    ) -> None:
        """Wait until this waiter is first in (priority, arrival) order and the fleet has room. ``must_wait``:
        the store refused on a view that said there was room, so the view is stale; wait for a request to end
        or a recheck first, rather than asking the store again at once (and forever, were it quick)."""
        while must_wait or not (self._queue[0] is waiter and self._may_go(priority, look)):
            must_wait = False
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._shed(priority, "timeout", events)
            waiter.wake.clear()
            try:
                async with asyncio.timeout(min(remaining, self._config.recheck_s)):
                    await waiter.wake.wait()
            except TimeoutError:
                await self._refresh()

    def settle(self, ticket: Ticket, events: AdmissionEvents, *, admitted: bool) -> None:
        """The store reserved the ticket's request a backend (``admitted``), or it will not; once."""
        if ticket.open:
            ticket.open = False
            self.pending -= 1
            if admitted:
                events.admitted()

    def notify(self) -> None:
        """A request ended (capacity may have freed): let the queue re-check, best first."""
        for waiter in self._queue:
            waiter.wake.set()

    def _may_go(self, priority: str, look: Look) -> bool:
        return admissible(priority, self._pressure(look), self._config) and not self._higher_waiting(RANK[priority])

    def _pressure(self, look: Look) -> Pressure:
        pressure = fleet_pressure(look(), self._config)
        if self.pending and pressure.backends:
            extra = self.pending / (self._config.backend_capacity * pressure.backends)
            pressure = Pressure(pressure.fleet + extra, pressure.all_saturated, pressure.backends)
        return pressure

    def _higher_waiting(self, rank: int) -> bool:
        """Does another replica hold a better priority in its queue? (This replica's own are ahead in its
        heap already.) A view older than ``FLEET_VIEW_TTL_S`` is not trusted: queues drain fast."""
        if self._clock() - self._fleet_queued_at > FLEET_VIEW_TTL_S:
            return False
        fleet, local = self.fleet_depths(), self.local_depths()
        return any(fleet[p] > local[p] for p in PRIORITIES[:rank])

    def _ticket(self, priority: str) -> Ticket:
        self.pending += 1
        return Ticket(priority, LoadLimit(self._config, priority) if self._config.enabled else None)

    def _shed(self, priority: str, reason: str, events: AdmissionEvents) -> None:
        events.shed(reason)
        raise Shed(
            f"the fleet is overloaded: {priority} priority requests are being shed ({reason}); retry later",
            retry_after_s=self._config.retry_after_s,
        )

    async def _refresh(self) -> None:
        """While requests wait, look at the shared state every ``recheck_s`` (once per replica, not per
        waiter): other replicas' queues, and the fleet's in-flight counts."""
        now = self._clock()
        if now - self._refreshed_at < self._config.recheck_s:
            return
        self._refreshed_at = now
        await self._store.heartbeat()
        await self._publish_depths()

    async def _publish_depths(self) -> None:
        depths = self.local_depths()
        mine = {self._store.replica_id: msgspec.msgpack.encode(_QueueDepths(**depths))}
        everyone = await self._store.exchange("queued", mine)
        members = set(self._store.live_members()) or {self._store.replica_id}
        total = _QueueDepths()
        for replica, blob in everyone.items():
            if replica not in members:
                continue  # a dead replica's queue is gone with it
            try:
                q = msgspec.msgpack.decode(blob, type=_QueueDepths)
            except msgspec.DecodeError:
                continue
            total = _QueueDepths(total.high + q.high, total.normal + q.normal, total.low + q.low)
        self._fleet_queued = total
        self._fleet_queued_at = self._clock()
