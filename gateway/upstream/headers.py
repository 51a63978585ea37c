"""Which request and response headers cross the proxy."""

from __future__ import annotations

from collections.abc import Iterable

# RFC 9110 section 7.6.1 hop-by-hop headers, plus the ones the proxy recomputes itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "accept-encoding",
        "content-encoding",
    }
)


def forward_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """End-to-end headers only; the gateway sets its own framing and asks for identity encoding."""
    out = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP}
    out["accept-encoding"] = "identity"
    return out


def end_to_end(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    lowered = ((k.lower(), v) for k, v in headers)
    return {k: v for k, v in lowered if k not in HOP_BY_HOP}
