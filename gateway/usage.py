"""Token usage: ask vLLM for it on every stream, read it back, and hide it from clients that did not ask.

The gateway needs ``usage`` on every answer to compare its predicted cached tokens with vLLM's
``usage.prompt_tokens_details.cached_tokens``. Non-streamed answers always carry it. For streams,
``with_usage`` adds ``stream_options.include_usage`` to the body when the client did not set it, and
``UsageTap`` then removes the extra usage-only SSE event (``"choices": []``) from what the client gets,
so the client sees exactly the stream it asked for.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import BadRequest


class PromptDetails(msgspec.Struct):
    cached_tokens: int | None = None


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: PromptDetails | None = None

    @property
    def cached_tokens(self) -> int | None:
        details = self.prompt_tokens_details
        return details.cached_tokens if details is not None else None


class _WithUsage(msgspec.Struct):
    usage: Usage | None = None
    choices: list[Any] | None = None


class _StreamOptions(msgspec.Struct):
    stream_options: dict[str, Any] | None = None


_with_usage = msgspec.json.Decoder(_WithUsage)
_stream_options = msgspec.json.Decoder(_StreamOptions)
_INJECT = b'"stream_options":{"include_usage":true},'


def usage_of(body: bytes) -> Usage | None:
    try:
        return _with_usage.decode(body).usage
    except msgspec.DecodeError:
        return None


def with_usage(body: bytes) -> tuple[bytes, bool]:
    """The body to send upstream, and whether the gateway added include_usage (and must strip it)."""
    try:
        options = _stream_options.decode(body).stream_options
    except msgspec.ValidationError as e:
        raise BadRequest(f"invalid request: {e}", param="stream_options") from e
    if options is None:
        # The common case, cheap: no stream_options at all, so add ours right after the opening brace.
        start = body.index(b"{") + 1
        return body[:start] + _INJECT + body[start:], True
    if options.get("include_usage"):
        return body, False
    whole = msgspec.json.decode(body)
    whole["stream_options"] = {**options, "include_usage": True}
    return msgspec.json.encode(whole), True


class UsageTap:
    """Splits an SSE byte stream into events, notes the last usage seen, optionally drops usage-only events."""

    __slots__ = ("_pending", "events", "strip", "usage")

    def __init__(self, *, strip: bool) -> None:
        self.strip = strip
        self.usage: Usage | None = None
        self.events = 0
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data
            return b""
        complete, self._pending = data[: end + 2], data[end + 2 :]
        self.events += complete.count(b"data:")
        if b'"usage"' not in complete:
            return complete
        return self._inspect(complete)

    def flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return rest

    def _inspect(self, complete: bytes) -> bytes:
        kept = []
        for event in complete.split(b"\n\n")[:-1]:
            if b'"usage"' in event and event.startswith(b"data: {"):
                try:
                    parsed = _with_usage.decode(event[6:])
                except msgspec.DecodeError:
                    parsed = _WithUsage()
                if parsed.usage is not None:
                    self.usage = parsed.usage
                    if self.strip and not parsed.choices:
                        continue
            kept.append(event + b"\n\n")
        return b"".join(kept)
