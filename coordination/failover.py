"""Redis first, this replica alone while Redis is away: a store that wraps a shared store and a local one.

``FailoverStore`` sends every call to the shared store (``RedisStore``). The first ``CoordinationError``
turns it *degraded*: from then on the local ``InMemoryStore`` serves picks (its own in-flight counts and
its own prefix index, so a prefix learned during the outage still attracts the requests that share it),
``live_members`` is empty and ``exchange`` returns only this replica's records. A background task retries
the shared store with exponential backoff capped at ``backoff_max_s``.

Reservation tokens are this wrapper's own; each maps to the store that holds the reservation, and a
release goes there. A shared reservation released while Redis is away leaves the shared store's ledger at
once (no I/O). On recovery the wrapper writes this replica's open reservations, shared and local, into
Redis as absolute counts (so nothing is counted twice, whatever Redis still had or had lost), moves the
local ones into the shared store's ledger (their releases then go to Redis), and leaves degraded mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from coordination.base import BackendLoad, CoordinationError, CoordinationStore, Observation, Reservation
from coordination.memory import InMemoryStore
from coordination.scoring import Pick, PickRequest

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.05


class SharedStore(CoordinationStore, Protocol):
    """A store that raises ``CoordinationError`` and keeps a ledger of this replica's reservations."""

    def adopt(self, backend_id: str) -> Reservation:
        """Enter a reservation in the ledger without I/O (``restore`` makes the shared store count it)."""

    def forget(self, reservation: Reservation) -> None:
        """Drop a reservation from the ledger without I/O (the shared store is away)."""

    async def restore(self, held: Mapping[str, int]) -> None:
        """Set this replica's counts in the shared store to ``held``, as absolute values."""


class FailoverStore:
    def __init__(
        self,
        primary: SharedStore,
        fallback: InMemoryStore,
        *,
        backoff_max_s: float = 5.0,
        backoff_min_s: float = BACKOFF_MIN_S,
    ) -> None:
        self.replica_id = primary.replica_id
        self.primary = primary
        self.fallback = fallback
        self.degraded = False
        self._backoff = (min(backoff_min_s, backoff_max_s), backoff_max_s)
        self._held: dict[int, tuple[CoordinationStore, Reservation]] = {}
        self._tokens = itertools.count(1)
        self._recovery: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.fallback.start()
        try:
            await self.primary.start()
        except CoordinationError as e:
            self._degrade("start", e)

    async def close(self) -> None:
        self._closed = True
        if self._recovery is not None:
            self._recovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery
        self._held.clear()
        try:
            await self.primary.close()
        except CoordinationError as e:
            log.info("redis leave failed, the lease runs out by itself: %s", e)
        await self.fallback.close()

    async def heartbeat(self) -> None:
        if self.degraded:
            return  # the recovery task talks to Redis until it is back
        try:
            await self.primary.heartbeat()
        except CoordinationError as e:
            self._degrade("heartbeat", e)

    # -- the hot path --------------------------------------------------------------------------

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        if not self.degraded:
            try:
                pick, inner = await self.primary.pick_and_reserve(request)
            except CoordinationError as e:
                self._degrade("pick", e)
            else:
                return pick, self._track(self.primary, inner)
        pick, inner = await self.fallback.pick_and_reserve(request)
        return pick, self._track(self.fallback, inner)

    async def release(self, reservation: Reservation, observation: Observation) -> None:
        entry = self._held.pop(reservation.token, None)
        if entry is None:
            return  # already released
        store, inner = entry
        if store is self.fallback:
            await self.fallback.release(inner, observation)
        elif self.degraded:
            self.primary.forget(inner)  # the re-sync on recovery writes the count without it
        else:
            try:
                await self.primary.release(inner, observation)
            except CoordinationError as e:  # the ledger already let it go
                self._degrade("release", e)

    def cached_loads(self, backend_ids: Sequence[str]) -> dict[str, BackendLoad]:
        store: CoordinationStore = self.fallback if self.degraded else self.primary
        return store.cached_loads(backend_ids)

    def live_members(self) -> list[str]:
        return [] if self.degraded else self.primary.live_members()

    async def exchange(self, table: str, mine: Mapping[str, bytes]) -> dict[str, bytes]:
        if not self.degraded:
            try:
                return await self.primary.exchange(table, mine)
            except CoordinationError as e:
                self._degrade(f"exchange {table}", e)
        return await self.fallback.exchange(table, mine)

    def open_reservations(self) -> Counter[str]:
        """This replica's open reservations per backend, wherever they are held."""
        return Counter(inner.backend_id for _, inner in self._held.values())

    # -- failure and recovery ------------------------------------------------------------------

    def _track(self, store: CoordinationStore, inner: Reservation) -> Reservation:
        token = next(self._tokens)
        self._held[token] = (store, inner)
        return Reservation(inner.backend_id, token)

    def _degrade(self, operation: str, error: CoordinationError) -> None:
        if not self.degraded:
            log.warning("redis %s failed, serving degraded: %s", operation, error)
        self.degraded = True
        if not self._closed and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        delay, cap = self._backoff
        while True:
            await asyncio.sleep(delay)
            try:
                await self._resync()
            except CoordinationError as e:
                delay = min(delay * 2, cap)
                log.debug("redis still unavailable (retry in %.2fs): %s", delay, e)
                continue
            except Exception:  # a bug must not leave the replica degraded for good: log it, keep trying
                delay = min(delay * 2, cap)
                log.exception("redis re-sync failed unexpectedly (retry in %.2fs)", delay)
                continue
            log.info("redis coordination recovered; %d open reservations re-synced", len(self._held))
            return

    async def _resync(self) -> None:
        await self.primary.heartbeat()  # registers the lease again (and restores the ledger if it lapsed)
        while True:  # until nothing was reserved or released during the call: each pass is absolute
            held = self.open_reservations()
            await self.primary.restore(held)
            if self.open_reservations() == held:
                break
        # No await from here on: Redis already counts the local reservations; hand them to its ledger.
        for token, (store, inner) in list(self._held.items()):
            if store is self.fallback:
                self._held[token] = (self.primary, self.primary.adopt(inner.backend_id))
                self.fallback.drop(inner)
        self.degraded = False
