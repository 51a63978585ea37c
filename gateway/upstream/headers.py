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


FORWARDED = frozenset({"content-type", "accept", "authorization", "traceparent", "tracestate"})
"""Request headers a backend gets from the client, by default: what an OpenAI request means, the backend's
own API key (vLLM ``--api-key``), and the client's trace context. Cookies, forwarding claims
(``X-Forwarded-For``, which a client can spoof) and the gateway's own headers (``x-priority``,
``x-session-id``) stay here; ``proxy.forward_headers`` names more to pass."""

RETURNED = frozenset({"content-type"})
"""Response headers a client gets from the backend: what the body is. The backend's ``server`` and any
header of its own stay behind; the gateway adds ``x-request-id``, ``x-gateway-backend`` and the receipt."""


def forward_headers(headers: Iterable[tuple[str, str]], extra: frozenset[str] = frozenset()) -> dict[str, str]:
    """The client's headers a backend may see (``FORWARDED`` plus ``extra``, lower-case names), never a
    hop-by-hop one; the gateway sets its own framing and asks for identity encoding."""
    allowed = FORWARDED | extra if extra else FORWARDED
    out = {k: v for k, v in headers if (name := k.lower()) in allowed and name not in HOP_BY_HOP}
    out["accept-encoding"] = "identity"
    return out


def returned_headers(headers: Iterable[tuple[str, str]], extra: frozenset[str] = frozenset()) -> dict[str, str]:
    """The backend's response headers a client may see (``RETURNED`` plus ``extra``), names lower-cased."""
    allowed = RETURNED | extra if extra else RETURNED
    return {name: v for k, v in headers if (name := k.lower()) in allowed and name not in HOP_BY_HOP}
