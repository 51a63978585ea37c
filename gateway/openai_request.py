"""Decode the few fields routing needs from an OpenAI request body, once, with msgspec.

The body is forwarded upstream unchanged; these Structs ignore every field they do not name, so new
OpenAI parameters pass through without a gateway release.
"""

from __future__ import annotations

from typing import Any

import msgspec

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


class CompletionBody(msgspec.Struct):
    model: str
    prompt: Any
    stream: bool | None = False
    cache_salt: str | None = None


_chat_decoder = msgspec.json.Decoder(ChatBody)
_completion_decoder = msgspec.json.Decoder(CompletionBody)

_SYSTEM_ROLES = ("system", "developer")


def _text(content: str | list[_Part] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text or "" for p in content)


def chat_features(body: bytes) -> RequestFeatures:
    chat = _decode(_chat_decoder, body)
    if not chat.messages:
        raise BadRequest("messages must not be empty", param="messages")
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


def completion_features(body: bytes) -> RequestFeatures:
    completion = _decode(_completion_decoder, body)
    prompt = completion.prompt
    if isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        text = prompt[0]  # a batch: the first prompt decides the route (vLLM runs them on one server)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
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


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    if not body:
        raise BadRequest("request body is empty: expected a JSON object")
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as e:
        raise BadRequest(f"invalid request: {e}", param=_param_of(str(e))) from e
    except msgspec.DecodeError as e:
        raise BadRequest(f"malformed JSON body: {e}") from e


def _param_of(message: str) -> str | None:
    # msgspec ends its messages with "- at `$.messages[0].role`"
    marker = "at `$."
    start = message.rfind(marker)
    return message[start + len(marker) : -1] if start >= 0 else None
