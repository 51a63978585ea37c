"""Every routing policy, registered in one place by its type name."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.routing.policies import cache_aware, least_queue, prefix, round_robin
from gateway.routing.types import BuildContext, Policy

if TYPE_CHECKING:
    from gateway.config import RoutingConfig

Factory = Callable[[Mapping[str, Any], BuildContext], Policy]

POLICIES: dict[str, Factory] = {
    prefix.TYPE: prefix.build,
    round_robin.TYPE: round_robin.build,
    least_queue.TYPE: least_queue.build,
    cache_aware.TYPE: cache_aware.build,
}


def policy_names() -> set[str]:
    return set(POLICIES)


def build_policy(config: RoutingConfig, rng: random.Random | None = None) -> Policy:
    """The configured policy with its parameters; ValueError names a bad key."""
    factory = POLICIES[config.policy]
    context = BuildContext(rng or random.Random(), config.prefix_block_chars)
    return factory(config.params.get(config.policy, {}), context)
