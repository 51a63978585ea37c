"""Write the Grafana dashboards in ``grafana/dashboards/`` from the panel specs below.

The JSON files are what Grafana loads and are committed; this script is where they are edited, so the four
dashboards share one layout, one datasource reference and one set of variables. After changing a panel:

    uv run python grafana/generate.py            # rewrite grafana/dashboards/*.json
    uv run python grafana/generate.py --markdown # print the panel tables for docs/observability.md

``tests/grafana/test_dashboards_static.py`` fails when the committed JSON differs from what this script
writes, and ``tests/grafana/test_dashboards_prometheus.py`` evaluates every query against a real Prometheus.

Query conventions (the static test checks them):

* every panel and variable uses the datasource variable ``${datasource}`` (type prometheus), so the files
  load into any Grafana without an import step;
* a selector of a gateway series that has a ``model`` label filters ``model=~"$model"``, one with a
  ``backend`` label filters ``backend=~"$backend"``;
* vLLM's own ``vllm:*`` series filter ``model_name=~"$model"`` and ``backend=~"$backend"``: the ``backend``
  label is a target label that the Prometheus scrape config puts on each vLLM server, holding the backend id
  the gateway uses (docs/observability.md shows the scrape config);
* counters are read with ``rate(...[$__rate_interval])`` and summed over gateway replicas; per-backend
  gauges each replica reports about the same backend are combined with ``max by (backend)`` (``min`` for
  health: one replica that cannot route to a backend is worth seeing).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).parent / "dashboards"
TAG = "vllm-fleet-gateway"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39

# Label filters, as Grafana interpolates them (multi-value variables become a regex; "All" is ".*").
MB = 'model=~"$model", backend=~"$backend"'
B = 'backend=~"$backend"'
M = 'model=~"$model"'
V = 'model_name=~"$model", backend=~"$backend"'
RI = "[$__rate_interval]"
FIVE = 'status=~"5.."'
OK = 'status=~"2.."'
NOT_OK = 'status!~"2.."'


def sel(metric: str, *filters: str) -> str:
    """A selector: ``sel("m", MB, 'status=~"5.."')`` -> ``m{model=~"$model", ..., status=~"5.."}``."""
    labels = ", ".join(f for f in filters if f)
    return f"{metric}{{{labels}}}" if labels else metric


def rate(selector: str) -> str:
    return f"rate({selector}{RI})"


def quantile(q: float, metric: str, labels: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) ({rate(sel(metric + '_bucket', labels))}))"


@dataclass
class Panel:
    title: str
    shows: str
    """What the panel shows (the panel's description in Grafana, and the docs)."""
    wrong: str
    """What to do when it looks wrong (appended to the description, and the docs)."""
    targets: list[tuple[str, str]]
    """(PromQL, legend) pairs."""
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    stack: bool = False
    min: float | None = 0
    max: float | None = None
    mappings: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[tuple[float | None, str]] = field(default_factory=lambda: [(None, "green")])


@dataclass
class Row:
    title: str
    panels: list[Panel]


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    rows: list[Row]


HEALTH_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "unhealthy", "color": "red", "index": 0},
            "1": {"text": "healthy", "color": "green", "index": 1},
        },
    }
]
DEGRADED_MAPPINGS = [
    {
        "type": "value",
        "options": {
            "0": {"text": "ok", "color": "green", "index": 0},
            "1": {"text": "degraded", "color": "red", "index": 1},
        },
    }
]

