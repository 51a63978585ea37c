"""In-process store: the embedded default for a single replica (and the fallback when Redis fails).

Atomicity comes from asyncio itself: ``pick_and_reserve`` does not await between evaluating the score and
incrementing the chosen backend, so no other coroutine can interleave.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from coordination.base import BackendLoad, Observation, Reservation
from coordination.prefix_index import PrefixIndex
from coordination.scoring import Pick, PickRequest, evaluate


@dataclass(slots=True)
class _Backend:
    in_flight: int = 0
    ttft_ewma_s: float | None = None
    tpot_ewma_s: float | None = None

    def view(self) -> BackendLoad:
        return BackendLoad(self.in_flight, self.ttft_ewma_s, self.tpot_ewma_s)


def ewma(previous: float | None, sample: float, alpha: float) -> float:
    return sample if previous is None else alpha * sample + (1 - alpha) * previous


class InMemoryStore:
    def __init__(
        self,
        *,
        ewma_alpha: float = 0.2,
        prefix_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        replica_id: str | None = None,
    ) -> None:
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.degraded = False
        self._alpha = ewma_alpha
        self.prefix = PrefixIndex(prefix_ttl_s, clock)
        self._backends: dict[str, _Backend] = {}
        self._open: dict[int, str] = {}
        self._tokens = itertools.count(1)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for backend_id in self._open.values():
            self._backends[backend_id].in_flight -= 1
        self._open.clear()

    async def heartbeat(self) -> None:
        return None

    def _backend(self, backend_id: str) -> _Backend:
        state = self._backends.get(backend_id)
        if state is None:
            state = self._backends[backend_id] = _Backend()
        return state

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        in_flight = {line.backend_id: self._backend(line.backend_id).in_flight for line in request.lines}
        blocks = request.prefix_blocks
        cached = {line.backend_id: self.prefix.matched(line.backend_id, blocks) for line in request.lines}
        pick = evaluate(request, in_flight, cached)
        self._backend(pick.backend_id).in_flight += 1
        if blocks:
            # learned at the pick, not at the end: a burst sharing a new prefix follows its first request
            self.prefix.learn(pick.backend_id, blocks, request.prefix_cap(pick.index))
        token = next(self._tokens)
        self._open[token] = pick.backend_id
        return pick, Reservation(pick.backend_id, token)

    async def release(self, reservation: Reservation, observation: Observation) -> None:
        if not self.drop(reservation):
            return  # already released: releasing twice must not drive counts negative
        state = self._backend(reservation.backend_id)
        if observation.ttft_s is not None:
            state.ttft_ewma_s = ewma(state.ttft_ewma_s, observation.ttft_s, self._alpha)
        if observation.tpot_s is not None:
            state.tpot_ewma_s = ewma(state.tpot_ewma_s, observation.tpot_s, self._alpha)

    def drop(self, reservation: Reservation) -> bool:
        """Give ``reservation`` back without observing anything (no await); False if it was not open."""
        if self._open.pop(reservation.token, None) is None:
            return False
        self._backend(reservation.backend_id).in_flight -= 1
        return True

    def cached_loads(self, backend_ids: Sequence[str]) -> dict[str, BackendLoad]:
        return {b: self._backend(b).view() for b in backend_ids}

    def live_members(self) -> list[str]:
        return []

    async def exchange(self, table: str, mine: Mapping[str, bytes]) -> dict[str, bytes]:
        return dict(mine)
