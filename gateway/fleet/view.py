"""One look at the fleet, taken once per routing attempt and shared by admission and routing.

``backends`` are every backend this replica knows (routing's filters narrow them: model, health,
exclusions); ``loads`` is the store's latest load view for them (no I/O); ``now`` is the clock at the look,
so health and staleness are judged at one instant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from coordination import BackendLoad, CoordinationStore
from gateway.fleet.backends import Backend, Fleet

NO_LOAD = BackendLoad()


@dataclass(slots=True)
class FleetView:
    backends: tuple[Backend, ...]
    loads: Mapping[str, BackendLoad]
    now: float

    @classmethod
    def take(cls, fleet: Fleet, store: CoordinationStore, now: float) -> FleetView:
        backends = tuple(fleet.backends.values())
        return cls(backends, store.cached_loads([b.id for b in backends]), now)

    def load(self, backend_id: str) -> BackendLoad:
        return self.loads.get(backend_id) or NO_LOAD