OVERVIEW = Dashboard(
    uid="vllm-gateway-overview",
    title="vLLM gateway / Overview",
    description="Traffic, errors, latency and shedding as the gateway fleet sees them.",
    rows=[
        Row(
            "Traffic",
            [
                Panel(
                    "Requests/s by status class",
                    "Answered requests per second, summed over gateway replicas, grouped by HTTP status class "
                    "(2xx; 4xx: 404 unknown model, 429 shed, 499 client left; 5xx).",
                    "A drop of 2xx with no rise elsewhere means clients stopped calling (or cannot reach the "
                    "gateway: check the load balancer). A rise of 4xx: see 'Non-2xx answers/s by status'.",
                    [
                        (
                            "sum by (status_class) (label_replace(rate(gateway_requests_total{"
                            + MB
                            + "}"
                            + RI
                            + '), "status_class", "${1}xx", "status", "^([0-9]).*$"))',
                            "{{status_class}}",
                        )
                    ],
                    unit="reqps",
                    stack=True,
                    width=8,
                ),
                Panel(
                    "Requests/s by model",
                    "Answered requests per second per model ('unknown' = a model no backend serves).",
                    "Traffic on 'unknown' means clients ask for a model name the fleet does not serve: fix the "
                    "client or add backends serving it (fleet.backends[].models).",
                    [(f"sum by (model) ({rate(f'gateway_requests_total{{{MB}}}')})", "{{model}}")],
                    unit="reqps",
                    stack=True,
                    width=8,
                ),
                Panel(
                    "Requests/s by priority",
                    "Answered requests per second per x-priority (high, normal, low).",
                    "If everything arrives as the default priority, clients do not send x-priority and "
                    "shedding cannot protect the important traffic.",
                    [(f"sum by (priority) ({rate(f'gateway_requests_total{{{MB}}}')})", "{{priority}}")],
                    unit="reqps",
                    stack=True,
                    width=8,
                ),
            ],
        ),
        Row(
            "Errors",
            [
                Panel(
                    "5xx ratio",
                    "Share of answers with a 5xx status (a backend's 5xx passed through after retries, 502/504 "
                    "from broken or slow streams, 503 when no backend is healthy).",
                    "Look at 'Upstream errors/s by backend and kind' for the backend that fails, and at the "
                    "Fleet dashboard's health panel; a 503 share means no healthy backend serves the model.",
                    [
                        (
                            f"sum({rate(sel('gateway_requests_total', MB, FIVE))}) "
                            f"/ sum({rate(sel('gateway_requests_total', MB))})",
                            "5xx ratio",
                        )
                    ],
                    unit="percentunit",
                    width=8,
                    thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
                ),
                Panel(
                    "Non-2xx answers/s by status",
                    "Answers per second per status code other than 2xx: 404 unknown model, 429 shed by "
                    "admission, 499 client left, 5xx errors.",
                    "429: the fleet is overloaded (row 'Admission and shedding'). 404: clients use a wrong model "
                    "name. 499: clients time out before the answer: compare with the latency panels.",
                    [
                        (
                            f"sum by (status) ({rate(sel('gateway_requests_total', MB, NOT_OK))})",
                            "{{status}}",
                        )
                    ],
                    unit="reqps",
                    stack=True,
                    width=8,
                ),
                Panel(
                    "Upstream errors/s by backend and kind",
                    "Failed upstream attempts per second by backend and kind: connect (refused or unreachable), "
                    "timeout (no first byte in proxy.timeouts.first_byte_s), status_5xx (the backend answered "
                    "5xx). Each may have been retried on another backend.",
                    "One backend with errors: check its vLLM logs and the Fleet dashboard; the gateway ejects it "
                    "after fleet.health.consecutive_errors. Every backend: a shared cause (model, network).",
                    [
                        (
                            f"sum by (backend, kind) ({rate(f'gateway_upstream_errors_total{{{B}}}')})",
                            "{{backend}} {{kind}}",
                        )
                    ],
                    unit="reqps",
                    stack=True,
                    width=8,
                ),
            ],
        ),
        Row(
            "Latency",
            [
                Panel(
                    "Time to first token p50 / p95",
                    "Time from request received to the first streamed chunk, as the client sees it through the "
                    "gateway (admission queueing and routing included), streamed requests only.",
                    "If p95 rises with vLLM's own TTFT (Fleet dashboard), the backends are saturated: add "
                    "backends or shed earlier; if only the gateway's rises, look at admission queue wait.",
                    [
                        (quantile(0.5, "gateway_time_to_first_token_seconds", MB), "p50"),
                        (quantile(0.95, "gateway_time_to_first_token_seconds", MB), "p95"),
                    ],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Request duration p50 / p95 / p99 (2xx)",
                    "Time from request received to the last byte sent, successful answers only (sheds and "
                    "errors would drag the percentiles down).",
                    "Grows with output length as well as with load: compare with time per output token before "
                    "blaming the fleet.",
                    [
                        (quantile(0.5, "gateway_request_duration_seconds", f"{MB}, {OK}"), "p50"),
                        (quantile(0.95, "gateway_request_duration_seconds", f"{MB}, {OK}"), "p95"),
                        (quantile(0.99, "gateway_request_duration_seconds", f"{MB}, {OK}"), "p99"),
                    ],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Time per output token p50 / p95",
                    "Time per output token after the first, from the gaps between streamed chunks (the decode "
                    "speed the client gets).",
                    "Rising with the number of running requests is batching at work; a jump on one backend "
                    "(see 'Time to first token p95 by backend') points at that server.",
                    [
                        (quantile(0.5, "gateway_time_per_output_token_seconds", MB), "p50"),
                        (quantile(0.95, "gateway_time_per_output_token_seconds", MB), "p95"),
                    ],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "Time to first token p95 by backend",
                    "The gateway's TTFT p95 per backend: the backends should look alike if routing spreads load well.",
                    "One backend much slower: check its queue and KV usage (Fleet dashboard); the routing "
                    "policy should steer away from it (check Routing -> decisions by backend).",
                    [(quantile(0.95, "gateway_time_to_first_token_seconds", MB, "backend"), "{{backend}}")],
                    unit="s",
                    width=24,
                ),
            ],
        ),
        Row(
            "Admission and shedding",
            [
                Panel(
                    "Shed/s by priority and reason",
                    "Requests refused with 429 per second by priority and reason: timeout (waited "
                    "admission.max_wait_s.<priority> for capacity) or queue_full (admission.max_queue waiting).",
                    "Low priority shed first is the design. Normal or high shed means the fleet is too small "
                    "for the traffic: add backends, or raise admission.backend_capacity if the backends are "
                    "not actually saturated (Fleet dashboard).",
                    [
                        (
                            f"sum by (priority, reason) ({rate('gateway_admission_shed_total')})",
                            "{{priority}} {{reason}}",
                        )
                    ],
                    unit="reqps",
                    stack=True,
                    width=8,
                ),
                Panel(
                    "Admitted and queued/s by priority",
                    "Requests admitted per second, and of them those that had to wait for capacity first.",
                    "Queued close to admitted for high priority means even high-priority traffic waits: the "
                    "fleet is full.",
                    [
                        (f"sum by (priority) ({rate('gateway_admission_admitted_total')})", "admitted {{priority}}"),
                        (f"sum by (priority) ({rate('gateway_admission_queued_total')})", "queued {{priority}}"),
                    ],
                    unit="reqps",
                    width=8,
                ),
                Panel(
                    "Admission queue depth by priority",
                    "Requests waiting for capacity right now, summed over gateway replicas.",
                    "A queue that never drains: the backends are saturated or the gateway cannot see them "
                    "(stale scrapes count as full: check scrape age on the Fleet dashboard).",
                    [("sum by (priority) (gateway_admission_queue_depth)", "{{priority}}")],
                    unit="short",
                    stack=True,
                    width=8,
                ),
                Panel(
                    "Admission queue wait p95 by priority",
                    "How long requests waited in the admission queue (admitted or shed), p95 per priority.",
                    "Close to admission.max_wait_s for a priority: most of its waiting requests are shed.",
                    [(quantile(0.95, "gateway_admission_queue_wait_seconds", "", "priority"), "{{priority}}")],
                    unit="s",
                    width=24,
                ),
            ],
        ),
    ],
)

