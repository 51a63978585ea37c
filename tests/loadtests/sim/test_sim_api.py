"""The OpenAI surface: shapes, streaming with and without usage, errors in vLLM's JSON shape."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from loadtests.sim.server import BACKEND_HEADER
from tests.loadtests.sim.sim_helpers import tiny_fleet


def sse_events(text: str) -> list[Any]:
    events: list[Any] = []
    for block in text.split("\n\n"):
        if not block:
            continue
        assert block.startswith("data: "), block
        data = block[len("data: ") :]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


@pytest.mark.parametrize("include_usage", [True, False], ids=["include_usage", "no_usage"])
async def test_chat_stream_usage_chunk_only_when_asked(include_usage: bool) -> None:
    body: dict[str, Any] = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 5,
        "stream": True,
    }
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        r = await client.post(fleet.servers[0].url + "/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    usage_chunks = [c for c in chunks if "usage" in c]
    content = [c for c in chunks if c["choices"]]
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in content) != ""
    if include_usage:
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["choices"] == []
        usage = chunks[-1]["usage"]
        assert usage["completion_tokens"] == 5
        assert usage["total_tokens"] == usage["prompt_tokens"] + 5
        assert usage["prompt_tokens_details"] == {"cached_tokens": 0}
    else:
        assert usage_chunks == []


async def test_completions_stream_and_full_shapes() -> None:
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url + "/v1/completions"
        full = await client.post(url, json={"model": "tiny", "prompt": "abc", "max_tokens": 3})
        stream = await client.post(url, json={"prompt": "abc", "max_tokens": 3, "stream": True})
    body = full.json()
    assert full.headers[BACKEND_HEADER] == "sim-0"
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "tiny"
    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["text"]) == 12  # 3 tokens of 4 filler characters
    assert body["usage"] == {
        "prompt_tokens": 1,
        "total_tokens": 4,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    events = sse_events(stream.text)
    assert stream.headers[BACKEND_HEADER] == "sim-0"
    assert "".join(e["choices"][0]["text"] for e in events[:-1]) == body["choices"][0]["text"]


async def test_default_output_length_from_profile() -> None:
    async with tiny_fleet(default_max_tokens=7) as fleet, httpx.AsyncClient() as client:
        r = await client.post(
            fleet.servers[0].url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
        )
    assert r.json()["usage"]["completion_tokens"] == 7


async def test_models_health_and_header() -> None:
    async with tiny_fleet(model="my-model") as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url
        models = await client.get(url + "/v1/models")
        health = await client.get(url + "/health")
    assert health.status_code == 200
    assert health.headers[BACKEND_HEADER] == "sim-0"
    card = models.json()["data"][0]
    assert models.json()["object"] == "list"
    assert (card["id"], card["object"], card["owned_by"], card["max_model_len"]) == ("my-model", "model", "vllm", 2048)


ERROR_CASES = {
    "unknown-model": ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "NotFoundError"),
    "bad-json": (b'{"model": "tiny", "messages": [', 400, "Bad Request"),
    "not-an-object": (b"[1, 2]", 400, "Bad Request"),
    "no-messages": ({"model": "tiny"}, 400, "BadRequestError"),
    "prompt-too-long": (
        {"model": "tiny", "messages": [{"role": "user", "content": "x" * 9000}]},
        400,
        "BadRequestError",
    ),
    "max-tokens-too-large": (
        {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2048},
        400,
        "BadRequestError",
    ),
    "max-tokens-zero": (
        {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
        400,
        "BadRequestError",
    ),
}


@pytest.mark.parametrize(("body", "status", "err_type"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
async def test_errors_in_vllm_shape(body: dict[str, Any] | bytes, status: int, err_type: str) -> None:
    async with tiny_fleet() as fleet, httpx.AsyncClient() as client:
        url = fleet.servers[0].url + "/v1/chat/completions"
        if isinstance(body, bytes):
            r = await client.post(url, content=body, headers={"content-type": "application/json"})
        else:
            r = await client.post(url, json=body)
        assert fleet.servers[0].engine.stats.prefix_queries == 0
    assert r.status_code == status
    assert r.headers[BACKEND_HEADER] == "sim-0"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    assert error["type"] == err_type
    assert isinstance(error["message"], str)
    assert error["message"]
