"""``session``: the request's session stays on one backend while that backend is not overloaded.

    value_i = 1 if i is the session's backend and load_i <= (1 + guard_eps) x mean + guard_slack, else 0

The session's backend is the first in weighted rendezvous order of the session id (the header named by
``routing.session_header``), the same on every replica; a backend leaving moves only its own sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gateway.routing.hashing import rendezvous_order
from gateway.routing.plugins import Guard, GuardParams, Ratings
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

TYPE = "session"


Params = GuardParams


class Session:
    type: ClassVar[str] = TYPE
    reads: ClassVar[frozenset[str]] = frozenset({"session_id", "weight", "queue", "in_flight"})
    guard: Guard | None = None

    def __init__(self, params: Params, context: BuildContext) -> None:
        self._guard = params.guard()

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> Ratings:
        if not request.session_id:
            return Ratings([0.0] * len(candidates))
        home = rendezvous_order(request.session_id, [(c.id, c.weight) for c in candidates])[0]
        limit = self._guard.limit(candidates)
        kept = [c.id == home and c.load <= limit for c in candidates]
        return Ratings([1.0 if k else 0.0 for k in kept], reasons=["session" if k else None for k in kept])