ROUTING = Dashboard(
    uid="vllm-gateway-routing",
    title="vLLM gateway / Routing",
    description="Why each request went where it went: decisions, load spread and prefix-cache hits.",
    rows=[
        Row(
            "Decisions",
            [
                Panel(
                    "Decisions/s by policy and reason",
                    "Routing decisions per second by policy and reason. Prefix policy: affinity (cached prefix "
                    "blocks decided), least_load (nothing cached: load decided), session (x-session-id), "
                    "guarded (the load guard overrode the cache); cache_aware: affinity, spill, "
                    "no_system_prompt.",
                    "Mostly least_load for traffic that shares system prompts: prompts differ in their first "
                    "block (a timestamp up front?) or the prefix index expired (coordination.prefix_ttl_s). "
                    "Much guarded: the cached backends are overloaded, the cache cannot be used.",
                    [
                        (
                            f"sum by (policy, reason) ({rate(f'gateway_routing_decisions_total{{{B}}}')})",
                            "{{policy}} {{reason}}",
                        )
                    ],
                    unit="reqps",
                    stack=True,
                ),
                Panel(
                    "Decisions/s by backend (load spread)",
                    "Routing decisions per second per chosen backend (retries included): how load is spread.",
                    "A backend with none is unhealthy, ejected or serves another model; one backend taking "
                    "most is expected for a hot prefix, but then its queue (Fleet dashboard) should stay low.",
                    [(f"sum by (backend) ({rate(f'gateway_routing_decisions_total{{{B}}}')})", "{{backend}}")],
                    unit="reqps",
                    stack=True,
                ),
                Panel(
                    "Share of decisions by backend (time range)",
                    "Each backend's share of the routing decisions over the dashboard's time range.",
                    "Shares far from 1/N with equal backends and no prefix reuse: check weights "
                    "(fleet.backends[].weight) and health.",
                    [
                        (
                            f"sum by (backend) (increase(gateway_routing_decisions_total{{{B}}}[$__range])) "
                            f"/ ignoring(backend) group_left() "
                            f"sum(increase(gateway_routing_decisions_total{{{B}}}[$__range]))",
                            "{{backend}}",
                        )
                    ],
                    unit="percentunit",
                    kind="bargauge",
                    max=1,
                ),
                Panel(
                    "Routing plugin time p99",
                    "99th percentile of the time each routing plugin (filter, scorer, picker) takes per "
                    "request, by extension point and plugin name.",
                    "A plugin over ~100 us is worth a look on the hot path: a scorer reading every backend of a "
                    "large fleet, or prefix hashing of long prompts.",
                    [
                        (
                            quantile(
                                0.99,
                                "gateway_routing_plugin_duration_seconds",
                                "",
                                "extension_point, plugin_name",
                            ),
                            "{{extension_point}} {{plugin_name}}",
                        )
                    ],
                    unit="s",
                ),
                Panel(
                    "In-flight per backend",
                    "Requests the gateway fleet has open on each backend now (reservations in the coordination store).",
                    "In-flight that stays up with no traffic: reservations not released (a replica died "
                    "holding them; they expire after coordination.lease_ttl_s).",
                    [(f"max by (backend) (gateway_backend_in_flight{{{B}}})", "{{backend}}")],
                    unit="short",
                    stack=True,
                ),
            ],
        ),
        Row(
            "Prefix cache: predicted vs actual",
            [
                Panel(
                    "Cached prompt tokens/s: predicted vs actual",
                    "Prompt tokens per second the router predicted to be cached on the chosen backend "
                    "(matched prefix blocks) and those vLLM reported as cached "
                    "(usage.prompt_tokens_details.cached_tokens) for the same requests.",
                    "Actual far below predicted: vLLM evicted the blocks (KV pressure, see Fleet) or "
                    "routing.prefix_block_chars does not match the backends' block size; actual 0 throughout: "
                    "vLLM runs without --enable-prompt-tokens-details or prefix caching.",
                    [
                        (f"sum({rate('gateway_prefix_predicted_cached_tokens_total')})", "predicted"),
                        (f"sum({rate('gateway_prefix_actual_cached_tokens_total')})", "actual"),
                    ],
                    unit="short",
                    width=8,
                ),
                Panel(
                    "Actual / predicted cached tokens",
                    "Cached tokens vLLM reported divided by those the router predicted (1 = the prediction "
                    "was right on average).",
                    "Well below 1: predictions are optimistic (see the previous panel); above 1: vLLM found "
                    "cache the router did not know of (prefixes that other routers or replicas warmed).",
                    [
                        (
                            f"sum({rate('gateway_prefix_actual_cached_tokens_total')}) "
                            f"/ sum({rate('gateway_prefix_predicted_cached_tokens_total')})",
                            "actual / predicted",
                        )
                    ],
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "Prediction error ratio p50 / p95",
                    "Per request |predicted - actual cached tokens| / prompt tokens (0 = exact).",
                    "A p95 near 1 means some requests got none of the predicted cache: usually eviction under "
                    "KV pressure or a backend restart.",
                    [
                        (quantile(0.5, "gateway_prefix_prediction_error_ratio", ""), "p50"),
                        (quantile(0.95, "gateway_prefix_prediction_error_ratio", ""), "p95"),
                    ],
                    unit="percentunit",
                    width=8,
                ),
                Panel(
                    "vLLM prefix cache hit rate by backend",
                    "vLLM's own prefix cache hit rate per backend: rate(vllm:prefix_cache_hits_total) / "
                    "rate(vllm:prefix_cache_queries_total), in tokens.",
                    "Low with traffic that shares prompts: routing scatters the prefixes (compare the policy's "
                    "decisions) or KV is too small to keep them (KV usage and preemptions on Fleet).",
                    [
                        (
                            f"sum by (backend) ({rate(f'vllm:prefix_cache_hits_total{{{V}}}')}) "
                            f"/ sum by (backend) ({rate(f'vllm:prefix_cache_queries_total{{{V}}}')})",
                            "{{backend}}",
                        )
                    ],
                    unit="percentunit",
                    max=1,
                ),
                Panel(
                    "vLLM prefix cache hit rate (fleet)",
                    "The same hit rate over all selected backends together.",
                    "Compare before and after a routing change: a cache-aware policy should raise it.",
                    [
                        (
                            f"sum({rate(f'vllm:prefix_cache_hits_total{{{V}}}')}) "
                            f"/ sum({rate(f'vllm:prefix_cache_queries_total{{{V}}}')})",
                            "hit rate",
                        )
                    ],
                    unit="percentunit",
                    kind="stat",
                    max=1,
                ),
            ],
        ),
        Row(
            "Retries",
            [
                Panel(
                    "Retries/s",
                    "Requests retried on another backend before the first byte (after a connect error or a "
                    "5xx), per second.",
                    "Steady retries: one backend keeps failing without being ejected (see upstream errors "
                    "by backend); retries cost latency and backend work.",
                    [(f"sum({rate('gateway_upstream_retries_total')})", "retries")],
                    unit="reqps",
                ),
                Panel(
                    "Upstream errors/s by kind",
                    "Failed upstream attempts per second by kind (connect, timeout, status_5xx), the causes "
                    "of the retries.",
                    "Timeouts: raise proxy.timeouts.first_byte_s only if the backends are healthy but slow; "
                    "connect errors: a backend is down or its URL is wrong.",
                    [(f"sum by (kind) ({rate(f'gateway_upstream_errors_total{{{B}}}')})", "{{kind}}")],
                    unit="reqps",
                    stack=True,
                ),
            ],
        ),
    ],
)

