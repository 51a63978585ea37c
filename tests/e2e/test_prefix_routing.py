"""The prefix policy end to end: affinity, predicted vs actual cached tokens, the usage the client sees."""

from collections.abc import Iterator, Mapping

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import SimServer, free_port, gateway, gateway_config

pytestmark = pytest.mark.e2e

SYSTEM = "You are a meticulous assistant for the billing team of Example Inc. " * 60  # 4,080 characters


@pytest.fixture(scope="module")
def prefix_gateway(sim_pair: list[SimServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with gateway(gateway_config(sim_pair, free_port(), policy="prefix"), tmp_path_factory.mktemp("gw")) as url:
        yield url


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def route(headers: Mapping[str, str]) -> dict[str, str]:
    return dict(part.split("=", 1) for part in headers["x-gateway-route"].split("; "))


def test_repeated_system_prompt_sticks_and_prediction_tracks_vllm(
    prefix_gateway: str, sim_pair: list[SimServer]
) -> None:
    client = openai.OpenAI(base_url=f"{prefix_gateway}/v1", api_key="unused", max_retries=0)
    model = sim_pair[0].model
    backends, receipts, cached = [], [], []
    for i in range(6):
        raw = client.chat.completions.with_raw_response.create(
            model=model,
            max_tokens=4,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Invoice {i}?"}],
        )
        backends.append(raw.headers["x-gateway-backend"])
        receipts.append(route(raw.headers))
        usage = raw.parse().usage
        assert usage is not None
        assert usage.prompt_tokens_details is not None
        cached.append(usage.prompt_tokens_details.cached_tokens or 0)
    assert len(set(backends)) == 1
    assert receipts[0]["reason"] == "least_load"
    assert all(r["reason"] == "affinity" for r in receipts[1:])
    # The canonical text shares its first 4,096 characters ("<|system|>\n" + 4,080 + "\n<|us") = 16 blocks of
    # 256 characters = 1,024 predicted tokens; the simulator (4 bytes/token, 16-token blocks) reports its own.
    for receipt, actual in zip(receipts[1:], cached[1:], strict=True):
        predicted = float(receipt["predicted_cached_tokens"])
        assert predicted == 1024
        assert abs(predicted - actual) <= 128
    assert metric(prefix_gateway, "gateway_prefix_actual_cached_tokens_total") >= sum(cached[1:])
    assert metric(prefix_gateway, "gateway_prefix_predicted_cached_tokens_total") >= 5 * 1024


def test_stream_without_include_usage_shows_no_usage_but_gateway_measures_it(
    prefix_gateway: str, sim_pair: list[SimServer]
) -> None:
    before = metric(prefix_gateway, "gateway_prefix_prediction_error_ratio_count")
    client = openai.OpenAI(base_url=f"{prefix_gateway}/v1", api_key="unused", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model=sim_pair[0].model,
            max_tokens=5,
            stream=True,
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": "stream please"}],
        )
    )
    assert chunks
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)  # the usage-only chunk the gateway asked for was removed
    assert metric(prefix_gateway, "gateway_prefix_prediction_error_ratio_count") == before + 1
