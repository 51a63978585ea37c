"""What the request path needs from an upstream call, whatever carries it.

``Transport.open`` sends the request and returns once the response headers are in; the body is then read
whole (``read_all``) or chunk by chunk as it arrives (``chunks``). Failures are reported in the gateway's
own vocabulary, so the request path never sees a client library's exceptions:

- ``UpstreamConnectError``: nothing reached the backend (refused, reset, DNS, connect timeout): safe to
  retry on another backend;
- ``gateway.errors.UpstreamTimeout``: the backend did not answer, or went silent, in time;
- ``UpstreamBroken``: the backend broke a started answer off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class UpstreamConnectError(Exception):
    """The backend could not be reached: safe to retry elsewhere."""


class UpstreamBroken(Exception):
    """The backend broke an answer off after it had started."""


class Upstream(Protocol):
    """An open upstream response (headers received)."""

    backend_id: str
    first_byte_at: float | None
    """When the first body byte arrived (the transport's clock); None before."""

    @property
    def status(self) -> int: ...

    def headers(self) -> dict[str, str]:
        """The backend's response headers as sent (``headers.returned_headers`` decides what a client sees)."""
        ...

    async def read_all(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None:
        """Drop the connection if the body was not read to its end, so the backend sees the abort."""


class Transport(Protocol):
    async def start(self) -> None:
        """Open pools; called inside the server's event loop."""

    async def aclose(self) -> None: ...

    async def open(self, backend_id: str, url: str, body: bytes, headers: dict[str, str]) -> Upstream: ...
