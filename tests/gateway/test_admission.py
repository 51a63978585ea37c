"""Admission decisions on crafted fleet states, and the priority queue, in process."""

import asyncio

import pytest

from coordination import BackendLoad, InMemoryStore
from gateway.admission import (
    Admission,
    LoadLimit,
    Look,
    Pressure,
    Routable,
    Shed,
    admissible,
    effective_load,
    fleet_pressure,
    priority_of,
)
from gateway.config import AdmissionConfig, HealthConfig, PriorityWaits
from gateway.errors import BadRequest
from gateway.fleet.backends import BackendSpec, Fleet
from gateway.fleet.view import FleetView
from gateway.fleet.vllm_metrics import EngineStats

CONFIG = AdmissionConfig(backend_capacity=10, low_threshold=0.5, normal_threshold=0.8, stale_after_s=3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stats(running: float, waiting: float = 0, kv: float = 0.1) -> EngineStats:
    return EngineStats(running, waiting, kv, 0, 0, 16, 1000, frozenset({"m"}))


class Events:
    """What admission reported, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def queued(self) -> None:
        self.seen.append("queued")

    def left_queue(self, waited_s: float) -> None:
        self.seen.append("left_queue")

    def shed(self, reason: str) -> None:
        self.seen.append(f"shed:{reason}")

    def admitted(self) -> None:
        self.seen.append("admitted")


def routable(fleet: Fleet, in_flight: dict[str, int], now: float) -> Routable:
    view = FleetView(tuple(fleet.backends.values()), {b: BackendLoad(in_flight=n) for b, n in in_flight.items()}, now)
    return Routable(fleet.routable("m"), view)


def look_at(fleet: Fleet, clock: "Clock") -> Look:
    return lambda: routable(fleet, {}, clock.now)


def fleet_with(*loads: EngineStats, clock: Clock | None = None) -> Fleet:
    fleet = Fleet(HealthConfig(), clock or Clock())
    fleet.set_members(BackendSpec(f"b{i}", f"http://b{i}", frozenset({"m"})) for i in range(len(loads)))
    for i, s in enumerate(loads):
        fleet.record_scrape(f"b{i}", s)
    return fleet


@pytest.mark.parametrize(
    ("loads", "in_flight", "fleet_pressure_", "all_saturated"),
    [
        pytest.param([stats(2), stats(4)], {}, 0.3, False, id="scraped-load"),
        pytest.param([stats(2), stats(4)], {"b0": 8}, 0.6, False, id="fleet-in-flight-counts"),
        pytest.param([stats(1, 0, kv=0.99), stats(1, 1, kv=0.99)], {}, 0.55, False, id="full-kv-needs-waiting"),
        pytest.param([stats(10), stats(12)], {}, 1.1, True, id="all-saturated"),
    ],
)
def test_fleet_pressure(
    loads: list[EngineStats], in_flight: dict[str, int], fleet_pressure_: float, all_saturated: bool
) -> None:
    clock = Clock()
    pressure = fleet_pressure(routable(fleet_with(*loads, clock=clock), in_flight, clock.now), CONFIG)
    assert pressure.fleet == pytest.approx(fleet_pressure_)
    assert pressure.all_saturated is all_saturated


def test_stale_scrape_counts_as_saturated() -> None:
    clock = Clock()
    fleet = fleet_with(stats(0), stats(0), clock=clock)
    clock.now += 3.5
    fleet.record_scrape("b1", stats(0))
    assert fleet_pressure(routable(fleet, {}, clock.now), CONFIG).fleet == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("backend_stats", "stale", "in_flight", "load"),
    [
        pytest.param(stats(2, 1), False, 0, 3.0, id="running-plus-waiting"),
        pytest.param(stats(2, 1), False, 5, 5.0, id="fleet-in-flight-when-more"),
        pytest.param(stats(1, 1, kv=0.99), False, 2, 10.0, id="kv-full-with-waiting-counts-full"),
        pytest.param(stats(1, 0, kv=0.99), False, 2, 2.0, id="kv-full-without-waiting-does-not"),
        pytest.param(stats(0), True, 3, 10.0, id="stale-counts-full"),
        pytest.param(stats(0), True, 14, 14.0, id="stale-but-more-in-flight"),
    ],
)
def test_one_rule_for_pressure_and_load_limit(
    backend_stats: EngineStats, stale: bool, in_flight: int, load: float
) -> None:
    """The fleet pressure and the store's load limit count a backend as equally full."""
    clock = Clock()
    fleet = fleet_with(backend_stats, clock=clock)
    if stale:
        clock.now += 3.5
    backend = fleet.backends["b0"]
    assert effective_load(backend, in_flight, CONFIG, clock.now) == load
    pressure = fleet_pressure(routable(fleet, {"b0": in_flight}, clock.now), CONFIG)
    outside = LoadLimit(CONFIG, "normal").outside(backend, in_flight, clock.now)
    assert pressure.fleet * CONFIG.backend_capacity == pytest.approx(in_flight + outside)


@pytest.mark.parametrize(
    ("priority", "pressure", "admitted"),
    [
        pytest.param("low", Pressure(0.49, False, 2), True, id="low-under"),
        pytest.param("low", Pressure(0.5, False, 2), False, id="low-at-threshold"),
        pytest.param("normal", Pressure(0.7, False, 2), True, id="normal-under"),
        pytest.param("normal", Pressure(0.85, False, 2), False, id="normal-over"),
        pytest.param("high", Pressure(1.5, False, 2), True, id="high-while-one-backend-has-room"),
        pytest.param("high", Pressure(1.5, True, 2), False, id="high-when-all-full"),
    ],
)
def test_thresholds(priority: str, pressure: Pressure, admitted: bool) -> None:
    assert admissible(priority, pressure, CONFIG) is admitted


@pytest.mark.parametrize(("header", "expected"), [(None, "normal"), ("HIGH", "high"), (" low ", "low"), ("", "normal")])
def test_priority_header(header: str | None, expected: str) -> None:
    assert priority_of(header, "normal") == expected


def test_unknown_priority_is_400() -> None:
    with pytest.raises(BadRequest, match="x-priority"):
        priority_of("urgent", "normal")


def admission_over(fleet: Fleet, clock: Clock, **waits: float) -> Admission:
    config = AdmissionConfig(
        backend_capacity=10,
        low_threshold=0.5,
        normal_threshold=0.8,
        max_wait_s=PriorityWaits(**waits),
        recheck_s=0.01,
        stale_after_s=1e9,
    )
    return Admission(config, InMemoryStore(), clock)


async def test_waits_then_sheds_with_retry_after() -> None:
    clock = Clock()
    fleet = fleet_with(stats(9))
    admission = admission_over(fleet, clock, low=0.05)
    events = Events()
    clock_task = asyncio.create_task(_tick(clock))
    try:
        with pytest.raises(Shed) as info:
            await admission.admit("low", admission.deadline("low"), look_at(fleet, clock), events)
    finally:
        clock_task.cancel()
    assert info.value.status == 429
    assert info.value.headers()["retry-after"] == "1"
    assert admission.local_depths() == {"high": 0, "normal": 0, "low": 0}
    assert events.seen == ["queued", "shed:timeout", "left_queue"]


async def test_a_ticket_counts_as_load_until_settled_once() -> None:
    clock = Clock()
    fleet = fleet_with(stats(3))  # pressure 0.3
    admission = admission_over(fleet, clock)
    events = Events()
    ticket = await admission.admit("low", admission.deadline("low"), look_at(fleet, clock), events)
    assert admission.pending == 1
    admission.settle(ticket, events, admitted=True)
    admission.settle(ticket, events, admitted=False)
    assert admission.pending == 0
    assert events.seen == ["admitted"]


async def test_freed_capacity_goes_to_the_highest_priority_first() -> None:
    clock = Clock()
    fleet = fleet_with(stats(9))  # pressure 0.9: low and normal wait, high goes
    admission = admission_over(fleet, clock, low=30, normal=30)
    order: list[str] = []

    async def request(priority: str) -> None:
        await admission.admit(priority, admission.deadline(priority), look_at(fleet, clock), Events())
        order.append(priority)

    low = asyncio.create_task(request("low"))
    await asyncio.sleep(0.02)
    normal = asyncio.create_task(request("normal"))
    await asyncio.sleep(0.02)
    await request("high")
    assert order == ["high"]
    assert admission.local_depths() == {"high": 0, "normal": 1, "low": 1}
    fleet.record_scrape("b0", stats(6))  # 0.6: normal may go, low may not
    admission.notify()
    await asyncio.wait_for(normal, 1)
    await asyncio.sleep(0.05)
    assert order == ["high", "normal"]
    fleet.record_scrape("b0", stats(1))
    admission.notify()
    await asyncio.wait_for(low, 1)
    assert order == ["high", "normal", "low"]


async def test_a_client_that_leaves_frees_its_place() -> None:
    clock = Clock()
    fleet = fleet_with(stats(9))
    admission = admission_over(fleet, clock, low=30)
    waiting = asyncio.create_task(admission.admit("low", admission.deadline("low"), look_at(fleet, clock), Events()))
    await asyncio.sleep(0.02)
    assert admission.local_depths()["low"] == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert admission.local_depths()["low"] == 0


async def test_queue_full_sheds_at_once() -> None:
    clock = Clock()
    fleet = fleet_with(stats(9))
    config = AdmissionConfig(backend_capacity=10, low_threshold=0.5, max_queue=1, stale_after_s=1e9)
    admission = Admission(config, InMemoryStore(), clock)
    look = look_at(fleet, clock)
    first = asyncio.create_task(admission.admit("low", admission.deadline("low"), look, Events()))
    await asyncio.sleep(0.01)
    with pytest.raises(Shed, match="queue_full"):
        await admission.admit("low", admission.deadline("low"), look, Events())
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def _tick(clock: Clock) -> None:
    while True:
        await asyncio.sleep(0.005)
        clock.now += 0.005
