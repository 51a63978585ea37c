"""The routing runner: the one entry point the request path calls (``build_router`` -> ``Router``).

Per attempt: ``filter`` narrows the fleet view (model, health, exclusions), ``plan`` states the choice as
score lines the coordination store evaluates atomically with the reservation, ``decide`` turns the store's
``Pick`` into a ``RouteDecision`` whose ``receipt`` is the ``x-gateway-route`` header.

(Transitional: a thin adapter over ``gateway.routing.policies``.)
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coordination.scoring import Pick, PickRequest
from gateway.routing import types
from gateway.routing.prefix import PrefixHasher
from gateway.routing.registry import build_policy
from gateway.routing.types import Candidate, RequestFeatures

if TYPE_CHECKING:
    from gateway.config import RoutingConfig
    from gateway.fleet.backends import Backend
    from gateway.fleet.view import FleetView

PluginTimer = Callable[[str, str, str, float], None]
"""(extension_point, plugin_type, plugin_name, seconds): feeds gateway_routing_plugin_duration_seconds."""


@dataclass(frozen=True, slots=True)
class RoutePlan:
    inner: types.RoutePlan
    backends: tuple[Backend, ...]

    def pick_request(self) -> PickRequest:
        return self.inner.pick_request()

    def backend(self, backend_id: str) -> Backend:
        return next(b for b in self.backends if b.id == backend_id)


@dataclass(frozen=True, slots=True)
class RouteDecision:
    backend_id: str
    policy: str
    reason: str
    parts: dict[str, float] = field(default_factory=dict)
    predicted_cached_tokens: int | None = None

    def receipt(self, attempts: int) -> str:
        """The x-gateway-route header: policy, reason, attempts and the numbers that decided the pick."""
        parts = "".join(f"; {k}={v:.4g}" for k, v in self.parts.items())
        return f"policy={self.policy}; reason={self.reason}; attempts={attempts}{parts}"


def candidate(backend: Backend, view: FleetView) -> Candidate:
    load = view.load(backend.id)
    stats = backend.stats
    return Candidate(
        id=backend.id,
        weight=backend.spec.weight,
        waiting=stats.waiting if stats else 0.0,
        running=stats.running if stats else 0.0,
        kv_usage=stats.kv_usage if stats else 0.0,
        in_flight=load.in_flight,
        ttft_ewma_s=load.ttft_ewma_s,
        kv_capacity_tokens=stats.kv_capacity_tokens if stats else None,
    )


class Router:
    def __init__(self, policy: types.Policy, hasher: PrefixHasher, timer: PluginTimer | None) -> None:
        self.name = policy.name
        self._policy = policy
        self._hasher = hasher
        self._timer = timer

    def prepare(self, features: RequestFeatures) -> RequestFeatures:
        if not self._policy.uses_prefix or features.prefix_blocks:
            return features
        blocks = self._hasher.blocks(features.model, features.prompt_text, features.cache_salt)
        return dataclasses.replace(features, prefix_blocks=blocks)

    def filter(self, features: RequestFeatures, view: FleetView, excluded: Collection[str]) -> tuple[Backend, ...]:
        return tuple(
            b for b in view.backends if b.id not in excluded and features.model in b.models and b.routable(view.now)
        )

    def plan(self, features: RequestFeatures, backends: Sequence[Backend], view: FleetView) -> RoutePlan:
        start = time.perf_counter()
        inner = self._policy.plan(features, [candidate(b, view) for b in backends])
        if self._timer is not None:
            self._timer("scorer", self.name, self.name, time.perf_counter() - start)
        return RoutePlan(inner, tuple(backends))

    def decide(self, plan: RoutePlan, pick: Pick) -> RouteDecision:
        d = types.RouteDecision.of(plan.inner, pick)
        predicted = None
        if plan.inner.prefix_blocks:
            predicted = self._hasher.predicted_tokens(pick.cached_blocks)
            d.parts["predicted_cached_tokens"] = float(predicted)
        return RouteDecision(d.backend_id, d.policy, d.reason, d.parts, predicted)


def build_router(config: RoutingConfig, rng: random.Random, timer: PluginTimer | None = None) -> Router:
    hasher = PrefixHasher(config.prefix_block_chars, config.prefix_max_blocks)
    return Router(build_policy(config, rng), hasher, timer)
