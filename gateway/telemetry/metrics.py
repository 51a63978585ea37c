"""The gateway's Prometheus metrics, on an explicit registry (never the process-global default).

Names start with ``gateway_`` (``vllm:`` belongs to the engines) and every label set is bounded: a model
name is a label only when the fleet serves it, anything else is counted as ``unknown``.

With several granian workers, prometheus-client's multiprocess mode aggregates the workers' values when
``PROMETHEUS_MULTIPROC_DIR`` is set (``gateway serve`` sets it for workers > 1); the per-backend gauges
come from the answering worker's own view of the fleet, which every worker keeps by itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from coordination import CoordinationStore
from gateway.fleet.backends import Fleet

UNKNOWN = "unknown"
# TTFT and e2e spans from a cached 10 ms prefill to multi-minute generations.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._requests(self.registry)
        self._upstream(self.registry)
        self._prefix(self.registry)
        self._admission(self.registry)
        self._routing(self.registry)

    def _requests(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by model, backend ('none' when the gateway answered itself), status, priority.",
            ["model", "backend", "status", "priority"],
            registry=r,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request received to last byte sent, by model, backend and HTTP status.",
            ["model", "backend", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time from request received to the first streamed chunk, as the gateway sees it.",
            ["model", "backend"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "gateway_time_per_output_token_seconds",
            "Time per output token after the first, as the gateway sees the stream.",
            ["model", "backend"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )

    def _upstream(self, r: CollectorRegistry) -> None:
        self.upstream_errors = Counter(
            "gateway_upstream_errors",
            "Failed upstream attempts by backend and kind (connect, timeout, status_5xx).",
            ["backend", "kind"],
            registry=r,
        )
        self.retries = Counter(
            "gateway_upstream_retries", "Requests retried on another backend before the first byte.", registry=r
        )
        self.coordination_latency = Histogram(
            "gateway_coordination_call_duration_seconds",
            "Round trip of each call to the coordination store (Redis), by operation.",
            ["operation"],
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
            registry=r,
        )

    def _prefix(self, r: CollectorRegistry) -> None:
        self.prefix_predicted = Counter(
            "gateway_prefix_predicted_cached_tokens",
            "Cached prompt tokens the router predicted (matched prefix blocks), summed over requests.",
            registry=r,
        )
        self.prefix_actual = Counter(
            "gateway_prefix_actual_cached_tokens",
            "Cached prompt tokens vLLM reported (usage.prompt_tokens_details.cached_tokens), same requests.",
            registry=r,
        )
        self.prefix_error = Histogram(
            "gateway_prefix_prediction_error_ratio",
            "Per request |predicted - actual cached tokens| / prompt tokens (0 = exact).",
            buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
            registry=r,
        )

    def _admission(self, r: CollectorRegistry) -> None:
        self.admitted = Counter(
            "gateway_admission_admitted", "Requests admitted, by priority.", ["priority"], registry=r
        )
        self.queued = Counter(
            "gateway_admission_queued", "Requests that had to wait for capacity, by priority.", ["priority"], registry=r
        )
        self.shed = Counter(
            "gateway_admission_shed",
            "Requests refused with 429, by priority and reason (timeout, queue_full).",
            ["priority", "reason"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "gateway_admission_queue_wait_seconds",
            "Time a request waited in the admission queue (admitted or shed), by priority.",
            ["priority"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )

    def _routing(self, r: CollectorRegistry) -> None:
        self.routing_decisions = Counter(
            "gateway_routing_decisions",
            "Routing decisions by policy, reason and chosen backend.",
            ["policy", "reason", "backend"],
            registry=r,
        )
        self.plugin_duration = Histogram(
            "gateway_routing_plugin_duration_seconds",
            "Time spent in each routing plugin per request, by extension point (filter, scorer, picker), "
            "plugin type and plugin name.",
            ["extension_point", "plugin_type", "plugin_name"],
            buckets=(0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01),
            registry=r,
        )

    def observe_prefix_prediction(self, predicted: float, actual: int, prompt_tokens: int) -> None:
        self.prefix_predicted.inc(predicted)
        self.prefix_actual.inc(actual)
        self.prefix_error.observe(abs(predicted - actual) / max(prompt_tokens, 1))


class FleetCollector(Collector):
    """Per-backend gauges read from the fleet state at scrape time (no bookkeeping on the hot path)."""

    def __init__(self, fleet: Fleet, store: CoordinationStore, clock: Callable[[], float]) -> None:
        self._fleet = fleet
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        healthy = GaugeMetricFamily("gateway_backend_healthy", "1 if the backend is routable.", labels=["backend"])
        waiting = GaugeMetricFamily(
            "gateway_backend_queue_depth", "vLLM num_requests_waiting at the last scrape.", labels=["backend"]
        )
        running = GaugeMetricFamily(
            "gateway_backend_running", "vLLM num_requests_running at the last scrape.", labels=["backend"]
        )
        kv = GaugeMetricFamily(
            "gateway_backend_kv_cache_usage_ratio", "vLLM KV cache usage (0..1) at the last scrape.", labels=["backend"]
        )
        age = GaugeMetricFamily(
            "gateway_backend_scrape_age_seconds", "Seconds since the last good scrape.", labels=["backend"]
        )
        in_flight = GaugeMetricFamily(
            "gateway_backend_in_flight",
            "Requests the gateway fleet has open on the backend (all replicas, as this replica last saw it).",
            labels=["backend"],
        )
        ttft = GaugeMetricFamily(
            "gateway_backend_ttft_ewma_seconds",
            "Moving average of the TTFT observed on the backend (what least_queue scores with).",
            labels=["backend"],
        )
        loads = self._store.cached_loads(list(self._fleet.backends))
        for backend in self._fleet.backends.values():
            labels = [backend.id]
            load = loads[backend.id]
            in_flight.add_metric(labels, float(load.in_flight))
            if load.ttft_ewma_s is not None:
                ttft.add_metric(labels, load.ttft_ewma_s)
            healthy.add_metric(labels, 1.0 if backend.routable(now) else 0.0)
            if backend.stats is not None and backend.scraped_at is not None:
                waiting.add_metric(labels, backend.stats.waiting)
                running.add_metric(labels, backend.stats.running)
                kv.add_metric(labels, backend.stats.kv_usage)
                age.add_metric(labels, now - backend.scraped_at)
        yield from (healthy, waiting, running, kv, age, in_flight, ttft)


class CoordinationCollector(Collector):
    """Whether this replica runs degraded (Redis unreachable), how many replicas hold a lease, and the
    admission queues (this replica's, and the fleet's as last published)."""

    def __init__(
        self,
        store: CoordinationStore,
        queues: Callable[[], dict[str, int]],
        fleet_queues: Callable[[], dict[str, int]],
    ) -> None:
        self._store = store
        self._queues = queues
        self._fleet_queues = fleet_queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        degraded = GaugeMetricFamily(
            "gateway_coordination_degraded", "1 while the shared store is unreachable and this replica serves alone."
        )
        degraded.add_metric([], 1.0 if self._store.degraded else 0.0)
        alive = GaugeMetricFamily(
            "gateway_coordination_replicas_alive", "Replicas holding a lease in the shared store (1 when not shared)."
        )
        alive.add_metric([], float(len(self._store.live_members()) or 1))
        local = GaugeMetricFamily(
            "gateway_admission_queue_depth", "Requests waiting for capacity in this replica.", labels=["priority"]
        )
        fleet = GaugeMetricFamily(
            "gateway_admission_fleet_queue_depth",
            "Requests waiting for capacity in all replicas (last published view).",
            labels=["priority"],
        )
        for priority, depth in self._queues().items():
            local.add_metric([priority], float(depth))
        for priority, depth in self._fleet_queues().items():
            fleet.add_metric([priority], float(depth))
        yield from (degraded, alive, local, fleet)


def exposition(metrics: GatewayMetrics, extra: list[Collector]) -> bytes:
    """The /metrics body: this worker's registry, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = metrics.registry
    text = generate_latest(registry)
    if extra:
        side = CollectorRegistry()
        for collector in extra:
            side.register(collector)
        text += generate_latest(side)
    return text
