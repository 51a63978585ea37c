"""OpenAI response bodies and SSE chunks in the shapes vLLM sends them.

Generated text is deterministic filler: output token ``i`` is ``FILLER[i % len(FILLER)]``, a 4-character
ASCII piece, so the text of ``k`` tokens is ``4k`` bytes and re-tokenizes (``tokenizer.py``) to ``k`` tokens.

Streaming follows vLLM: chat streams open with a ``{"role": "assistant", "content": ""}`` delta; each later
chunk carries the text of the tokens generated since the previous one, the last one its ``finish_reason``;
a final chunk with empty ``choices`` and the ``usage`` object is sent only when
``stream_options.include_usage`` is true; ``data: [DONE]`` ends the stream. ``usage`` always includes
``prompt_tokens_details.cached_tokens`` (vLLM does so with ``--enable-prompt-tokens-details``).
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

_SENTENCE = (
    " Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut"
    " labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco."
)
_PADDED = _SENTENCE.ljust(-(-len(_SENTENCE) // 4) * 4)
FILLER: tuple[str, ...] = tuple(_PADDED[i : i + 4] for i in range(0, len(_PADDED), 4))

_encode = msgspec.json.Encoder().encode
DONE = b"data: [DONE]\n\n"


def filler_text(start: int, end: int) -> str:
    """Text of output tokens ``start`` .. ``end - 1``."""
    n = len(FILLER)
    return "".join(FILLER[i % n] for i in range(start, end))


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": {"cached_tokens": max(0, cached_tokens)},
    }


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


class ResponseWriter:
    """Builds the bodies of one request's response (ids, timestamps and model fixed at creation)."""

    __slots__ = ("chat", "created", "id", "model")

    def __init__(self, request_id: str, model: str, *, chat: bool) -> None:
        self.chat = chat
        self.id = f"chatcmpl-{request_id}" if chat else f"cmpl-{request_id}"
        self.model = model
        self.created = int(time.time())

    def full(self, text: str, finish_reason: str | None, usage_obj: dict[str, Any]) -> bytes:
        """Non-streaming body."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None, "tool_calls": []},
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
            }
            obj = "chat.completion"
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": finish_reason,
                "stop_reason": None,
                "prompt_logprobs": None,
            }
            obj = "text_completion"
        return _encode(
            {
                "id": self.id,
                "object": obj,
                "created": self.created,
                "model": self.model,
                "choices": [choice],
                "usage": usage_obj,
            }
        )

    def _chunk(self, choices: list[dict[str, Any]], usage_obj: dict[str, Any] | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage_obj is not None:
            payload["usage"] = usage_obj
        return sse(payload)

    def role_chunk(self) -> bytes:
        """The first chat chunk (vLLM sends the role before any content)."""
        return self._chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]
        )

    def text_chunk(self, text: str, finish_reason: str | None) -> bytes:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "logprobs": None}
        else:
            choice = {"index": 0, "text": text, "logprobs": None}
        choice["finish_reason"] = finish_reason
        if finish_reason is not None:
            choice["stop_reason"] = None
        return self._chunk([choice])

    def usage_chunk(self, usage_obj: dict[str, Any]) -> bytes:
        return self._chunk([], usage_obj)


def models_list(served: list[str], max_model_len: int, created: int) -> bytes:
    """``GET /v1/models`` as vLLM answers it (one card per served name, root = the first name)."""
    cards = [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": served[0],
            "parent": None,
            "max_model_len": max_model_len,
            "permission": [
                {
                    "id": f"modelperm-sim{i}",
                    "object": "model_permission",
                    "created": created,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        for i, name in enumerate(served)
    ]
    return _encode({"object": "list", "data": cards})


def error_body(status: int, message: str, err_type: str, param: str | None = None) -> bytes:
    return _encode({"error": {"message": message, "type": err_type, "param": param, "code": status}})
