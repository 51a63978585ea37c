"""What every workload yields: a deterministic, lazily built stream of chat requests."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

PRIORITIES = ("high", "normal", "low")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One chat completion request of a workload, before it is sent."""

    index: int
    """Position in the workload's stream (0, 1, 2, ...)."""
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    priority: str
    """``high``, ``normal`` or ``low``: sent as the ``x-priority`` header."""
    group: str
    """The tenant, conversation or trace the request belongs to (for reports and tests)."""
    session: str | None = None
    """A conversation id (chat workload); sent as ``x-session-id`` only when asked to."""
    after: int | None = None
    """Index of an earlier item that must have completed before this one is sent (the previous turn)."""
    arrival_s: float | None = None
    """Arrival time in simulated seconds from the stream's start (trace replay), or None."""

    @property
    def system_prompt(self) -> str | None:
        return self.messages[0]["content"] if self.messages and self.messages[0]["role"] == "system" else None


class Workload(Protocol):
    name: str

    def items(self) -> Iterator[WorkItem]:
        """A fresh iterator over the whole stream; the same items, in the same order, on every call."""
        ...

    def describe(self) -> str:
        """One line for the report: the workload and its parameters."""
        ...


class WeightedChoice(Generic[T]):
    """Draws from a fixed discrete distribution with one ``random()`` and a binary search."""

    def __init__(self, values: Sequence[T], weights: Sequence[float]) -> None:
        if len(values) != len(weights) or not values:
            raise ValueError("values and weights must be non-empty and of the same length")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        self.values = list(values)
        self._cum = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> T:
        i = bisect.bisect_right(self._cum, rng.random() * self._cum[-1])
        return self.values[min(i, len(self.values) - 1)]


def priority_chooser(mix: Sequence[float]) -> WeightedChoice[str]:
    """``mix`` = weights of high, normal, low (e.g. 20, 50, 30)."""
    if len(mix) != len(PRIORITIES):
        raise ValueError("the priority mix needs three weights: high, normal, low")
    return WeightedChoice(PRIORITIES, mix)


def zipf_weights(n: int, exponent: float) -> list[float]:
    """Popularity of ranks 1..n: ``1 / rank ** exponent`` (0 = uniform)."""
    return [1.0 / (rank**exponent) for rank in range(1, n + 1)]


def jittered(rng: random.Random, mean: int, jitter: float) -> int:
    """An integer uniformly within ``mean * (1 +- jitter)``, at least 1."""
    if jitter <= 0:
        return max(1, mean)
    return max(1, round(mean * rng.uniform(1 - jitter, 1 + jitter)))
