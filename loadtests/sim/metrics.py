"""A simulated server's ``/metrics``: vLLM 0.32's names, HELP texts, types and labels, rendered at scrape time.

Each server owns an explicit ``CollectorRegistry`` holding one custom collector; nothing touches the
process-global registry, so many servers live in one process without clashing. The collector reads the
engine's live state (gauges) and its ``EngineStats`` (counters, histograms) when scraped, so the engine's
hot path never calls into prometheus-client. Every family carries ``engine="0"`` and ``model_name``, as vLLM's
do (``vllm:cache_config_info`` has ``engine`` and the cache settings, no model name). Histograms are in
simulated seconds (wall time / time_scale), so they read like a real server's.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from loadtests.sim.engine import SimEngine
from loadtests.sim.stats import FINISH_REASONS, Histogram

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LABELS = ("engine", "model_name")


def _cache_config_labels(engine: SimEngine) -> dict[str, str]:
    """The label set of vLLM 0.32's ``vllm:cache_config_info``; values the simulator has no notion of are
    the ones a default GPU deployment shows."""
    p = engine.profile
    return {
        "_block_size_resolved": "True",
        "block_size": str(p.block_size),
        "cache_dtype": "auto",
        "cache_hit_alignment_tokens": "None",
        "effective_attention_block_size": str(p.block_size),
        "enable_mamba_shared_prefix_checkpoint": "False",
        "enable_prefix_caching": "True",
        "engine": "0",
        "gpu_memory_utilization": str(p.gpu_memory_utilization),
        "hash_block_size": "None",
        "is_attention_free": "False",
        "kv_cache_dtype_skip_layers": "[]",
        "kv_cache_layout": "None",
        "kv_cache_max_concurrency": str(round(p.kv_capacity_tokens / p.max_model_len, 2)),
        "kv_cache_memory_bytes": str(p.kv_capacity_tokens * p.kv_bytes_per_token),
        "kv_cache_size_tokens": str(p.kv_capacity_tokens),
        "kv_offloading_backend": "native",
        "kv_offloading_size": "None",
        "kv_sharing_fast_prefill": "False",
        "mamba_block_size": "None",
        "mamba_cache_dtype": "auto",
        "mamba_cache_mode": "none",
        "mamba_page_size_padded": "None",
        "mamba_ssm_cache_dtype": "float32",
        "num_cpu_blocks": "None",
        "num_gpu_blocks": str(p.num_gpu_blocks),
        "num_gpu_blocks_override": "None",
        "prefix_cache_retention_interval": "0",
        "prefix_caching_hash_algo": "sha256",
        "prefix_match_unit": "None",
        "replayssm_buffer_len": "16",
        "skip_page_size_padded": "None",
        "sliding_window": "None",
        "swa_bounded_replay": "True",
        "use_kda_recoverssm": "False",
        "use_replayssm": "False",
        "user_specified_block_size": "True",
    }


class EngineCollector(Collector):
    """Renders one engine's state as vLLM's metric families."""

    def __init__(self, engine: SimEngine, model_name: str) -> None:
        self.engine = engine
        self.values = ["0", model_name]

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=LABELS)
        g.add_metric(self.values, value)
        return g

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, doc, labels=LABELS)
        c.add_metric(self.values, value, created=self.engine.stats.created)
        return c

    def _histogram(self, name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
        fam = HistogramMetricFamily(name, doc, labels=LABELS)
        fam.add_metric(self.values, h.cumulative(), h.sum)
        labels = dict(zip(LABELS, self.values, strict=True))
        fam.samples.append(Sample(f"{name}_created", labels, self.engine.stats.created))
        return fam

    def collect(self) -> Iterator[Metric]:
        e, s = self.engine, self.engine.stats
        yield self._gauge("vllm:num_requests_running", "Number of requests in model execution batches.", e.num_running)
        yield self._gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", e.num_waiting)
        yield self._gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", e.kv.usage)
        yield self._counter(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            s.prefix_queries,
        )
        yield self._counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", s.prefix_hits
        )
        yield self._counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", s.preemptions)
        yield self._counter("vllm:prompt_tokens", "Number of prefill tokens processed.", s.prompt_tokens)
        by_source = CounterMetricFamily(
            "vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", labels=[*LABELS, "source"]
        )
        for source, value in (
            ("local_compute", s.prompt_tokens - s.prompt_tokens_cached),
            ("local_cache_hit", s.prompt_tokens_cached),
            ("external_kv_transfer", 0),
        ):
            by_source.add_metric([*self.values, source], value, created=s.created)
        yield by_source
        yield self._counter(
            "vllm:prompt_tokens_cached",
            "Number of cached prompt tokens (local + external).",
            s.prompt_tokens_cached,
        )
        yield self._counter("vllm:generation_tokens", "Number of generation tokens processed.", s.generation_tokens)
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=["engine", "finished_reason", "model_name"],
        )
        for reason in FINISH_REASONS:
            success.add_metric(["0", reason, self.values[1]], s.finished[reason], created=s.created)
        yield success
        yield self._histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", s.ttft
        )
        yield self._histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", s.itl)
        yield self._histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", s.e2e)
        yield self._histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            s.queue_time,
        )
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=list(_cache_config_labels(e)),
        )
        info.add_metric(list(_cache_config_labels(e).values()), 1.0)
        yield info


def build_registry(engine: SimEngine, model_name: str) -> CollectorRegistry:
    """A fresh registry exporting ``engine`` under ``model_name`` (never the global registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, model_name))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """Prometheus text exposition (format 0.0.4), what ``GET /metrics`` returns."""
    return generate_latest(registry)
