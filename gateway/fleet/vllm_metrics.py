"""Parse a vLLM server's Prometheus ``/metrics`` into the numbers routing reads.

Uses prometheus-client's text parser (no regexes). A server may run several engines (data parallel,
label ``engine``) and name its model in ``model_name``; the backend-level view sums requests over
engines, averages KV usage, and takes the cache geometry from ``vllm:cache_config_info``. Releases
before v0.10 named KV usage ``vllm:gpu_cache_usage_perc``; both are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

_RUNNING = "vllm:num_requests_running"
_WAITING = "vllm:num_requests_waiting"
_KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
_PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
_PREFIX_HITS = "vllm:prefix_cache_hits_total"
_CACHE_CONFIG = "vllm:cache_config_info"


class MetricsParseError(ValueError):
    """The text is not Prometheus exposition, or carries no vLLM engine gauges."""


@dataclass(frozen=True, slots=True)
class EngineStats:
    """One scrape of one vLLM server."""

    running: float
    waiting: float
    kv_usage: float
    """Fraction of KV cache blocks in use, 0..1."""
    prefix_queries_total: float
    """Prompt tokens looked up in the prefix cache since start (a counter)."""
    prefix_hits_total: float
    block_size: int | None
    num_gpu_blocks: int | None
    models: frozenset[str]

    @property
    def kv_capacity_tokens(self) -> int | None:
        if self.block_size is None or self.num_gpu_blocks is None:
            return None
        return self.block_size * self.num_gpu_blocks


def parse_vllm_metrics(text: str) -> EngineStats:
    sums: dict[str, float] = {}
    kv: list[float] = []
    models: set[str] = set()
    block_size = num_gpu_blocks = None
    seen_engine_gauge = False
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError as e:
        raise MetricsParseError(f"not Prometheus text: {e}") from e
    for family in families:
        for sample in family.samples:
            name = sample.name
            if name in (_RUNNING, _WAITING, _PREFIX_QUERIES, _PREFIX_HITS):
                sums[name] = sums.get(name, 0.0) + sample.value
                seen_engine_gauge = seen_engine_gauge or name in (_RUNNING, _WAITING)
                if model := sample.labels.get("model_name"):
                    models.add(model)
            elif name in _KV_USAGE:
                kv.append(sample.value)
            elif name == _CACHE_CONFIG:
                block_size = _int_label(sample.labels, "block_size") or block_size
                blocks = _int_label(sample.labels, "num_gpu_blocks")
                if blocks is not None:  # several engines: the server holds all of them
                    num_gpu_blocks = (num_gpu_blocks or 0) + blocks
    if not seen_engine_gauge:
        raise MetricsParseError(f"no {_RUNNING} or {_WAITING} in the scrape: not a vLLM server?")
    return EngineStats(
        running=sums.get(_RUNNING, 0.0),
        waiting=sums.get(_WAITING, 0.0),
        kv_usage=sum(kv) / len(kv) if kv else 0.0,
        prefix_queries_total=sums.get(_PREFIX_QUERIES, 0.0),
        prefix_hits_total=sums.get(_PREFIX_HITS, 0.0),
        block_size=block_size,
        num_gpu_blocks=num_gpu_blocks,
        models=frozenset(models),
    )


def _int_label(labels: dict[str, str], key: str) -> int | None:
    value = labels.get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
