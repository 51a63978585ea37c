"""The hot-path transport: aiohttp's client (docs/proxy-path-costs.md: several times cheaper per request than
httpx's own transport; httpx serves the control plane).

Three separate timeouts: connect (aiohttp's ``sock_connect``), first byte (request sent -> first body byte)
and between chunks (the longest silence inside a stream). aiohttp's errors are translated here, once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp

from gateway.config import ProxyConfig, TimeoutConfig
from gateway.errors import UpstreamTimeout
from gateway.upstream.base import UpstreamBroken, UpstreamConnectError


@dataclass(slots=True)
class AiohttpUpstream:
    backend_id: str
    response: aiohttp.ClientResponse
    timeouts: TimeoutConfig
    clock: Callable[[], float]
    sent_at: float
    first_byte_at: float | None = None
    _released: bool = field(default=False)

    @property
    def status(self) -> int:
        return self.response.status

    def headers(self) -> dict[str, str]:
        return dict(self.response.headers)

    async def read_all(self) -> bytes:
        remaining = self.timeouts.first_byte_s - (self.clock() - self.sent_at)
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                body = await self.response.read()
        except TimeoutError as e:
            raise UpstreamTimeout(f"backend {self.backend_id} sent no answer in time") from e
        except aiohttp.ClientError as e:
            raise UpstreamTimeout(f"backend {self.backend_id} broke the answer off") from e
        self.first_byte_at = self.clock()
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """Chunks as they arrive. The first waits up to the first-byte budget, later ones between_chunks."""
        content = self.response.content
        while True:
            if self.first_byte_at is None:
                budget = self.timeouts.first_byte_s - (self.clock() - self.sent_at)
            else:
                budget = self.timeouts.between_chunks_s
            try:
                async with asyncio.timeout(max(budget, 0.001)):
                    chunk = await content.readany()
            except TimeoutError as e:
                raise UpstreamTimeout(f"backend {self.backend_id} went silent mid-answer") from e
            except aiohttp.ClientError as e:
                raise UpstreamBroken(f"backend {self.backend_id} broke the stream off") from e
            if not chunk:
                return
            if self.first_byte_at is None:
                self.first_byte_at = self.clock()
            yield chunk

    def close(self) -> None:
        if not self._released:
            self._released = True
            self.response.close()


class AiohttpTransport:
    def __init__(self, config: ProxyConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._timeouts = config.timeouts
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._request_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeouts.connect_s, connect=None, sock_read=None
        )

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._config.max_connections, limit_per_host=0, ttl_dns_cache=10)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def open(self, backend_id: str, url: str, body: bytes, headers: dict[str, str]) -> AiohttpUpstream:
        if self._session is None:
            raise RuntimeError("AiohttpTransport.start() was not called")
        sent_at = self._clock()
        try:
            async with asyncio.timeout(self._timeouts.first_byte_s):
                response = await self._session.post(
                    url, data=body, headers=headers, timeout=self._request_timeout, allow_redirects=False
                )
        except TimeoutError as e:
            raise UpstreamTimeout(f"backend {backend_id} did not answer in time") from e
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as e:
            raise UpstreamConnectError(f"backend {backend_id}: {e!r}") from e
        return AiohttpUpstream(backend_id, response, self._timeouts, self._clock, sent_at)
