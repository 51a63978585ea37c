"""A cheap, deterministic, prefix-stable stand-in for a BPE tokenizer.

The simulator needs token ids for three things only: counting prompt tokens, cutting the prompt into KV
blocks and hashing those blocks for automatic prefix caching. A real tokenizer would cost milliseconds per
prompt and a large download; this one costs microseconds and has the one property prefix caching relies on.

Rule: the UTF-8 bytes of the text are cut into fixed 4-byte chunks (the last one zero-padded) and each chunk
IS its token id: the chunk read as a little-endian unsigned 32-bit integer. That is a stable, collision-free
"hash" (no salt, unlike Python's ``hash()``), and it needs no per-token Python code: one
``memoryview.cast`` does the whole prompt. English averages ~4.3 characters per BPE token for Qwen-class
tokenizers, so 4 bytes per token gives realistic counts for English text (fewer tokens per character than
BPE for CJK text, which is fine for load testing). Ids are 32-bit values, not indices into a vocabulary.

Prefix stability: if ``p`` is a prefix of ``t``, then ``tokenize(p)[:k] == tokenize(t)[:k]`` with
``k = len(p.encode()) // 4``: every token of ``p`` except a trailing partial chunk is a token of ``t``.
Real BPE behaves the same way (only the token at the boundary may change), which is what makes a shared
system prompt a shared token prefix, and hence a shared run of cached KV blocks.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BYTES_PER_TOKEN = 4

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

_BIG_ENDIAN = array("I", b"\x01\x00\x00\x00")[0] != 1
assert array("I").itemsize == BYTES_PER_TOKEN, "the simulator needs a 4-byte array('I')"


class PromptError(ValueError):
    """The request's messages or prompt cannot be rendered (becomes an HTTP 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def tokenize(text: str) -> array[int]:
    """Token ids of ``text``: its UTF-8 bytes in 4-byte chunks, each read as a little-endian uint32."""
    data = text.encode("utf-8")
    pad = -len(data) % BYTES_PER_TOKEN
    if pad:
        data += b"\x00" * pad
    ids: array[int] = array("I")
    ids.frombytes(data)
    if _BIG_ENDIAN:  # pragma: no cover - keep ids identical on every platform
        ids.byteswap()
    return ids


def token_ids(values: Sequence[int]) -> array[int]:
    """Pre-tokenized input (a completions ``prompt`` given as a list of ids) in the same container."""
    return array("I", values)


def count_tokens(text: str) -> int:
    """Number of tokens ``tokenize(text)`` would return, without building them."""
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def _content_text(content: Any, index: int) -> str:
    """A message's content as text: a string, or the text parts of an OpenAI content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise PromptError("only text content parts are supported by the simulator", f"messages.{index}.content")
            text = part.get("text")
            if not isinstance(text, str):
                raise PromptError("a text content part needs a string 'text'", f"messages.{index}.content")
            parts.append(text)
        return "\n".join(parts)
    raise PromptError("message content must be a string or a list of parts", f"messages.{index}.content")


def render_chat(messages: Iterable[Any], *, add_generation_prompt: bool = True) -> str:
    """Render chat messages in a canonical ChatML form (the Qwen2.5 template without its default system line).

    Each message becomes ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; the assistant generation prompt
    ``<|im_start|>assistant\\n`` follows. Messages render independently and in order, so two chats that
    share their first messages share a text prefix, and therefore a token prefix.
    """
    out: list[str] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise PromptError("each message must be an object", f"messages.{i}")
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise PromptError("each message needs a string 'role'", f"messages.{i}.role")
        out.append(f"{IM_START}{role}\n{_content_text(message.get('content'), i)}{IM_END}\n")
    if not out:
        raise PromptError("messages must be a non-empty list", "messages")
    if add_generation_prompt:
        out.append(f"{IM_START}assistant\n")
    return "".join(out)


def tokenize_chat(messages: Iterable[Any]) -> array[int]:
    """Token ids of the rendered chat, as the engine sees the prompt."""
    return tokenize(render_chat(messages))
