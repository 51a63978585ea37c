"""What a routing policy sees and what it returns.

A policy is a pure function of (request features, candidates): no I/O, no clock, no globals, so it can be
tested on crafted snapshots. It returns a ``RoutePlan``: a score per candidate, linear in the numbers only
the coordination store knows exactly (fleet-wide in-flight, prefix blocks held), which the store evaluates
in the same atomic step as the reservation (see ``coordination.scoring``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from coordination.scoring import Pick, PickRequest, ScoreLine, evaluate


@dataclass(frozen=True, slots=True)
class RequestFeatures:
    """The parts of a request that routing reads, decoded once from the body."""

    model: str
    stream: bool
    system_prompt: str | None = None
    """The leading system/developer message(s), the reference design's affinity key."""
    prompt_chars: int = 0
    prompt_text: str = ""
    """The prompt in canonical, role-aware form (what prefix block hashes are cut from)."""
    cache_salt: str | None = None
    """vLLM's ``cache_salt``: requests with different salts never share cached blocks."""
    prefix_blocks: tuple[str, ...] = ()
    """Chained prefix block hashes, filled in for policies that use them (see ``routing.prefix``)."""
    session_id: str | None = None
    priority: str = "normal"
    """high, normal or low: from the x-priority header or the configured default."""


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
    kv_capacity_tokens: int | None = None
    """block_size x num_gpu_blocks from vLLM's cache_config_info."""

    @property
    def queue_depth(self) -> float:
        return self.waiting


@dataclass(frozen=True, slots=True)
class RouteOption:
    """One candidate as the policy scores it, with the words and numbers that explain a win."""

    line: ScoreLine
    reason: str
    """A short bounded word: why this one would be chosen (``affinity``, ``spill``, ``least_score``, ``turn``)."""
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A policy's choice, stated as scores the coordination store evaluates atomically with the reservation."""

    policy: str
    options: tuple[RouteOption, ...]
    prefix_blocks: tuple[str, ...] = ()
    guard_eps: float | None = None
    prefix_caps: tuple[int, ...] = ()
    guard_slack: float = 0.0

    def pick_request(self) -> PickRequest:
        lines = tuple(o.line for o in self.options)
        return PickRequest(lines, self.prefix_blocks, self.guard_eps, self.prefix_caps, self.guard_slack)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    backend_id: str
    policy: str
    reason: str
    parts: dict[str, float] = field(default_factory=dict)
    """The numbers that decided it; they go into the x-gateway-route receipt."""

    @classmethod
    def of(cls, plan: RoutePlan, pick: Pick) -> RouteDecision:
        option = plan.options[pick.index]
        parts = {**option.parts, "in_flight": float(pick.in_flight), "score": pick.score}
        reason = option.reason
        if plan.prefix_blocks:
            parts["cached_blocks"] = float(pick.cached_blocks)
            if pick.guarded:
                reason = "guarded"
            elif reason == "affinity" and pick.cached_blocks == 0:
                reason = "least_load"  # nothing cached anywhere useful: the load terms decided
        return cls(pick.backend_id, plan.policy, reason, parts)


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What a policy factory may use besides its own parameters."""

    rng: random.Random
    prefix_block_chars: int = 256


class Policy(Protocol):
    """A routing algorithm. ``candidates`` is never empty and already filtered."""

    name: str
    uses_prefix: bool
    """True if the policy reads ``RequestFeatures.prefix_blocks`` (they are hashed only then)."""

    def plan(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> RoutePlan: ...


def decide(
    policy: Policy,
    request: RequestFeatures,
    candidates: Sequence[Candidate],
    cached_blocks: Mapping[str, int] | None = None,
) -> RouteDecision:
    """Plan and evaluate against the candidates' own in-flight counts: the policy as a pure function."""
    plan = policy.plan(request, candidates)
    in_flight = {c.id: c.in_flight for c in candidates}
    return RouteDecision.of(plan, evaluate(plan.pick_request(), in_flight, cached_blocks or {}))
