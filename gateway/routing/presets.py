"""Named presets (which scorers, with which weights, and which picker) and the plugin registry.

The four built-in presets are the project's policies, stated as plugins:

- ``prefix`` (default): session 1.0, prefix_cache 2.0, load 2.0, kv_usage 0.5, picker max_score;
- ``least_queue``: least_queue 1.0;
- ``cache_aware``: system_prompt 100.0 (dominant: the affinity holds unless it spills), least_queue 1.0;
- ``round_robin``: no scorers, picker round_robin.

An operator defines more under ``routing.presets.<name>`` (one named like a built-in replaces it), and
``resolve`` checks a preset - known scorer types, their parameters - without building anything, so config
loading can reject a bad one with the key's path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.config import PresetConfig, ScorerConfig
from gateway.routing.plugins import Scorer
from gateway.routing.scorers import kv_usage, least_queue, load, prefix_cache, session, system_prompt
from gateway.routing.scorers.context import BuildContext

if TYPE_CHECKING:
    from gateway.config import RoutingConfig

ScorerFactory = Callable[[Any, BuildContext], Scorer]

SCORERS: dict[str, tuple[type[msgspec.Struct], ScorerFactory]] = {
    load.TYPE: (load.Params, load.Load),
    kv_usage.TYPE: (kv_usage.Params, kv_usage.KvUsage),
    prefix_cache.TYPE: (prefix_cache.Params, prefix_cache.PrefixCache),
    session.TYPE: (session.Params, session.Session),
    least_queue.TYPE: (least_queue.Params, least_queue.LeastQueue),
    system_prompt.TYPE: (system_prompt.Params, system_prompt.SystemPrompt),
}


def _scorers(*weighted: tuple[str, float]) -> list[ScorerConfig]:
    return [ScorerConfig(type=t, weight=w) for t, w in weighted]


BUILT_IN: dict[str, PresetConfig] = {
    "prefix": PresetConfig(scorers=_scorers(("session", 1.0), ("prefix_cache", 2.0), ("load", 2.0), ("kv_usage", 0.5))),
    "least_queue": PresetConfig(scorers=_scorers(("least_queue", 1.0))),
    "cache_aware": PresetConfig(scorers=_scorers(("system_prompt", 100.0), ("least_queue", 1.0))),
    "round_robin": PresetConfig(picker="round_robin"),
}


@dataclass(frozen=True, slots=True)
class ScorerSpec:
    type: str
    weight: float
    params: msgspec.Struct
    """Decoded and checked, ready for the scorer's constructor."""


@dataclass(frozen=True, slots=True)
class PresetSpec:
    name: str
    scorers: tuple[ScorerSpec, ...]
    picker: str


def preset_names(config: RoutingConfig) -> set[str]:
    return set(BUILT_IN) | set(config.presets)


def resolve(config: RoutingConfig) -> PresetSpec:
    """The configured preset, checked; ValueError names the offending key."""
    name = config.policy
    preset = config.presets.get(name) or BUILT_IN.get(name)
    if preset is None:
        known = ", ".join(sorted(preset_names(config)))
        raise ValueError(f"routing.policy: unknown preset {name!r}; known: {known}")
    where = f"routing.presets.{name}" if name in config.presets else f"preset {name}"
    if not preset.scorers and preset.picker == "max_score":
        raise ValueError(f"{where}.scorers: a max_score preset needs at least one scorer")
    specs = tuple(_scorer_spec(s, f"{where}.scorers[{i}]") for i, s in enumerate(preset.scorers))
    return PresetSpec(name, specs, preset.picker)


def _scorer_spec(scorer: ScorerConfig, where: str) -> ScorerSpec:
    if scorer.type not in SCORERS:
        raise ValueError(f"{where}.type: unknown scorer {scorer.type!r}; known: {', '.join(sorted(SCORERS))}")
    params_type, _ = SCORERS[scorer.type]
    try:
        params = msgspec.convert(scorer.params, params_type, strict=False)
    except msgspec.ValidationError as e:
        raise ValueError(f"{where}.params: {e}") from e
    return ScorerSpec(scorer.type, scorer.weight, params)


def build_scorer(spec: ScorerSpec, context: BuildContext) -> Scorer:
    _, factory = SCORERS[spec.type]
    return factory(spec.params, context)
