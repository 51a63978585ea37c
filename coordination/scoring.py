"""The score a store evaluates when it picks and reserves a backend in one atomic step.

Routing policies run in the replica, but the numbers that change fastest - the fleet-wide in-flight count
of each backend, and which backend holds which prefix blocks - live in the store (Redis, shared by every
replica). To choose *and* reserve in one round trip with those numbers fresh, a policy states its choice
as a score per candidate that is linear in them, and the store evaluates it where they live:

    load_i  = queue_i + in_flight_i
    score_i = base_i + per_in_flight_i * in_flight_i - affinity_i
    affinity_i = per_cached_block_i * cached_blocks_i, or 0 when a guard is set and
                 load_i > (1 + guard_eps) * mean_j(load_j) + guard_slack      (the bounded-load guard)

Lowest score wins; ties go to the earlier line (policies shuffle the lines with their RNG first).

Admission rides on the same step: with ``admit_max_load`` set, the pick is refused (``OverCapacity``,
nothing reserved) when the fleet's load over the lines, ``sum_i(in_flight_i + outside_i)``, is already at
or above it. ``outside_i`` is the load the store cannot count (requests that reached vLLM some other
way, or a backend the gateway cannot see, counted full). Replicas admitting at the same moment thus see
each other's admissions: the reservation is the admission.
``cached_blocks_i`` is the length of the longest leading run of the request's prefix block hashes that the
store's prefix index holds for backend i. ``evaluate`` here is the reference; the Redis store's Lua script
computes the same thing, and a contract test holds them to it.

The types here are plain dataclasses, never mutated by convention: they are made on every request (a frozen
constructor costs about 4x, docs/proxy-path-costs.md section 5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PREFIX_CAP = 100_000


@dataclass(slots=True)
class ScoreLine:
    backend_id: str
    base: float
    per_in_flight: float = 0.0
    per_cached_block: float = 0.0
    queue: float = 0.0
    """Load the store does not count itself (vLLM's waiting queue from the last scrape)."""


@dataclass(slots=True)
class PickRequest:
    lines: tuple[ScoreLine, ...]
    prefix_blocks: tuple[str, ...] = ()
    """The request's chained prefix block hashes, in order (hex strings)."""
    guard_eps: float | None = None
    prefix_caps: tuple[int, ...] = ()
    """Per line: how many prefix entries the backend may hold in the index (its KV capacity in blocks)."""
    guard_slack: float = 0.0
    """Absolute slack of the guard: at low load a few requests more are no queue (vLLM batches them)."""
    admit_max_load: float | None = None
    outside_load: tuple[float, ...] = ()
    """Per line: load not counted as in-flight by the store (see the module docstring)."""

    def prefix_cap(self, index: int) -> int:
        return self.prefix_caps[index] if index < len(self.prefix_caps) else DEFAULT_PREFIX_CAP


class OverCapacity(Exception):
    """The fleet is at the request's admission limit: nothing was reserved."""

    def __init__(self, fleet_load: float) -> None:
        super().__init__(f"fleet load {fleet_load:g} is at the admission limit")
        self.fleet_load = fleet_load


@dataclass(slots=True)
class Pick:
    index: int
    """Position of the chosen line in ``PickRequest.lines``."""
    backend_id: str
    score: float
    in_flight: int
    """The backend's fleet-wide in-flight count just before this reservation."""
    cached_blocks: int
    guarded: bool
    """True if the bounded-load guard withheld this backend's affinity bonus."""


def evaluate(request: PickRequest, in_flight: Mapping[str, int], cached_blocks: Mapping[str, int]) -> Pick:
    lines = request.lines
    if not lines:
        raise ValueError("a pick needs at least one line")
    if request.admit_max_load is not None:
        outside = request.outside_load or (0.0,) * len(lines)
        fleet_load = sum(in_flight.get(line.backend_id, 0) + o for line, o in zip(lines, outside, strict=True))
        if fleet_load >= request.admit_max_load:
            raise OverCapacity(fleet_load)
    loads = [line.queue + in_flight.get(line.backend_id, 0) for line in lines]
    limit = None
    if request.guard_eps is not None:
        limit = (1 + request.guard_eps) * (sum(loads) / len(loads)) + request.guard_slack
    best: Pick | None = None
    for index, (line, load) in enumerate(zip(lines, loads, strict=True)):
        n = in_flight.get(line.backend_id, 0)
        cached = cached_blocks.get(line.backend_id, 0)
        guarded = limit is not None and load > limit
        affinity = 0.0 if guarded else line.per_cached_block * cached
        score = line.base + line.per_in_flight * n - affinity
        if best is None or score < best.score:
            best = Pick(index, line.backend_id, score, n, cached, guarded)
    assert best is not None
    return best
