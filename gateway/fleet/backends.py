"""The fleet as this replica sees it: each backend's health, last scrape and passive-ejection state.

Vocabulary from Envoy's outlier detection: ``consecutive_errors`` proxied failures in a row eject a
backend for ``base_ejection_s x times ejected`` (capped), never more than ``max_ejection_percent`` of
the fleet at once. Active health (the /metrics poller) marks a backend unhealthy after
``unhealthy_threshold`` failed scrapes; it is routable again after ``healthy_threshold`` good scrapes
and once any ejection has run out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.config import HealthConfig
from gateway.fleet.vllm_metrics import EngineStats

_MAX_EJECTION_MULTIPLIER = 10


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A backend as discovery names it."""

    id: str
    url: str
    models: frozenset[str] = frozenset()
    weight: float = 1.0


@dataclass(slots=True)
class Backend:
    spec: BackendSpec
    healthy: bool = False
    stats: EngineStats | None = None
    scraped_at: float | None = None
    learned_models: frozenset[str] = frozenset()
    probe_failures: int = 0
    probe_successes: int = 0
    consecutive_errors: int = 0
    ejections: int = 0
    ejected_until: float = 0.0

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def models(self) -> frozenset[str]:
        return self.spec.models or self.learned_models

    def routable(self, now: float) -> bool:
        return self.healthy and now >= self.ejected_until


class Fleet:
    def __init__(self, health: HealthConfig, clock: Callable[[], float]) -> None:
        self._health = health
        self._clock = clock
        self.backends: dict[str, Backend] = {}

    def set_members(self, specs: Iterable[BackendSpec]) -> None:
        """Adopt discovery's current list; a backend that stays keeps its state."""
        fresh = {s.id: s for s in specs}
        for gone in self.backends.keys() - fresh.keys():
            del self.backends[gone]
        for backend_id, spec in fresh.items():
            current = self.backends.get(backend_id)
            if current is None:
                self.backends[backend_id] = Backend(spec)
            else:
                current.spec = spec

    def routable(self, model: str, exclude: Iterable[str] = ()) -> list[Backend]:
        now = self._clock()
        skip = set(exclude)
        return [b for b in self.backends.values() if b.id not in skip and model in b.models and b.routable(now)]

    def knows_model(self, model: str) -> bool:
        """False only when no backend, healthy or not, is known to serve ``model`` (a 404)."""
        return any(model in b.models or not b.models for b in self.backends.values())

    def serves_model(self, model: str) -> bool:
        return any(model in b.models for b in self.backends.values())

    def served_models(self) -> list[str]:
        now = self._clock()
        return sorted({m for b in self.backends.values() if b.routable(now) for m in b.models})

    def routable_ids(self) -> list[str]:
        now = self._clock()
        return [b.id for b in self.backends.values() if b.routable(now)]

    def ready(self) -> bool:
        return bool(self.routable_ids())

    # -- active health -------------------------------------------------------------------------

    def record_scrape(self, backend_id: str, stats: EngineStats | None) -> None:
        backend = self.backends.get(backend_id)
        if backend is None:
            return
        if stats is None:
            backend.probe_successes = 0
            backend.probe_failures += 1
            if backend.probe_failures >= self._health.unhealthy_threshold:
                backend.healthy = False
            return
        backend.stats = stats
        backend.scraped_at = self._clock()
        if stats.models:
            backend.learned_models = backend.learned_models | stats.models
        backend.probe_failures = 0
        backend.probe_successes += 1
        if backend.probe_successes >= self._health.healthy_threshold:
            backend.healthy = True

    def learn_models(self, backend_id: str, models: Iterable[str]) -> None:
        backend = self.backends.get(backend_id)
        if backend is not None:
            backend.learned_models = backend.learned_models | frozenset(models)

    # -- passive health ------------------------------------------------------------------------

    def record_success(self, backend_id: str) -> None:
        backend = self.backends.get(backend_id)
        if backend is not None:
            backend.consecutive_errors = 0

    def record_failure(self, backend_id: str) -> bool:
        """Count a proxied connect error or 5xx; True if the backend was ejected by it."""
        backend = self.backends.get(backend_id)
        if backend is None:
            return False
        backend.consecutive_errors += 1
        if backend.consecutive_errors < self._health.consecutive_errors or not self._may_eject():
            return False
        now = self._clock()
        backend.ejections += 1
        multiplier = min(backend.ejections, _MAX_EJECTION_MULTIPLIER)
        backend.ejected_until = now + self._health.base_ejection_s * multiplier
        backend.consecutive_errors = 0
        backend.healthy = False  # back only after good probes, once the ejection ran out
        backend.probe_successes = 0
        return True

    def _may_eject(self) -> bool:
        now = self._clock()
        total = len(self.backends)
        out = sum(1 for b in self.backends.values() if now < b.ejected_until)
        return total > 0 and (out + 1) * 100 <= self._health.max_ejection_percent * total