FLEET = Dashboard(
    uid="vllm-gateway-fleet",
    title="vLLM gateway / Fleet",
    description="Each backend as the gateway sees it, next to vLLM's own metrics scraped by Prometheus.",
    rows=[
        Row(
            "As the gateway sees each backend",
            [
                Panel(
                    "Backend health",
                    "1 if the backend is routable from every gateway replica (healthy scrapes, not ejected), "
                    "0 if any replica cannot route to it.",
                    "Unhealthy: the gateway cannot scrape its /metrics (scrape age grows) or ejected it after "
                    "errors (Overview -> upstream errors). Check the vLLM server and the network.",
                    [(f"min by (backend) (gateway_backend_healthy{{{B}}})", "{{backend}}")],
                    kind="stat",
                    width=24,
                    mappings=HEALTH_MAPPINGS,
                    thresholds=[(None, "red"), (1, "green")],
                ),
                Panel(
                    "Queue depth (waiting) by backend",
                    "vLLM num_requests_waiting at the gateway's last scrape of each backend.",
                    "A long queue on one backend while others are idle: routing does not see it (scrape age) "
                    "or a prefix keeps landing there; on all backends: the fleet is too small.",
                    [(f"max by (backend) (gateway_backend_queue_depth{{{B}}})", "{{backend}}")],
                    width=8,
                ),
                Panel(
                    "Running by backend",
                    "vLLM num_requests_running at the gateway's last scrape of each backend.",
                    "Stuck at the backend's max-num-seqs: it is at its batch limit, further requests queue.",
                    [(f"max by (backend) (gateway_backend_running{{{B}}})", "{{backend}}")],
                    width=8,
                ),
                Panel(
                    "In-flight by backend",
                    "Requests the gateway fleet has open on each backend (coordination store).",
                    "Much higher than running + waiting: requests stuck between gateway and vLLM, or "
                    "reservations not released.",
                    [(f"max by (backend) (gateway_backend_in_flight{{{B}}})", "{{backend}}")],
                    width=8,
                ),
                Panel(
                    "KV cache usage by backend",
                    "vLLM KV cache usage (0..1) at the gateway's last scrape.",
                    "Near 1 with requests waiting: the backend is memory-bound and preempts; expect prefix "
                    "evictions (lower actual cached tokens on Routing).",
                    [(f"max by (backend) (gateway_backend_kv_cache_usage_ratio{{{B}}})", "{{backend}}")],
                    unit="percentunit",
                    max=1,
                    width=8,
                ),
                Panel(
                    "Scrape age by backend",
                    "Seconds since the gateway's last good scrape of each backend's /metrics.",
                    "Above a few fleet.health.interval_s: the backend's /metrics is slow or unreachable; past "
                    "admission.stale_after_s admission counts it as full.",
                    [(f"max by (backend) (gateway_backend_scrape_age_seconds{{{B}}})", "{{backend}}")],
                    unit="s",
                    width=8,
                    thresholds=[(None, "green"), (3, "red")],
                ),
                Panel(
                    "TTFT moving average by backend",
                    "The moving average of the TTFT the gateway observed on each backend (what least_queue "
                    "scores with).",
                    "One backend far above the others: it is slower (hardware, load) and should receive less "
                    "traffic; check Routing -> decisions by backend.",
                    [(f"max by (backend) (gateway_backend_ttft_ewma_seconds{{{B}}})", "{{backend}}")],
                    unit="s",
                    width=8,
                ),
            ],
        ),
        Row(
            "vLLM's own metrics (scraped by Prometheus)",
            [
                Panel(
                    "vLLM requests running and waiting",
                    "vLLM's num_requests_running and num_requests_waiting per backend, scraped by Prometheus "
                    "directly (compare with the gateway's view above).",
                    "Gateway view and vLLM's disagree for long: the gateway scrapes another address than "
                    "Prometheus does, or its scrapes fail (scrape age).",
                    [
                        (f"sum by (backend) (vllm:num_requests_running{{{V}}})", "running {{backend}}"),
                        (f"sum by (backend) (vllm:num_requests_waiting{{{V}}})", "waiting {{backend}}"),
                    ],
                ),
                Panel(
                    "vLLM KV cache usage",
                    "vLLM's kv_cache_usage_perc per backend (0..1).",
                    "Near 1 for long: too little KV memory for the traffic; lower max-num-seqs or add backends.",
                    [(f"max by (backend) (vllm:kv_cache_usage_perc{{{V}}})", "{{backend}}")],
                    unit="percentunit",
                    max=1,
                ),
                Panel(
                    "vLLM preemptions/s",
                    "Requests preempted per second (their KV blocks freed and recomputed later) per backend.",
                    "Any sustained preemption wastes compute: the backend has too little KV for its batch; "
                    "the routing should avoid it (KV usage) or the fleet needs more memory.",
                    [(f"sum by (backend) ({rate(f'vllm:num_preemptions_total{{{V}}}')})", "{{backend}}")],
                    unit="ops",
                    width=8,
                ),
                Panel(
                    "vLLM time to first token p95",
                    "vLLM's own TTFT p95 per backend (from its queue to the first token, without the "
                    "gateway and network).",
                    "Gateway TTFT (Overview) far above vLLM's: time is lost in admission or the network; "
                    "close to it: the backends are the bottleneck.",
                    [(quantile(0.95, "vllm:time_to_first_token_seconds", V, "backend"), "{{backend}}")],
                    unit="s",
                    width=8,
                ),
                Panel(
                    "vLLM generation tokens/s",
                    "Output tokens generated per second per backend (throughput).",
                    "Flat while requests wait: the backend is at its compute limit.",
                    [(f"sum by (backend) ({rate(f'vllm:generation_tokens_total{{{V}}}')})", "{{backend}}")],
                    unit="short",
                    stack=True,
                    width=8,
                ),
            ],
        ),
    ],
)

