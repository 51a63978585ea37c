"""A transport whose answers a function decides: upstream behaviour in process, without a socket.

    def handler(request: MockRequest) -> MockReply:
        if request.backend_id == "a":
            raise UpstreamConnectError("refused")
        return MockReply(200, chunks=[b"data: {}\\n\\n", b"data: [DONE]\\n\\n"])

    create_app(config, transport=MockTransport(handler))

The handler may be sync or async and may raise the transport errors of ``gateway.upstream.base``. Every
request is recorded (``requests``), and every upstream remembers whether it was read to its end or closed
early (``aborted``), which is what a real backend sees as a client disconnect.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from gateway.upstream.base import UpstreamBroken


@dataclass(frozen=True, slots=True)
class MockRequest:
    backend_id: str
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class MockReply:
    status: int = 200
    chunks: list[bytes] = field(default_factory=list)
    """The body, as the chunks it arrives in (one chunk for a whole answer)."""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    chunk_delay_s: float = 0.0
    """Pause before each chunk (a slow backend)."""
    break_after: int | None = None
    """Break the answer off (``UpstreamBroken``) after this many chunks."""


Handler = Callable[[MockRequest], MockReply | Awaitable[MockReply]]


@dataclass(slots=True)
class MockUpstream:
    backend_id: str
    reply: MockReply
    clock: Callable[[], float]
    first_byte_at: float | None = None
    read_to_end: bool = False
    closed: bool = False

    @property
    def status(self) -> int:
        return self.reply.status

    @property
    def aborted(self) -> bool:
        return self.closed and not self.read_to_end

    def headers(self) -> dict[str, str]:
        return dict(self.reply.headers)

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    async def chunks(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self.reply.chunks):
            if self.reply.break_after is not None and i >= self.reply.break_after:
                raise UpstreamBroken(f"backend {self.backend_id} broke the stream off")
            if self.reply.chunk_delay_s:
                await asyncio.sleep(self.reply.chunk_delay_s)
            if self.first_byte_at is None:
                self.first_byte_at = self.clock()
            yield chunk
        self.read_to_end = True

    def close(self) -> None:
        self.closed = True


class MockTransport:
    def __init__(self, handler: Handler, clock: Callable[[], float] | None = None) -> None:
        self._handler = handler
        self._clock = clock or time.monotonic
        self.requests: list[MockRequest] = []
        self.upstreams: list[MockUpstream] = []

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def open(self, backend_id: str, url: str, body: bytes, headers: dict[str, str]) -> MockUpstream:
        request = MockRequest(backend_id, url, body, dict(headers))
        self.requests.append(request)
        reply = self._handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
        upstream = MockUpstream(backend_id, reply, self._clock)
        self.upstreams.append(upstream)
        return upstream
