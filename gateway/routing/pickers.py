"""Pickers: how the runner turns weighted scores into one backend.

``max_score`` leaves the choice to the store: the highest weighted score at the moment of the pick wins,
ties going to the earlier line, and the lines are shuffled with the runner's seeded RNG first, so ties
fall at random (replicas do not herd) yet a test with a fixed seed is reproducible.

``round_robin`` decides in the replica: each candidate in turn, in id order. The turn counter is local to
the replica and starts at a random turn, so N replicas fed in step by a client's own round robin do not all
send their first, second... request to the same backend. The store still sees every candidate (admission
counts the whole fleet's load), with the turn's backend on top.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import ClassVar

from gateway.routing.plugins import Picker
from gateway.routing.types import Candidate


class MaxScore:
    type: ClassVar[str] = "max_score"
    reason: ClassVar[str | None] = None

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def arrange(self, candidates: Sequence[Candidate]) -> tuple[list[int], int | None]:
        order = list(range(len(candidates)))
        self._rng.shuffle(order)
        return order, None


class RoundRobin:
    type: ClassVar[str] = "round_robin"
    reason: ClassVar[str | None] = "turn"

    def __init__(self, rng: random.Random) -> None:
        self._turn = rng.randrange(1 << 30)

    def arrange(self, candidates: Sequence[Candidate]) -> tuple[list[int], int | None]:
        order = sorted(range(len(candidates)), key=lambda i: candidates[i].id)
        chosen = self._turn % len(order)
        self._turn += 1
        return order, chosen


PICKERS: dict[str, Callable[[random.Random], Picker]] = {MaxScore.type: MaxScore, RoundRobin.type: RoundRobin}
