"""Parse and validate an OpenAI completion request the way vLLM's front end would, without a model.

Only what the simulator acts on is read: ``model``, the prompt (``messages`` or ``prompt``), the output
length (``max_completion_tokens`` / ``max_tokens``), ``n``, ``stream`` and ``stream_options.include_usage``;
other fields are accepted and ignored, as vLLM ignores unknown ones. Failures raise ``ApiError`` carrying
vLLM's error shape: ``{"error": {"message", "type", "param", "code"}}`` with ``code`` the HTTP status as an
integer (vLLM's ``ErrorInfo``), ``type`` ``BadRequestError`` / ``NotFoundError`` / ``InternalServerError``.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from loadtests.sim.tokenizer import PromptError, token_ids, tokenize, tokenize_chat


class ApiError(Exception):
    """An error response: HTTP status plus vLLM's error body."""

    def __init__(self, status: int, message: str, err_type: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.err_type, "param": self.param, "code": self.status}}


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, "BadRequestError", param)


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What the engine and the response writer need from one request."""

    model: str
    prompt_ids: array[int]
    max_tokens: int
    stream: bool
    include_usage: bool


def decode_body(raw: bytes) -> Mapping[str, Any]:
    """JSON object or a 400 (vLLM answers malformed JSON with a validation error, HTTP 400)."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError as e:
        raise ApiError(400, f"JSON decode error: {e}", "Bad Request", "body") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", "Bad Request", "body")
    return body


def resolve_model(body: Mapping[str, Any], served: Sequence[str]) -> str:
    """The served name the request asks for; a missing model means the first one, as in vLLM."""
    model = body.get("model")
    if model is None or model == "":
        return served[0]
    if not isinstance(model, str) or model not in served:
        raise ApiError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
    return model


def _int_field(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{name} must be an integer", name)
    return value


def _prompt_ids(body: Mapping[str, Any], chat: bool) -> array[int]:
    try:
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list):
                raise PromptError("messages must be a non-empty list", "messages")
            return tokenize_chat(messages)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str):
            return tokenize(prompt)
        if isinstance(prompt, list) and prompt and all(type(t) is int and 0 <= t < 2**32 for t in prompt):
            return token_ids(prompt)
        raise PromptError("prompt must be a string, a list of token ids, or a list of one of those", "prompt")
    except PromptError as e:
        raise bad_request(str(e), e.param) from None


def parse_request(
    body: Mapping[str, Any], *, chat: bool, served: Sequence[str], max_model_len: int, default_max_tokens: int
) -> ParsedRequest:
    """Validate ``body`` (already decoded) for ``/v1/chat/completions`` (chat) or ``/v1/completions``."""
    model = resolve_model(body, served)
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise bad_request("stream must be a boolean", "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("stream_options must be an object", "stream_options")
    if options is not None and not stream:
        raise bad_request("Stream options can only be defined when `stream=True`.", "stream_options")
    n = _int_field(body, "n")
    if n not in (None, 1):
        raise bad_request("the simulator supports n=1 only", "n")
    requested = _int_field(body, "max_completion_tokens") if chat else None
    param = "max_completion_tokens"
    if requested is None:
        requested, param = _int_field(body, "max_tokens"), "max_tokens"
    if requested is not None and requested < 1:
        raise bad_request(f"{param} must be at least 1, got {requested}.", param)
    prompt_ids = _prompt_ids(body, chat)
    num_prompt = len(prompt_ids)
    if num_prompt == 0:
        raise bad_request("The decoder prompt cannot be empty", "prompt")
    if num_prompt >= max_model_len:
        raise bad_request(
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{num_prompt} input tokens. Please reduce the length of the input messages.",
            "messages" if chat else "prompt",
        )
    if requested is None:
        max_tokens = min(default_max_tokens, max_model_len - num_prompt)
    elif num_prompt + requested > max_model_len:
        raise bad_request(
            f"'max_tokens' or 'max_completion_tokens' is too large: {requested}. This model's maximum "
            f"context length is {max_model_len} tokens and your request has {num_prompt} input tokens "
            f"({requested} > {max_model_len} - {num_prompt}).",
            param,
        )
    else:
        max_tokens = requested
    include_usage = bool(stream and options and options.get("include_usage"))
    return ParsedRequest(model, prompt_ids, max_tokens, bool(stream), include_usage)
