"""Decode the few fields routing needs from an OpenAI request body, once, with msgspec.

The body is forwarded upstream unchanged; these Structs ignore every field they do not name, so new
OpenAI parameters pass through without a gateway release.

A hostile body is a ``BadRequest`` (400), never an exception of the decoder: invalid UTF-8 in a string,
numbers out of range, nesting deeper than ``server.limits.max_depth`` (checked before msgspec runs, which
recurses even through the fields it skips), and the other request-shape limits (``RequestLimits``).
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec

from gateway.config import RequestLimits
from gateway.errors import BadRequest
from gateway.routing.types import RequestFeatures


class _Part(msgspec.Struct):
    type: str = "text"
    text: str | None = None


class _Message(msgspec.Struct):
    role: str
    content: str | list[_Part] | None = None
    name: str | None = None


class ChatBody(msgspec.Struct):
    model: str
    messages: list[_Message]
    stream: bool | None = False
    cache_salt: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None


class CompletionBody(msgspec.Struct):
    model: str
    prompt: Any
    stream: bool | None = False
    cache_salt: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = None


_chat_decoder = msgspec.json.Decoder(ChatBody)
_completion_decoder = msgspec.json.Decoder(CompletionBody)

_SYSTEM_ROLES = ("system", "developer")
DEFAULT_LIMITS = RequestLimits()


def _text(content: str | list[_Part] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text or "" for p in content)


def chat_features(body: bytes, limits: RequestLimits = DEFAULT_LIMITS) -> RequestFeatures:
    chat: ChatBody = _decode(_chat_decoder, body, limits)
    if not chat.messages:
        raise BadRequest("messages must not be empty", param="messages")
    if len(chat.messages) > limits.max_messages:
        raise BadRequest(f"at most {limits.max_messages} messages are allowed", param="messages")
    system: list[str] = []
    for message in chat.messages:
        if message.role not in _SYSTEM_ROLES:
            break
        system.append(_text(message.content))
    canonical = "".join(f"<|{m.role}{':' + m.name if m.name else ''}|>\n{_text(m.content)}\n" for m in chat.messages)
    return RequestFeatures(
        model=chat.model,
        stream=bool(chat.stream),
        system_prompt="\n".join(system) if system else None,
        prompt_chars=sum(len(_text(m.content)) for m in chat.messages),
        prompt_text=canonical,
        cache_salt=chat.cache_salt,
    )


def completion_features(body: bytes, limits: RequestLimits = DEFAULT_LIMITS) -> RequestFeatures:
    completion: CompletionBody = _decode(_completion_decoder, body, limits)
    prompt = completion.prompt
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        text = prompt[0]  # a batch: the first prompt decides the route (vLLM runs them on one server)
    elif isinstance(prompt, list) and prompt and all(type(p) is int for p in prompt):  # not bool
        text = " ".join(map(str, prompt))
    else:
        raise BadRequest("prompt must be a string, a list of strings or a list of token ids", param="prompt")
    return RequestFeatures(
        model=completion.model,
        stream=bool(completion.stream),
        prompt_chars=len(text),
        prompt_text=text,
        cache_salt=completion.cache_salt,
    )


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, limits: RequestLimits) -> Any:
    if not body:
        raise BadRequest("request body is empty: expected a JSON object")
    _check_depth(body, limits.max_depth)
    if not body.isascii():  # msgspec checks UTF-8 only in the strings it decodes; the rest goes upstream as is
        _check_utf8(body)
    try:
        decoded = decoder.decode(body)
    except msgspec.ValidationError as e:
        raise BadRequest(f"invalid request: {e}", param=_param_of(str(e))) from e
    except msgspec.DecodeError as e:
        raise BadRequest(f"malformed JSON body: {e}") from e
    except UnicodeDecodeError as e:  # what msgspec raises for invalid UTF-8 in a string it decodes
        raise BadRequest(f"invalid UTF-8 in a JSON string: {e.reason}") from e
    except RecursionError as e:  # only if the interpreter's stack is shallower than max_depth; never expected
        raise BadRequest("JSON nested too deeply") from e
    _check_sampling(decoded, limits)
    return decoded


def _check_utf8(body: bytes) -> None:
    try:
        body.decode()
    except UnicodeDecodeError as e:
        raise BadRequest(f"the body is not valid UTF-8: {e.reason} at byte {e.start}") from e


def _check_sampling(body: ChatBody | CompletionBody, limits: RequestLimits) -> None:
    for param, value in (("max_tokens", body.max_tokens), ("max_completion_tokens", body.max_completion_tokens)):
        if value is not None and value > limits.max_tokens:
            raise BadRequest(f"{param} must be at most {limits.max_tokens}", param=param)
    if body.n is not None and body.n > limits.max_n:
        raise BadRequest(f"n must be at most {limits.max_n}", param="n")


# Nesting depth. msgspec recurses once per level even through the fields it skips, up to the interpreter's
# recursion limit (a RecursionError, ~1,000 levels minus the stack in use), and has no depth option; so the
# depth is bounded before decoding. A body cannot nest deeper than it has brackets: two C-speed counts clear
# ordinary bodies. Past that, an exact pass with no Python loop per byte: the escapes that hide a quote
# (``\\\\``, ``\\"``) dropped, everything but quotes and brackets deleted, strings cut out (adjacent quotes
# first: dropping two leaves every bracket inside or outside a string as it was), brackets mapped to +1/-1, summed.
_ESCAPES = re.compile(rb'\\[\\"]')
_NOT_STRUCTURAL = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _check_depth(body: bytes, max_depth: int) -> None:
    if body.count(b"{") + body.count(b"[") <= max_depth:
        return
    if json_depth(body) > max_depth:
        raise BadRequest(f"JSON nested deeper than {max_depth} levels")


def json_depth(body: bytes) -> int:
    """How deep a JSON text nests (``{}`` is 1): exact for valid JSON; for malformed JSON, at least the depth
    a decoder reaches before the error (up to there, the text is valid)."""
    if b"\\" in body:
        body = _ESCAPES.sub(b"", body)
    structure = body.translate(None, _NOT_STRUCTURAL).replace(b'""', b"")
    if b'"' in structure:  # strings with brackets in them
        structure = b"".join(structure.split(b'"')[::2])
    return max(accumulate(memoryview(structure.translate(_SIGNS)).cast("b")), default=0)


def _param_of(message: str) -> str | None:
    # msgspec ends its messages with "- at `$.messages[0].role`"
    marker = "at `$."
    start = message.rfind(marker)
    return message[start + len(marker) : -1] if start >= 0 else None
