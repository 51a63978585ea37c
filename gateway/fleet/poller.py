"""Active health: scrape the backends' vLLM ``/metrics`` on an interval (httpx: control plane), once per
fleet, however many replicas run.

Replicas split the backends by rendezvous hashing over the live members of the coordination store: each
backend is scraped by one replica, which publishes the result; every replica reads all results and feeds
them to its own ``Fleet``, so all replicas see the same health and load. A replica that joins or dies
moves only its own share. If a backend's record has not changed for ``STALE_ROUNDS`` intervals (its owner
died and the lease has not run out yet), any replica takes it over. Alone, or with the store degraded,
a replica scrapes everything itself.

A scrape that fails to connect, times out, answers non-200 or is not vLLM's exposition counts as a failed
probe. Backends whose models are not configured learn them from ``/v1/models``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

import httpx
import msgspec

from coordination import CoordinationStore
from gateway.config import HealthConfig
from gateway.fleet.backends import Backend, Fleet
from gateway.fleet.vllm_metrics import EngineStats, MetricsParseError, parse_vllm_metrics
from gateway.routing.hashing import rendezvous_order

log = logging.getLogger(__name__)

STALE_ROUNDS = 3


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model]


class ScrapeRecord(msgspec.Struct, array_like=True, frozen=True):
    """One published probe result; ``id`` is fresh per probe, so readers see each probe exactly once."""

    id: int
    stats: EngineStats | None


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(ScrapeRecord).decode


class HealthPoller:
    def __init__(
        self,
        fleet: Fleet,
        config: HealthConfig,
        client: httpx.AsyncClient,
        store: CoordinationStore,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self._fleet = fleet
        self._config = config
        self._client = client
        self._store = store
        self._clock = clock
        self._rng = rng or random.Random()
        self._seen: dict[str, int] = {}
        self._changed_at: dict[str, float] = {}
        self.scrapes = 0
        """Probes this replica made itself (tests count them to check the split)."""

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._config.interval_s)

    def owned(self) -> list[Backend]:
        members = self._store.live_members()
        me = self._store.replica_id
        now = self._clock()
        stale_after = STALE_ROUNDS * self._config.interval_s
        owned = []
        for backend in self._fleet.backends.values():
            changed = self._changed_at.get(backend.id)
            if (
                me not in members
                or changed is None
                or now - changed > stale_after
                or rendezvous_order(backend.id, [(m, 1.0) for m in members])[0] == me
            ):
                owned.append(backend)
        return owned

    async def poll_once(self) -> None:
        owned = self.owned()
        results = await asyncio.gather(*(self.scrape(b) for b in owned))
        self.scrapes += len(owned)
        mine = {b.id: _encode(ScrapeRecord(self._rng.getrandbits(62), s)) for b, s in zip(owned, results, strict=True)}
        for backend_id, blob in (await self._store.exchange("backends", mine)).items():
            self._apply(backend_id, blob)
        for backend, stats in zip(owned, results, strict=True):
            if stats is not None and not backend.spec.models and not backend.learned_models:
                await self._learn_models(backend)

    def _apply(self, backend_id: str, blob: bytes) -> None:
        backend = self._fleet.backends.get(backend_id)
        if backend is None:
            return
        try:
            record = _decode(blob)
        except msgspec.DecodeError:
            log.warning("unreadable backend record for %s ignored", backend_id)
            return
        if self._seen.get(backend_id) == record.id:
            return
        self._seen[backend_id] = record.id
        self._changed_at[backend_id] = self._clock()
        was_healthy = backend.healthy
        self._fleet.record_scrape(backend_id, record.stats)
        if backend.healthy != was_healthy:
            log.info("backend %s is now %s", backend_id, "healthy" if backend.healthy else "unhealthy")

    async def scrape(self, backend: Backend) -> EngineStats | None:
        try:
            response = await self._client.get(f"{backend.spec.url}/metrics", timeout=self._config.timeout_s)
            if response.status_code != 200:
                return None
            return parse_vllm_metrics(response.text)
        except (httpx.HTTPError, MetricsParseError) as e:
            log.debug("scrape of %s failed: %r", backend.id, e)
            return None

    async def _learn_models(self, backend: Backend) -> None:
        try:
            response = await self._client.get(f"{backend.spec.url}/v1/models", timeout=self._config.timeout_s)
            listing = msgspec.json.decode(response.content, type=_ModelList)
        except (httpx.HTTPError, msgspec.DecodeError) as e:
            log.debug("model listing of %s failed: %r", backend.id, e)
            return
        self._fleet.learn_models(backend.id, (m.id for m in listing.data))