COORDINATION = Dashboard(
    uid="vllm-gateway-coordination",
    title="vLLM gateway / Coordination",
    description="The shared store (Redis) the gateway replicas coordinate through.",
    rows=[
        Row(
            "Redis",
            [
                Panel(
                    "Redis call latency p50 by operation",
                    "Median round trip of each call to the coordination store, by operation.",
                    "Above a millisecond or two in one data centre: Redis is loaded or far away; every request "
                    "pays at least one round trip.",
                    [
                        (
                            quantile(0.5, "gateway_coordination_call_duration_seconds", "", "operation"),
                            "{{operation}}",
                        )
                    ],
                    unit="s",
                ),
                Panel(
                    "Redis call latency p99 by operation",
                    "99th percentile round trip by operation.",
                    "Close to coordination.call_timeout_s: calls are about to time out and the replicas to "
                    "turn degraded.",
                    [
                        (
                            quantile(0.99, "gateway_coordination_call_duration_seconds", "", "operation"),
                            "{{operation}}",
                        )
                    ],
                    unit="s",
                ),
                Panel(
                    "Redis calls/s by operation",
                    "Calls to the coordination store per second, by operation, summed over replicas.",
                    "Growing faster than requests: a feedback loop (e.g. many waiters re-checking); compare "
                    "with Overview -> requests/s.",
                    [
                        (
                            f"sum by (operation) ({rate('gateway_coordination_call_duration_seconds_count')})",
                            "{{operation}}",
                        )
                    ],
                    unit="ops",
                    stack=True,
                ),
                Panel(
                    "In-flight per backend (shared reservations)",
                    "Requests in flight on each backend as the shared store counts them for all replicas.",
                    "Replicas that disagree (compare per instance) point at a replica that cannot reach Redis.",
                    [(f"max by (backend) (gateway_backend_in_flight{{{B}}})", "{{backend}}")],
                    stack=True,
                ),
            ],
        ),
        Row(
            "Replicas",
            [
                Panel(
                    "Degraded replicas",
                    "Gateway replicas serving alone because the shared store is unreachable (0 = all share state).",
                    "Any degraded replica routes and admits from its own view only: check Redis and the "
                    "network from that replica; it reconnects by itself with backoff.",
                    [("sum(gateway_coordination_degraded)", "degraded")],
                    kind="stat",
                    width=8,
                    thresholds=[(None, "green"), (1, "red")],
                ),
                Panel(
                    "Degraded by replica",
                    "The degraded flag per gateway replica (Prometheus instance).",
                    "Flapping: calls time out intermittently; see the p99 latency above.",
                    [("max by (instance) (gateway_coordination_degraded)", "{{instance}}")],
                    width=8,
                    max=1,
                    mappings=DEGRADED_MAPPINGS,
                ),
                Panel(
                    "Replicas alive vs scraped",
                    "Replicas holding a lease in the shared store (as the replicas report it) next to the "
                    "replicas Prometheus scrapes.",
                    "Fewer alive than scraped: some replicas cannot renew their lease (degraded); more: "
                    "replicas Prometheus does not scrape, or other fleets sharing the namespace.",
                    [
                        ("max(gateway_coordination_replicas_alive)", "alive (lease)"),
                        ("count(gateway_coordination_degraded)", "scraped"),
                    ],
                    width=8,
                ),
            ],
        ),
        Row(
            "Admission queues",
            [
                Panel(
                    "Fleet queue depth by priority",
                    "Requests waiting for capacity in all replicas, as last published to the shared store "
                    "(each replica reports the same view; the max is shown).",
                    "Differs from the sum of local queues for long: replicas do not publish (degraded), so "
                    "priorities are no longer ordered across the fleet.",
                    [("max by (priority) (gateway_admission_fleet_queue_depth)", "{{priority}}")],
                    stack=True,
                ),
                Panel(
                    "Local queue depth by priority (sum of replicas)",
                    "Requests waiting in each replica's own admission queue, summed.",
                    "Compare with the fleet queue depth: they should match within a recheck interval.",
                    [("sum by (priority) (gateway_admission_queue_depth)", "{{priority}}")],
                    stack=True,
                ),
            ],
        ),
    ],
)

