"""Upstream calls: one ``Transport`` interface (as httpx has), aiohttp's on the hot path, a mock for tests."""

from gateway.upstream.aiohttp_transport import AiohttpTransport
from gateway.upstream.base import Transport, Upstream, UpstreamBroken, UpstreamConnectError
from gateway.upstream.headers import HOP_BY_HOP, forward_headers, returned_headers
from gateway.upstream.mock import MockReply, MockRequest, MockTransport

__all__ = [
    "HOP_BY_HOP",
    "AiohttpTransport",
    "MockReply",
    "MockRequest",
    "MockTransport",
    "Transport",
    "Upstream",
    "UpstreamBroken",
    "UpstreamConnectError",
    "forward_headers",
    "returned_headers",
]
