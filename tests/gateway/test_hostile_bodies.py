"""Bodies a hostile or broken client can send: each is a 400 in the OpenAI shape, with the request's
``x-request-id``, counted in ``gateway_requests_total`` like every other refusal - never a 500.

Also the request-shape limits (``RequestLimits``, at their defaults): ``max_tokens``, ``max_completion_tokens``,
``n``, the number of messages and the JSON nesting depth, each refused above its cap with the field as ``param``.
"""

from __future__ import annotations

import json

import msgspec
import pytest

from gateway.config import RequestLimits
from tests.gateway.exchange_helpers import MODEL, completion, gateway

CHAT = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]'


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


HOSTILE = [
    pytest.param(
        "/v1/chat/completions",
        b'{"model": "m", "messages": [{"role": "user", "content": "\xff"}]}',
        None,
        id="chat-invalid-utf8-in-content",
    ),
    pytest.param(
        "/v1/chat/completions",
        b'{"model": "\xc3\x28", "messages": [{"role": "user", "content": "x"}]}',
        None,
        id="chat-invalid-utf8-in-model",
    ),
    pytest.param(
        "/v1/chat/completions",
        b'{"model": "m", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        None,
        id="chat-utf8-encoded-surrogate",
    ),
    pytest.param("/v1/completions", b'{"model": "m", "prompt": "\xff\xfe"}', None, id="prompt-invalid-utf8"),
    pytest.param(
        "/v1/chat/completions",
        CHAT + b', "stream": true, "stream_options": {"a": "\xff"}}',
        None,
        id="stream-options-invalid-utf8",  # the stream's re-encode of the body decodes every string
    ),
    pytest.param("/v1/chat/completions", CHAT + b', "user": "\xff"}', None, id="invalid-utf8-in-unknown-field"),
    pytest.param("/v1/completions", b'{"model": "m", "prompt": ["ok", "\xff"]}', None, id="batch-invalid-utf8"),
    pytest.param("/v1/chat/completions", CHAT + b', "tools": ' + deep(1000) + b"}", None, id="chat-deep-unknown-field"),
    pytest.param(
        "/v1/chat/completions",
        CHAT + b', "x": ' + b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"}",
        None,
        id="chat-deep-objects",
    ),
    pytest.param(
        "/v1/chat/completions",
        CHAT + b', "stream": true, "stream_options": {"a": ' + deep(1000) + b"}}",
        None,
        id="stream-options-deep",
    ),
    pytest.param("/v1/chat/completions", CHAT + b', "x": ' + deep(100_000) + b"}", None, id="chat-very-deep"),
    pytest.param("/v1/completions", b'{"model": "m", "prompt": ' + deep(1000) + b"}", None, id="prompt-deep"),
    pytest.param(
        "/v1/completions", b'{"model": "m", "prompt": [' + b"9" * 5000 + b"]}", "prompt[0]", id="prompt-huge-int"
    ),
    pytest.param("/v1/completions", b'{"model": "m", "prompt": [true, false]}', "prompt", id="prompt-booleans"),
    pytest.param("/v1/completions", b'{"model": "m", "prompt": {"a": 1}}', "prompt", id="prompt-object"),
    pytest.param(
        "/v1/chat/completions", CHAT + b', "max_tokens": ' + b"9" * 400 + b"}", "max_tokens", id="max-tokens-huge-int"
    ),
    pytest.param("/v1/chat/completions", CHAT + b', "max_tokens": 1e999}', "max_tokens", id="max-tokens-huge-float"),
    pytest.param("/v1/chat/completions", CHAT + b', "n": true}', "n", id="n-boolean"),
]


@pytest.mark.parametrize(("path", "body", "param"), HOSTILE)
async def test_hostile_body_is_400_with_request_id_and_counted(path: str, body: bytes, param: str | None) -> None:
    async with gateway(lambda r: completion()) as gw:
        response = await gw.client.post(path, content=body, headers={"x-request-id": "h-1"})
        assert response.status_code == 400, response.text
        assert response.headers["x-request-id"] == "h-1"
        assert response.headers["content-type"].startswith("application/json")
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_request", param)
        assert error["message"]
        labels = {"model": "unknown", "backend": "none", "status": "400", "priority": "normal"}
        assert gw.sample("gateway_requests_total", **labels) == 1
        assert gw.transport.requests == []


def chat(**extra: object) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


DEFAULTS = RequestLimits()
LIMITS = [
    pytest.param("/v1/chat/completions", chat(max_tokens=DEFAULTS.max_tokens + 1), "max_tokens", id="max_tokens"),
    pytest.param(
        "/v1/chat/completions",
        chat(max_completion_tokens=DEFAULTS.max_tokens + 1),
        "max_completion_tokens",
        id="max_completion_tokens",
    ),
    pytest.param(
        "/v1/completions",
        {"model": MODEL, "prompt": "p", "max_tokens": DEFAULTS.max_tokens + 1},
        "max_tokens",
        id="completion-max_tokens",
    ),
    pytest.param("/v1/chat/completions", chat(n=DEFAULTS.max_n + 1), "n", id="n"),
    pytest.param("/v1/completions", {"model": MODEL, "prompt": "p", "n": DEFAULTS.max_n + 1}, "n", id="completion-n"),
    pytest.param(
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}] * (DEFAULTS.max_messages + 1)},
        "messages",
        id="messages",
    ),
    # the body is level 1, tools level 2
    pytest.param("/v1/chat/completions", chat(tools=nested(DEFAULTS.max_depth)), None, id="depth"),
]


@pytest.mark.parametrize(("path", "body", "param"), LIMITS)
async def test_request_over_a_limit_is_400_naming_the_field(
    path: str, body: dict[str, object], param: str | None
) -> None:
    async with gateway(lambda r: completion()) as gw:
        response = await gw.client.post(path, json=body, headers={"x-request-id": "l-1"})
        assert response.status_code == 400, response.text
        assert response.headers["x-request-id"] == "l-1"
        error = response.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)
        assert gw.transport.requests == []
        labels = {"model": "unknown", "backend": "none", "status": "400", "priority": "normal"}
        assert gw.sample("gateway_requests_total", **labels) == 1


async def test_requests_at_the_limits_pass() -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}] * DEFAULTS.max_messages,
        "max_tokens": DEFAULTS.max_tokens,
        "max_completion_tokens": DEFAULTS.max_tokens,
        "n": DEFAULTS.max_n,
        "tools": nested(DEFAULTS.max_depth - 1),  # the body is level 1: at the limit
        "note": '[[[[[[[[[[ brackets inside strings do not count \\" [[[[[[' * 20,
    }
    async with gateway(lambda r: completion()) as gw:
        response = await gw.client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        assert json.loads(gw.transport.requests[0].body) == body


def test_limits_are_positive() -> None:
    assert msgspec.convert({"max_depth": 5}, RequestLimits).max_depth == 5
    with pytest.raises(msgspec.ValidationError, match=r"max_tokens"):
        msgspec.convert({"max_tokens": 0}, RequestLimits)
