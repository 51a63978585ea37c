"""The three kinds of routing plugin, as the runner sees them: filters, scorers, pickers.

A **filter** narrows the candidates (model, health, exclusions). A **scorer** rates every candidate in
[0, 1], higher is better, and declares which request and candidate fields it ``reads``. A **picker**
chooses among the weighted sums. Scorers and pickers never see the coordination store: the runner
(``routing.runner``) weights, clamps and compiles their scores into the store's score lines, so the pick
and the reservation stay one atomic step with fresh fleet-wide counts.

A score is stated at the snapshot the replica holds, plus how it moves with the two numbers only the
store knows exactly at the moment of the pick: the backend's fleet-wide in-flight count, and the number of
leading prefix blocks it holds. The runner clamps each value to [0, 1]; the slopes carry on from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, ClassVar, Protocol

import msgspec

if TYPE_CHECKING:
    from gateway.fleet.backends import Backend
    from gateway.fleet.view import FleetView
    from gateway.routing.types import Candidate, RequestFeatures

READABLE = frozenset(
    {"model", "health", "queue", "in_flight", "latency", "kv_usage", "kv_capacity", "weight"}
    | {"prefix_blocks", "session_id", "system_prompt"}
)
"""Every name a plugin may declare in ``reads``; ``prefix_blocks`` makes the runner hash the prompt."""


@dataclass(slots=True)
class Ratings:
    """One scorer's ratings of every candidate, as columns in candidate order (one list per field, not one
    object per candidate: the runner reads them for every request, over the whole fleet)."""

    values: Sequence[float]
    """In [0, 1] at the snapshot (the runner clamps them), higher is better."""
    per_in_flight: Sequence[float] | None = None
    """How each value moves per request the backend has in flight beyond the snapshot's count (None: not)."""
    per_cached_block: float = 0.0
    """How every value moves per leading prefix block the backend holds (values are at zero blocks)."""
    reasons: Sequence[str | None] | str | None = None
    """A short bounded word for the route receipt where this scorer explains the pick (``affinity``,
    ``spill``): one per candidate, or one for all."""
    parts: Mapping[str, Sequence[float]] = field(default_factory=dict)
    """Named columns of the numbers that explain the ratings; the winner's go into the route receipt."""
    prefix_caps: Sequence[int | None] | None = None
    """How many prefix index entries each backend may hold (its KV capacity), where the scorer knows."""

    def reason(self, index: int) -> str | None:
        if self.reasons is None or isinstance(self.reasons, str):
            return self.reasons
        return self.reasons[index]


@dataclass(frozen=True, slots=True)
class Guard:
    """The bounded-load guard: a backend whose load exceeds ``(1 + eps) x mean + slack`` gets no cache bonus.

    The absolute slack keeps a few requests of difference at low load from breaking affinity: vLLM runs
    them in one batch anyway.
    """

    eps: float = 0.5
    slack: float = 2.0

    def limit(self, candidates: Sequence[Candidate]) -> float:
        mean = sum(c.load for c in candidates) / len(candidates)
        return (1 + self.eps) * mean + self.slack


class GuardParams(msgspec.Struct, forbid_unknown_fields=True):
    """The guard's TOML keys, for the scorers that use it."""

    guard_eps: Annotated[float, msgspec.Meta(ge=0)] = 0.5
    guard_slack: Annotated[float, msgspec.Meta(ge=0)] = 2.0

    def guard(self) -> Guard:
        return Guard(self.guard_eps, self.guard_slack)


class Filter(Protocol):
    type: ClassVar[str]
    reads: ClassVar[frozenset[str]]

    def keep(
        self, request: RequestFeatures, backends: tuple[Backend, ...], view: FleetView, excluded: frozenset[str]
    ) -> tuple[Backend, ...]: ...


class Scorer(Protocol):
    type: ClassVar[str]
    reads: ClassVar[frozenset[str]]
    guard: Guard | None
    """Set by a scorer whose ``per_cached_block`` the store must withhold from overloaded backends."""

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings: ...


class Picker(Protocol):
    type: ClassVar[str]
    reason: ClassVar[str | None]
    """The receipt's reason when this picker decides in the replica (round robin's ``turn``)."""

    def arrange(self, candidates: Sequence[Candidate]) -> tuple[list[int], int | None]:
        """The order the store sees the candidates in (ties go to the earlier) and, if the picker decides
        here rather than by the highest weighted score, the chosen position in that order."""
        ...
