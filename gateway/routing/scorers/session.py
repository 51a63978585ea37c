"""``session``: the request's session stays on one backend while that backend is not overloaded.

    value_i = 1 if i is the session's backend and load_i <= (1 + guard_eps) x mean + guard_slack, else 0

The session's backend is the first in weighted rendezvous order of the session id (the header named by
``routing.session_header``), the same on every replica; a backend leaving moves only its own sessions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gateway.routing.hashing import rendezvous_order
from gateway.routing.plugins import Guard, GuardParams, Score
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

    def score(self, request: RequestFeatures, candidates: Sequence[Candidate]) -> list[Score]:
        home = None
        if request.session_id:
            home = rendezvous_order(request.session_id, [(c.id, c.weight) for c in candidates])[0]
        limit = self._guard.limit(candidates)
        return [Score(1.0, reason="session") if c.id == home and c.load <= limit else Score(0.0) for c in candidates]
