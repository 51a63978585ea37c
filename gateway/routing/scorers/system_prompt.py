"""``system_prompt``: the reference router's affinity by system prompt, with a spill valve.

    value_i = 1 if i is the prompt's preferred backend and queue_i <= queue_threshold, else 0

The preferred backend is the first in weighted rendezvous order of a stable hash of the request's system
prompt (all leading system/developer messages), so every replica prefers the same backend for the same
prompt and a backend leaving moves only its own prompts. Above the threshold, or without a system prompt,
every candidate rates 0 and the other scorers decide (reason ``spill`` or ``no_system_prompt``). Give it a
weight that dominates the others: an affinity that a small load difference could outvote is no affinity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import msgspec

from gateway.routing.hashing import rendezvous_order, stable_hash64
from gateway.routing.plugins import Guard, Ratings
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

TYPE = "system_prompt"


class Params(msgspec.Struct, forbid_unknown_fields=True):
    queue_threshold: Annotated[float, msgspec.Meta(ge=0)] = 4.0


class SystemPrompt:
    type: ClassVar[str] = TYPE
    reads: ClassVar[frozenset[str]] = frozenset({"system_prompt", "weight", "queue"})
    guard: Guard | None = None

    def __init__(self, params: Params, context: BuildContext) -> None:
        self._threshold = params.queue_threshold

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings:
        nothing = [0.0] * len(candidates)
        if not request.system_prompt:
            return Ratings(nothing, reasons="no_system_prompt")
        key = f"{stable_hash64(request.system_prompt):016x}"
        preferred = rendezvous_order(key, [(c.id, c.weight) for c in candidates])[0]
        home = next(c for c in candidates if c.id == preferred)
        if home.queue_depth > self._threshold:
            return Ratings(nothing, reasons="spill")
        chosen = [c.id == preferred for c in candidates]
        return Ratings([1.0 if k else 0.0 for k in chosen], reasons=["affinity" if k else None for k in chosen])
