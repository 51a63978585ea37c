"""Active health: scrape every backend's vLLM ``/metrics`` on an interval (httpx: control plane).

A scrape that fails to connect, times out, answers non-200 or is not vLLM's exposition counts as a
failed probe. Backends whose models are not configured learn them from ``/v1/models``.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import msgspec

from gateway.config import HealthConfig
from gateway.fleet.backends import Backend, Fleet
from gateway.fleet.vllm_metrics import EngineStats, MetricsParseError, parse_vllm_metrics

log = logging.getLogger(__name__)


class _Model(msgspec.Struct):
    id: str


class _ModelList(msgspec.Struct):
    data: list[_Model]


class HealthPoller:
    def __init__(self, fleet: Fleet, config: HealthConfig, client: httpx.AsyncClient) -> None:
        self._fleet = fleet
        self._config = config
        self._client = client

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self._config.interval_s)

    async def poll_once(self) -> None:
        backends = list(self._fleet.backends.values())
        results = await asyncio.gather(*(self.scrape(b) for b in backends))
        for backend, stats in zip(backends, results, strict=True):
            was_healthy = backend.healthy
            self._fleet.record_scrape(backend.id, stats)
            if backend.healthy != was_healthy:
                log.info("backend %s is now %s", backend.id, "healthy" if backend.healthy else "unhealthy")
            if stats is not None and not backend.spec.models and not backend.learned_models:
                await self._learn_models(backend)

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
