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
from gateway.config import AdmissionConfig
from gateway.errors import BadRequest, GatewayError
from gateway.fleet.backends import Backend, Fleet
from gateway.telemetry.metrics import GatewayMetrics

PRIORITIES = ("high", "normal", "low")
FLEET_VIEW_TTL_S = 1.0
RANK = {p: i for i, p in enumerate(PRIORITIES)}


class Shed(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    code = "fleet_overloaded"


def priority_of(header: str | None, default: str) -> str:
    if header is None or header == "":
        return default
    value = header.strip().lower()
    if value not in RANK:
        raise BadRequest(f"x-priority must be one of high, normal, low; got {header!r}", param="x-priority")
    return value


@dataclass(frozen=True, slots=True)
class Pressure:
    fleet: float
    """Mean pressure over the model's routable backends (0 = idle, 1 = at capacity)."""
    all_saturated: bool
    backends: int


def fleet_pressure(
    fleet: Fleet, loads_in_flight: dict[str, int], model: str, config: AdmissionConfig, now: float
) -> Pressure:
    backends = fleet.routable(model)
    if not backends:
        return Pressure(0.0, False, 0)  # nothing to protect: routing answers 404/503 itself
    pressures = []
    for b in backends:
        stats = b.stats
        scraped = stats is not None and b.scraped_at is not None and now - b.scraped_at <= config.stale_after_s
        if not scraped or stats is None:
            pressures.append(1.0)
            continue
        load = max(loads_in_flight.get(b.id, 0), stats.running + stats.waiting)
        pressure = load / config.backend_capacity
        if stats.kv_usage >= config.kv_saturation and stats.waiting > 0:
            pressure = max(pressure, 1.0)
        pressures.append(pressure)
    return Pressure(sum(pressures) / len(pressures), min(pressures) >= 1.0, len(pressures))


def admissible(priority: str, pressure: Pressure, config: AdmissionConfig) -> bool:
    if priority == "high":
        return not pressure.all_saturated
    threshold = config.normal_threshold if priority == "normal" else config.low_threshold
    return pressure.fleet < threshold


@dataclass(frozen=True, slots=True)
class LoadLimit:
    """Turns a priority's threshold into the absolute fleet load the store enforces atomically at the pick.

    ``outside`` is, per backend, the load the store cannot count itself: what vLLM runs beyond the fleet's
    in-flight count (traffic that bypassed the gateway), or a full backend's worth when the gateway is blind
    to it (stale scrape) or its KV cache is full with requests waiting - the same rules as ``fleet_pressure``.
    """

    config: AdmissionConfig
    priority: str
    now: float

    def max_load(self, backends: int) -> float:
        c = self.config
        if self.priority == "high":
            return c.backend_capacity * backends
        threshold = c.normal_threshold if self.priority == "normal" else c.low_threshold
        return threshold * c.backend_capacity * backends

    def outside(self, backend: Backend, in_flight: int) -> float:
        c = self.config
        stats = backend.stats
        if stats is None or backend.scraped_at is None or self.now - backend.scraped_at > c.stale_after_s:
            return c.backend_capacity
        if stats.kv_usage >= c.kv_saturation and stats.waiting > 0:
            return max(c.backend_capacity - in_flight, 0.0)
        return max(stats.running + stats.waiting - in_flight, 0.0)


@dataclass(slots=True)
class Ticket:
    """A request let through admission, until the store reserves it a backend (or refuses it).

    Until then it counts as load on this replica (``Admission.pending``), so a burst released from the
    queue at once does not slip past the threshold before its reservations land in the store.
    """

    admission: Admission
    priority: str
    limit: LoadLimit | None
    open: bool = True

    def settle(self, *, admitted: bool) -> None:
        if self.open:
            self.open = False
            self.admission._settled(self.priority, admitted)


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
    def __init__(
        self,
        config: AdmissionConfig,
        fleet: Fleet,
        store: CoordinationStore,
        metrics: GatewayMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._config = config
        self._fleet = fleet
        self._store = store
        self._metrics = metrics
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

    def _pressure(self, model: str) -> Pressure:
        ids = list(self._fleet.backends)
        in_flight = {b: load.in_flight for b, load in self._store.cached_loads(ids).items()}
        pressure = fleet_pressure(self._fleet, in_flight, model, self._config, self._clock())
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

    def deadline(self, priority: str) -> float:
        wait: float = getattr(self._config.max_wait_s, priority)
        return self._clock() + wait

    async def admit(self, priority: str, model: str, deadline: float, *, refused: bool = False) -> Ticket:
        """Return when the request may try to reserve a backend; raise ``Shed`` when it may not.

        ``refused``: the store just refused this request at its admission limit, so it queues at once.
        Cancellation (the client left) takes it out of the queue.
        """
        config = self._config
        rank = RANK[priority]
        if not config.enabled or (
            not refused and admissible(priority, self._pressure(model), config) and not self._higher_waiting(rank)
        ):
            return self._ticket(priority)
        if sum(1 for w in self._queue if w.rank == rank) >= config.max_queue:
            self._shed(priority, "queue_full")
        waiter = _Waiter(rank, next(self._seq))
        heapq.heappush(self._queue, waiter)
        if not refused:
            self._metrics.queued.labels(priority).inc()
        started = self._clock()
        await self._publish_depths()
        try:
            while True:
                first = self._queue[0] is waiter  # strict (priority, arrival) order within this replica
                if first and not self._higher_waiting(rank) and admissible(priority, self._pressure(model), config):
                    break
                remaining = deadline - self._clock()
                if remaining <= 0:
                    self._shed(priority, "timeout")
                waiter.wake.clear()
                try:
                    async with asyncio.timeout(min(remaining, config.recheck_s)):
                        await waiter.wake.wait()
                except TimeoutError:
                    await self._refresh()
        finally:
            self._queue.remove(waiter)
            heapq.heapify(self._queue)
            self._metrics.queue_wait.labels(priority).observe(self._clock() - started)
            self.notify()
            await self._publish_depths()
        return self._ticket(priority)

    def _ticket(self, priority: str) -> Ticket:
        self.pending += 1
        limit = LoadLimit(self._config, priority, self._clock()) if self._config.enabled else None
        return Ticket(self, priority, limit)

    def _settled(self, priority: str, admitted: bool) -> None:
        self.pending -= 1
        if admitted:
            self._metrics.admitted.labels(priority).inc()

    def _shed(self, priority: str, reason: str) -> None:
        self._metrics.shed.labels(priority, reason).inc()
        raise Shed(
            f"the fleet is overloaded: {priority} priority requests are being shed ({reason}); retry later",
            retry_after_s=self._config.retry_after_s,
        )

    def notify(self) -> None:
        """A request ended (capacity may have freed): let the queue re-check, best first."""
        for waiter in self._queue:
            waiter.wake.set()

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
