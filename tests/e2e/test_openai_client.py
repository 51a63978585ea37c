"""The official openai client through a real gateway (granian) in front of simulated vLLM servers."""

import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import SimServer

pytestmark = pytest.mark.e2e

SYSTEM = "You are a helpful assistant who answers in exactly one sentence."


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0, timeout=30)


def messages(user: str = "Say hello.") -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def test_chat_non_stream_with_route_receipt(client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=sim_pair[0].model, messages=messages(), max_tokens=12, extra_headers={"x-request-id": "req-42"}
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 12
    assert raw.headers["x-gateway-backend"] in {s.id for s in sim_pair}
    assert raw.headers["x-gateway-route"].startswith("policy=round_robin; reason=turn; attempts=1")
    assert raw.headers["x-request-id"] == "req-42"


def test_chat_stream_arrives_in_chunks(client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    stream = client.chat.completions.create(model=sim_pair[0].model, messages=messages(), max_tokens=20, stream=True)
    chunks = [c for c in stream]
    text = "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
    assert len(chunks) >= 5
    assert text.strip()


def test_chat_stream_usage_when_asked(client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    stream = client.chat.completions.create(
        model=sim_pair[0].model,
        messages=messages(),
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    last = [c for c in stream][-1]
    assert last.usage is not None
    assert last.usage.completion_tokens == 8


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_completions(client: openai.OpenAI, sim_pair: list[SimServer], stream: bool) -> None:
    if stream:
        text = "".join(
            c.choices[0].text
            for c in client.completions.create(
                model=sim_pair[0].model, prompt="Once upon a time", max_tokens=10, stream=True
            )
            if c.choices
        )
    else:
        text = (
            client.completions.create(model=sim_pair[0].model, prompt="Once upon a time", max_tokens=10).choices[0].text
        )
    assert text.strip()


def test_round_robin_spreads_over_both_backends(client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    seen = set()
    for _ in range(4):
        raw = client.chat.completions.with_raw_response.create(
            model=sim_pair[0].model, messages=messages(), max_tokens=1
        )
        seen.add(raw.headers["x-gateway-backend"])
    assert seen == {s.id for s in sim_pair}


def test_models_lists_the_fleet(client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    assert [m.id for m in client.models.list()] == sorted({s.model for s in sim_pair})


def test_unknown_model_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=messages())
    assert info.value.body["code"] == "model_not_found"  # type: ignore[index]


def test_upstream_400_passes_through(client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    # within the gateway's own max_tokens limit (server.limits), beyond the backend's context length
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=sim_pair[0].model, messages=messages(), max_tokens=100_000)
    assert info.value.response.headers["x-gateway-backend"] in {s.id for s in sim_pair}


def test_max_tokens_beyond_the_gateway_limit_is_refused_before_any_backend(
    client: openai.OpenAI, sim_pair: list[SimServer]
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=sim_pair[0].model, messages=messages(), max_tokens=10_000_000)
    assert "x-gateway-backend" not in info.value.response.headers
    assert info.value.body["param"] == "max_tokens"  # type: ignore[index]
    assert info.value.response.headers["x-request-id"]


def running(server: SimServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "vllm:num_requests_running"
    )


def wait_idle(servers: list[SimServer], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if all(running(s) == 0 for s in servers):
            return True
        time.sleep(0.05)
    return False


def test_client_disconnect_mid_stream_aborts_upstream(gateway_url: str, sim_pair: list[SimServer]) -> None:
    body = {"model": sim_pair[0].model, "messages": messages(), "max_tokens": 4000, "stream": True}
    with httpx.Client(timeout=10) as http, http.stream("POST", f"{gateway_url}/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        chunks = r.iter_raw()
        next(chunks)
        next(chunks)
        assert sum(running(s) for s in sim_pair) == 1
    # 4,000 tokens would take many seconds of simulated decode; an abort frees the backend at once.
    assert wait_idle(sim_pair, within_s=3)


def test_client_disconnect_while_waiting_non_stream_aborts_upstream(
    gateway_url: str, sim_pair: list[SimServer]
) -> None:
    body = {"model": sim_pair[0].model, "messages": messages(), "max_tokens": 4000}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=1.0)
    assert wait_idle(sim_pair, within_s=3)


def test_gateway_metrics_count_by_backend(gateway_url: str, client: openai.OpenAI, sim_pair: list[SimServer]) -> None:
    client.chat.completions.create(model=sim_pair[0].model, messages=messages(), max_tokens=1)
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(f"{gateway_url}/metrics").text)}
    ok = [s for s in families["gateway_requests"].samples if s.labels["status"] == "200"]
    assert {s.labels["backend"] for s in ok} <= {s.id for s in sim_pair}
    assert sum(s.value for s in ok if s.name == "gateway_requests_total") >= 1
    assert "gateway_request_duration_seconds" in families
    assert "gateway_time_to_first_token_seconds" in families
