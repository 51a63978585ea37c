"""The routing runner: the one entry point the request path calls (``build_router`` -> ``Router``).

Per attempt: ``filter`` narrows the fleet view (model, health, exclusions); ``plan`` has every scorer rate
every candidate, weighs and clamps the ratings, lets the picker arrange them, and compiles the result into
the coordination store's score lines, which the store evaluates atomically with the reservation;
``decide`` turns the store's ``Pick`` into a ``RouteDecision`` whose ``receipt`` is the ``x-gateway-route``
header. The runner times every plugin, and it is the only routing module that speaks the store's language
(``coordination.scoring``): plugins see features and candidates only.

Compiling: for candidate i, with ratings s_k (clamped to [0, 1] at the snapshot) and weights w_k,

    S_i(n, c) = sum_k w_k * (s_ik + per_in_flight_ik * (n - n0_i) + per_cached_block_ik * c)

where n is the fleet-wide in-flight count at the pick (n0_i the snapshot's) and c the leading prefix blocks
the backend holds. The store keeps the lowest ``base + per_in_flight * n - per_cached_block * c``, so the
line is ``-S_i``: base = -(sum w s - n0 * sum w per_in_flight), per_in_flight = -sum w per_in_flight,
per_cached_block = sum w per_cached_block. The store's guard withholds the cached-block term.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from coordination.scoring import DEFAULT_PREFIX_CAP, Pick, PickRequest, ScoreLine
from gateway.routing import presets
from gateway.routing.filters import FILTERS
from gateway.routing.pickers import PICKERS
from gateway.routing.plugins import Filter, Guard, Picker, Ratings, Scorer
from gateway.routing.prefix import PrefixHasher
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

if TYPE_CHECKING:
    from gateway.config import RoutingConfig
    from gateway.fleet.backends import Backend
    from gateway.fleet.view import FleetView

Observe = Callable[[float], None]
PluginTimer = Callable[[str, str, str], Observe]
"""(extension_point, plugin_type, plugin_name) -> an observer of seconds, bound once at build time; it
feeds gateway_routing_plugin_duration_seconds."""

PLUGIN_TIMING_EVERY = 16
"""Plugins are timed on one filter call and one plan call in this many; the histogram is of those calls."""

T = TypeVar("T")

__all__ = ["PluginTimer", "RouteDecision", "RoutePlan", "Router", "build_router"]


@dataclasses.dataclass(slots=True)
class RoutePlan:
    """A preset's choice, stated as score lines the coordination store evaluates atomically with the reservation."""

    policy: str
    request: PickRequest
    order: tuple[int, ...]
    """Per line: the candidate it scores (the picker's arrangement)."""
    ratings: tuple[Ratings, ...]
    """Every scorer's ratings, in preset order; the winner's reason and parts are read from them."""
    picker_reason: str | None = None
    backends: tuple[Backend, ...] = ()

    def pick_request(self) -> PickRequest:
        return self.request

    def explain(self, line: int) -> tuple[str, dict[str, float]]:
        """The word and numbers that explain a win on ``line``: the picker's word, or the first scorer's in
        preset order that has one; the parts of every scorer."""
        i = self.order[line]
        reason = self.picker_reason or next((w for r in self.ratings if (w := r.reason(i))), "score")
        return reason, {k: column[i] for r in self.ratings for k, column in r.parts.items()}

    def backend(self, backend_id: str) -> Backend:
        return next(b for b in self.backends if b.id == backend_id)


@dataclasses.dataclass(slots=True)
class RouteDecision:
    backend_id: str
    policy: str
    reason: str
    parts: dict[str, float] = dataclasses.field(default_factory=dict)
    """The numbers that decided it; they go into the x-gateway-route receipt."""
    predicted_cached_tokens: int | None = None

    @classmethod
    def of(cls, plan: RoutePlan, pick: Pick, predicted_cached_tokens: int | None) -> RouteDecision:
        """The decision for the store's pick; with prefix blocks in play, the reason says whether the cache
        decided (``affinity``), the guard overrode it (``guarded``) or nothing was cached (``least_load``)."""
        reason, parts = plan.explain(pick.index)
        parts |= {"in_flight": float(pick.in_flight), "score": 0.0 - pick.score}
        if plan.request.prefix_blocks:
            parts["cached_blocks"] = float(pick.cached_blocks)
            if pick.guarded:
                reason = "guarded"
            elif reason == "affinity" and pick.cached_blocks == 0:
                reason = "least_load"
        if predicted_cached_tokens is not None:
            parts["predicted_cached_tokens"] = float(predicted_cached_tokens)
        return cls(pick.backend_id, plan.policy, reason, parts, predicted_cached_tokens)

    def receipt(self, attempts: int) -> str:
        """The x-gateway-route header: policy, reason, attempts and the numbers that decided the pick."""
        parts = "".join(f"; {k}={v:.4g}" for k, v in self.parts.items())
        return f"policy={self.policy}; reason={self.reason}; attempts={attempts}{parts}"


def _untimed(point: str, plugin_type: str, name: str) -> Observe:
    return lambda seconds: None


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


@dataclasses.dataclass(slots=True)
class _Weighted:
    scorer: Scorer
    weight: float
    observe: Observe


