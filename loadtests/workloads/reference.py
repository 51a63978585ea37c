"""Workload 1, the reference: many tenants, each with its own long system prompt, short user turns.

Every request is ``[system: the tenant's prompt, user: a fresh short question]`` with ``output_tokens``
to generate and a priority drawn from the high/normal/low mix. Tenants are chosen by a Zipf law (tenant 0
the most popular). The defaults make the KV cache matter: 200 tenants x ~3,000-token prompts is ~600K
tokens of distinct prefixes, about one simulated L4's whole cache (37,159 blocks x 16 tokens), so a router
that spreads every tenant over all backends cannot keep them all cached, while one that keeps each tenant on
one backend can (8 backends hold ~8x that).

Each tenant's prompt starts with its own tag, so no two tenants share even one KV block; user turns start
with the request index, so they never share anything beyond the system prompt.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from loadtests.workloads.base import WeightedChoice, WorkItem, jittered, priority_chooser, zipf_weights
from loadtests.workloads.text import TextPool, tokens_to_chars


@dataclass(frozen=True, slots=True)
class ReferenceParams:
    tenants: int = 200
    system_tokens: int = 3000
    """Mean system prompt length; each tenant's is drawn within +-``length_jitter``."""
    user_tokens: int = 50
    output_tokens: int = 100
    length_jitter: float = 0.2
    """Relative spread of system prompt and user turn lengths (0 = all equal)."""
    zipf: float = 1.0
    """Tenant popularity exponent (0 = uniform)."""
    priority_mix: tuple[float, float, float] = (20.0, 50.0, 30.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tenants < 1:
            raise ValueError("tenants must be >= 1")
        if self.system_tokens < 1 or self.user_tokens < 1 or self.output_tokens < 1:
            raise ValueError("system, user and output tokens must be >= 1")


class ReferenceWorkload:
    name = "reference"

    def __init__(self, params: ReferenceParams, pool: TextPool | None = None) -> None:
        self.params = params
        self.pool = pool or TextPool(params.seed)
        rng = random.Random(f"{params.seed}:reference:tenants")
        self.system_prompts = [
            self.pool.tagged(
                f"You are the assistant of tenant {t:05d}. Follow its policies below.\n",
                f"tenant:{t}",
                tokens_to_chars(jittered(rng, params.system_tokens, params.length_jitter)),
            )
            for t in range(params.tenants)
        ]
        self._tenant = WeightedChoice(list(range(params.tenants)), zipf_weights(params.tenants, params.zipf))
        self._priority = priority_chooser(params.priority_mix)

    def describe(self) -> str:
        p = self.params
        mix = "/".join(f"{w:g}" for w in p.priority_mix)
        return (
            f"reference: {p.tenants} tenants, system prompts ~{p.system_tokens} tokens (+-{p.length_jitter:.0%}), "
            f"user turns ~{p.user_tokens} tokens, {p.output_tokens} output tokens, Zipf {p.zipf:g} tenant "
            f"popularity, priority mix high/normal/low {mix}, seed {p.seed}"
        )

    def items(self) -> Iterator[WorkItem]:
        p = self.params
        rng = random.Random(f"{p.seed}:reference:requests")
        index = 0
        while True:
            tenant = self._tenant.draw(rng)
            priority = self._priority.draw(rng)
            user_chars = tokens_to_chars(jittered(rng, p.user_tokens, p.length_jitter))
            user = self.pool.tagged(f"Question {index}: ", f"user:{index}", user_chars)
            yield WorkItem(
                index=index,
                messages=(
                    {"role": "system", "content": self.system_prompts[tenant]},
                    {"role": "user", "content": user},
                ),
                max_tokens=p.output_tokens,
                priority=priority,
                group=f"tenant-{tenant}",
            )
            index += 1