DASHBOARDS = {"overview": OVERVIEW, "routing": ROUTING, "fleet": FLEET, "coordination": COORDINATION}


def _variables() -> list[dict[str, Any]]:
    def query(name: str, label: str, definition: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "definition": definition,
            "query": definition,  # the classic form: every Grafana since 7 reads it
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "regex": "",
            "sort": 1,
            "hide": 0,
            "skipUrlSync": False,
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"selected": False, "text": "Prometheus", "value": "prometheus"},
            "options": [],
            "refresh": 1,
            "regex": "",
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "skipUrlSync": False,
        },
        query("model", "Model", "label_values(gateway_requests_total, model)"),
        query("backend", "Backend", "label_values(gateway_backend_healthy, backend)"),
    ]


def _panel(p: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": expr,
            "legendFormat": legend,
            "range": p.kind == "timeseries",
            "instant": p.kind != "timeseries",
            "refId": chr(ord("A") + i),
        }
        for i, (expr, legend) in enumerate(p.targets)
    ]
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "mappings": p.mappings,
        "thresholds": {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in p.thresholds]},
    }
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    options: dict[str, Any]
    if p.kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 20 if p.stack else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
        }
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    elif p.kind == "stat":
        defaults["color"] = {"mode": "thresholds"}
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        }
    else:  # bargauge
        defaults["color"] = {"mode": "palette-classic"}
        options = {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    return {
        "id": panel_id,
        "type": p.kind,
        "title": p.title,
        "description": f"{p.shows}\n\nWhen it looks wrong: {p.wrong}",
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": p.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }


def render(d: Dashboard) -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for row in d.rows:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for p in row.panels:
            if x + p.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(p, panel_id, x, y))
            panel_id, x = panel_id + 1, x + p.width
        y += 8
    return {
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": [TAG],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "title": "Gateway dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "url": "",
                "tooltip": "",
            }
        ],
        "templating": {"list": _variables()},
        "panels": panels,
    }


def dump(d: Dashboard) -> str:
    return json.dumps(render(d), indent=2, ensure_ascii=False) + "\n"


def markdown() -> str:
    out = []
    for name, d in DASHBOARDS.items():
        out.append(f"### {d.title} (`grafana/dashboards/{name}.json`, uid `{d.uid}`)\n\n{d.description}\n")
        for row in d.rows:
            out.append(f"#### {row.title}\n\n| panel | what it shows | when it looks wrong |\n|---|---|---|")
            out += [f"| {p.title} | {p.shows} | {p.wrong} |" for p in row.panels]
            out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the panel tables for the docs instead")
    args = parser.parse_args()
    if args.markdown:
        print(markdown())
        return
    DASHBOARDS_DIR.mkdir(exist_ok=True)
    for name, d in DASHBOARDS.items():
        (DASHBOARDS_DIR / f"{name}.json").write_text(dump(d))
        print(f"wrote {DASHBOARDS_DIR / f'{name}.json'}")


if __name__ == "__main__":
    main()