class Router:
    def __init__(
        self,
        name: str,
        scorers: Sequence[_Weighted],
        picker: Picker,
        hasher: PrefixHasher,
        timer: PluginTimer,
        timing_every: int = PLUGIN_TIMING_EVERY,
    ) -> None:
        self.name = name
        self._filter_calls, self._plan_calls = itertools.count(), itertools.count()
        self._timing_every = timing_every
        self._scorers = tuple(scorers)
        self._weights = tuple(w.weight for w in self._scorers)
        self._picker = picker
        self._hasher = hasher
        self._filters: tuple[tuple[Filter, Observe], ...] = tuple((f, timer("filter", f.type, f.type)) for f in FILTERS)
        self._observe_picker = timer("picker", picker.type, picker.type)
        self.reads = frozenset().union(*(w.scorer.reads for w in self._scorers))
        self._reads_prefix = "prefix_blocks" in self.reads
        self._guard: Guard | None = next((w.scorer.guard for w in self._scorers if w.scorer.guard), None)

    def prepare(self, features: RequestFeatures) -> RequestFeatures:
        """Hash the prompt's prefix blocks if, and only if, a scorer reads them."""
        if not self._reads_prefix or features.prefix_blocks:
            return features
        blocks = self._hasher.blocks(features.model, features.prompt_text, features.cache_salt)
        return dataclasses.replace(features, prefix_blocks=blocks)

    def filter(self, features: RequestFeatures, view: FleetView, excluded: Collection[str]) -> tuple[Backend, ...]:
        backends, skip = tuple(view.backends), frozenset(excluded)
        if self._timed(self._filter_calls):
            for f, observe in self._filters:
                backends = _call(observe, f.keep, features, backends, view, skip)
            return backends
        for f, _ in self._filters:
            backends = f.keep(features, backends, view, skip)
        return backends

    def plan(self, features: RequestFeatures, backends: Sequence[Backend], view: FleetView) -> RoutePlan:
        return self.plan_candidates(features, [candidate(b, view) for b in backends], tuple(backends))

    def plan_candidates(
        self, features: RequestFeatures, candidates: Sequence[Candidate], backends: tuple[Backend, ...] = ()
    ) -> RoutePlan:
        """Score, weigh, arrange and compile; ``candidates`` is never empty."""
        if self._timed(self._plan_calls):
            ratings = tuple(_call(w.observe, w.scorer.score, features, candidates) for w in self._scorers)
            order, chosen = _call(self._observe_picker, self._picker.arrange, candidates)
        else:
            ratings = tuple([w.scorer.score(features, candidates) for w in self._scorers])
            order, chosen = self._picker.arrange(candidates)
        if chosen is None:
            lines = _compile(candidates, order, ratings, self._weights)
        else:
            lines = [ScoreLine(candidates[i].id, 0.0 if at == chosen else 1.0) for at, i in enumerate(order)]
        blocks = features.prefix_blocks if self._reads_prefix else ()
        guard = self._guard
        request = PickRequest(
            tuple(lines),
            blocks,
            guard.eps if guard else None,
            _caps(order, ratings) if blocks else (),
            guard.slack if guard else 0.0,
        )
        return RoutePlan(self.name, request, tuple(order), ratings, self._picker.reason, backends)

    def _timed(self, calls: Iterator[int]) -> bool:
        """Whether this call's plugins are timed: one call in ``timing_every`` (two clock reads and a histogram
        observation per plugin cost about as much as the plugins themselves)."""
        return next(calls) % self._timing_every == 0

    def decide(self, plan: RoutePlan, pick: Pick) -> RouteDecision:
        predicted = self._hasher.predicted_tokens(pick.cached_blocks) if plan.request.prefix_blocks else None
        return RouteDecision.of(plan, pick, predicted)


def _call(observe: Observe, fn: Callable[..., T], *args: Any) -> T:
    start = time.perf_counter()
    out = fn(*args)
    observe(time.perf_counter() - start)
    return out


def _compile(
    candidates: Sequence[Candidate], order: Sequence[int], ratings: Sequence[Ratings], weights: Sequence[float]
) -> list[ScoreLine]:
    """The weighted, clamped sum of the ratings as the store's lines (lowest wins, so each line is -S_i)."""
    per_block = sum(w * r.per_cached_block for r, w in zip(ratings, weights, strict=True))
    columns = [(w, r.values, r.per_in_flight) for r, w in zip(ratings, weights, strict=True)]
    lines = []
    for i in order:
        value = slope = 0.0
        for w, values, slopes in columns:
            v = values[i]
            value += w * (0.0 if v < 0.0 else 1.0 if v > 1.0 else v)
            if slopes is not None:
                slope += w * slopes[i]
        c = candidates[i]
        lines.append(ScoreLine(c.id, slope * c.in_flight - value, -slope, per_block, c.queue_depth))
    return lines


def _caps(order: Sequence[int], ratings: Sequence[Ratings]) -> tuple[int, ...]:
    """Per line: the tightest prefix index cap any scorer knows for that backend."""
    columns = [r.prefix_caps for r in ratings if r.prefix_caps is not None]
    return tuple(min((cap for col in columns if (cap := col[i])), default=DEFAULT_PREFIX_CAP) for i in order)


def build_router(
    config: RoutingConfig,
    rng: random.Random,
    timer: PluginTimer | None = None,
    *,
    timing_every: int = PLUGIN_TIMING_EVERY,
) -> Router:
    """The configured preset's plugins, built once per process; ValueError names a bad key."""
    spec = presets.resolve(config)
    timer = timer or _untimed
    context = BuildContext(rng, config.prefix_block_chars)
    scorers = []
    for s in spec.scorers:
        scorer = presets.build_scorer(s, context)
        scorers.append(_Weighted(scorer, s.weight, timer("scorer", s.type, s.type)))
    picker = PICKERS[spec.picker](rng)
    hasher = PrefixHasher(config.prefix_block_chars, config.prefix_max_blocks)
    return Router(spec.name, scorers, picker, hasher, timer, timing_every)
