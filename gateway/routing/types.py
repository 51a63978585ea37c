"""What a routing policy sees and what it returns.

A policy is a pure function of (request features, candidates): no I/O, no clock, no globals, so it can be
tested on crafted snapshots. The dispatcher builds the candidates from the fleet's health state and the
coordination store's load view, and reserves the chosen backend in the same atomic step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """The parts of a request that routing reads, decoded once from the body."""

    model: str
    stream: bool
    system_prompt: str | None = None
    """The leading system/developer message(s), the reference design's affinity key."""
    prompt_chars: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One healthy backend that serves the requested model, as the fleet currently knows it."""

    id: str
    weight: float = 1.0
    waiting: float = 0.0
    """vLLM's num_requests_waiting from the last scrape."""
    running: float = 0.0
    kv_usage: float = 0.0
    in_flight: int = 0
    """Requests the gateway fleet has open on this backend right now (all replicas)."""
    ttft_ewma_s: float | None = None
    """Moving average of the time to first token the gateway observed; None before the first one."""

    @property
    def queue_depth(self) -> float:
        return self.waiting


@dataclass(frozen=True, slots=True)
class RouteDecision:
    backend_id: str
    policy: str
    reason: str
    """A short bounded word: why this one (e.g. ``affinity``, ``spill``, ``least_score``, ``turn``)."""
    parts: dict[str, float] = field(default_factory=dict)
    """The numbers that decided it; they go into the x-gateway-route receipt."""


class Policy(Protocol):
    """A routing algorithm. ``candidates`` is never empty and already filtered."""

    name: str

    def choose(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RouteDecision: ...
