"""Admission rules: how full a backend is, the fleet's pressure, and the load limit the store enforces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.config import AdmissionConfig
from gateway.errors import BadRequest, GatewayError
from gateway.fleet.backends import Backend
from gateway.fleet.view import FleetView

PRIORITIES = ("high", "normal", "low")
RANK = {p: i for i, p in enumerate(PRIORITIES)}


class Shed(GatewayError):
    status = 429
    type = "rate_limit_exceeded"
    code = "fleet_overloaded"


class AdmissionEvents(Protocol):
    """What admission reports about one request (``gateway.telemetry.observer.RequestEvents``)."""

    def queued(self) -> None: ...

    def left_queue(self, waited_s: float) -> None: ...

    def shed(self, reason: str) -> None: ...

    def admitted(self) -> None: ...


@dataclass(slots=True)
class Routable:
    """The backends routing may use for a request (model and health filters applied), and the view they
    were judged in."""

    backends: Sequence[Backend]
    view: FleetView


Look = Callable[[], Routable]
"""Takes a fresh look at the fleet: admission calls it on every (re-)check."""


def priority_of(header: str | None, default: str) -> str:
    if header is None or header == "":
        return default
    value = header.strip().lower()
    if value not in RANK:
        raise BadRequest(f"x-priority must be one of high, normal, low; got {header!r}", param="x-priority")
    return value


def effective_load(backend: Backend, in_flight: int, config: AdmissionConfig, now: float) -> float:
    """The one "how full is this backend" rule, for the fleet pressure and the store's load limit alike.

    The fleet's in-flight count or vLLM's running + waiting, whichever is more; a full backend's worth when
    the gateway is blind to it (no scrape within ``stale_after_s``) or its KV cache is full with requests
    waiting.
    """
    stats = backend.stats
    if stats is None or backend.scraped_at is None or now - backend.scraped_at > config.stale_after_s:
        return max(float(in_flight), config.backend_capacity)
    load = max(float(in_flight), stats.running + stats.waiting)
    if stats.kv_usage >= config.kv_saturation and stats.waiting > 0:
        load = max(load, config.backend_capacity)
    return load


@dataclass(slots=True)
class Pressure:
    fleet: float
    """Mean pressure over the model's routable backends (0 = idle, 1 = at capacity)."""
    all_saturated: bool
    backends: int


def fleet_pressure(routable: Routable, config: AdmissionConfig) -> Pressure:
    if not routable.backends:
        return Pressure(0.0, False, 0)  # nothing to protect: routing answers 404/503 itself
    view = routable.view
    pressures = [
        effective_load(b, view.load(b.id).in_flight, config, view.now) / config.backend_capacity
        for b in routable.backends
    ]
    return Pressure(sum(pressures) / len(pressures), min(pressures) >= 1.0, len(pressures))


def admissible(priority: str, pressure: Pressure, config: AdmissionConfig) -> bool:
    if priority == "high":
        return not pressure.all_saturated
    threshold = config.normal_threshold if priority == "normal" else config.low_threshold
    return pressure.fleet < threshold


@dataclass(frozen=True, slots=True)
class LoadLimit:
    """Turns a priority's threshold into the absolute fleet load the store enforces atomically at the pick.

    ``outside`` is, per backend, the load the store cannot count itself (``effective_load`` beyond the
    fleet's in-flight count): traffic that bypassed the gateway, or a full backend's worth for one the
    gateway is blind to or whose KV cache is full.
    """

    config: AdmissionConfig
    priority: str

    def max_load(self, backends: int) -> float:
        c = self.config
        if self.priority == "high":
            return c.backend_capacity * backends
        threshold = c.normal_threshold if self.priority == "normal" else c.low_threshold
        return threshold * c.backend_capacity * backends

    def outside(self, backend: Backend, in_flight: int, now: float) -> float:
        return effective_load(backend, in_flight, self.config, now) - in_flight
