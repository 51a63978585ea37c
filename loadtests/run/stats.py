"""One cell's numbers: what the CSV row, the markdown table and the plots show.

Latencies and rates are in **simulated** time: wall-clock values divided by the simulator's time scale
(the simulator stretches every duration by that factor, so dividing gives what the modelled GPU would
show). Throughput: closed loop, the output tokens delivered while the load was steady, between the phase's
start and its last request's start (before the tail drains and fewer than ``concurrency`` streams are
open), each request's tokens spread evenly between its first token and its end; open loop, every output
token delivered over the whole phase (first arrival to last completion), so an overloaded fleet shows
its capacity rather than the offered rate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtests.run.loadgen import PhaseResult, RequestRecord
from loadtests.run.scrape import BackendCounters, GatewayCounters
from loadtests.workloads import PRIORITIES


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def tokens_in_window(records: Sequence[RequestRecord], window_end: float) -> float:
    """Output tokens delivered in [0, window_end] wall seconds, each request's spread evenly over its stream."""
    total = 0.0
    for r in records:
        if not r.ok or r.completion_tokens <= 0 or r.end is None:
            continue
        first = r.first_token_at if r.first_token_at is not None else r.end
        end = r.end
        if end <= window_end:
            total += r.completion_tokens
        elif first < window_end:
            # the first token at `first`, the others evenly until `end`
            span = end - first
            total += 1 + (r.completion_tokens - 1) * ((window_end - first) / span if span > 0 else 1.0)
    return total


@dataclass(slots=True)
class CellStats:
    """One row of results.csv (keys in CSV_COLUMNS order)."""

    cell: int
    workload: str
    policy: str
    load_kind: str
    load: float
    replicas: int
    state: str
    requests: int
    ok: int
    errors: int
    cancelled: int
    shed: int
    shed_rate: float
    shed_rate_high: float | None
    shed_rate_normal: float | None
    shed_rate_low: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    output_tokens_per_s: float | None
    requests_per_s: float | None
    prefix_hit_rate: float | None
    usage_cached_rate: float | None
    preemptions: int
    backend_max_share: float | None
    duration_s: float
    wall_s: float
    stopped_by: str
    cpu_sim: float | None = None
    cpu_gateways: float | None = None
    cpu_client: float | None = None
    cpu_redis: float | None = None
    host_cpu_busy: float | None = None
    loop_lag_p99_ms: float | None = None
    ttft_p95_ms_high: float | None = None
    ttft_p95_ms_normal: float | None = None
    ttft_p95_ms_low: float | None = None
    routing: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d


CSV_COLUMNS = [f for f in CellStats.__dataclass_fields__ if f != "extra"]


def _ms(seconds: float | None, time_scale: float) -> float | None:
    return None if seconds is None else seconds / time_scale * 1000.0


def summarize(
    *,
    cell: int,
    workload: str,
    policy: str,
    load_kind: str,
    load: float,
    replicas: int,
    state: str,
    phase: PhaseResult,
    backends: BackendCounters | None,
    gateways: GatewayCounters | None,
    time_scale: float,
    cpu: dict[str, float | None] | None = None,
    notes: Sequence[str] = (),
) -> CellStats:
    recs = phase.records
    ok = [r for r in recs if r.ok]
    shed = [r for r in recs if r.shed]
    cancelled = [r for r in recs if r.cancelled]
    errors = [r for r in recs if not r.ok and not r.shed and not r.cancelled]
    per_priority: dict[str, float | None] = {}
    for p in PRIORITIES:
        mine = [r for r in recs if r.priority == p]
        per_priority[p] = sum(1 for r in mine if r.shed) / len(mine) if mine else None
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    ttft_p95_by_priority = {
        p: _ms(percentile([r.ttft for r in ok if r.ttft is not None and r.priority == p], 95), time_scale)
        for p in PRIORITIES
    }
    e2es = [r.e2e for r in ok if r.e2e is not None]
    if phase.closed_loop and phase.issue_window_s > 0:
        window = phase.issue_window_s
        tokens = tokens_in_window(recs, window)
        done_in_window = sum(1 for r in ok if r.end is not None and r.end <= window)
    else:  # open loop (or a single request): everything delivered, over the whole phase
        window = phase.wall_s
        tokens = float(sum(r.completion_tokens for r in ok))
        done_in_window = len(ok)
    sim_window = window / time_scale
    prompt = sum(r.prompt_tokens for r in ok)
    by_backend = Counter(r.backend for r in ok if r.backend)
    routing = ""
    if gateways is not None and gateways.reasons:
        total = sum(gateways.reasons.values())
        routing = " ".join(f"{k}:{v / total:.0%}" for k, v in gateways.reasons.most_common())
    cpu = cpu or {}
    return CellStats(
        cell=cell,
        workload=workload,
        policy=policy,
        load_kind=load_kind,
        load=load,
        replicas=replicas,
        state=state,
        requests=len(recs),
        ok=len(ok),
        errors=len(errors),
        cancelled=len(cancelled),
        shed=len(shed),
        shed_rate=len(shed) / len(recs) if recs else 0.0,
        shed_rate_high=per_priority["high"],
        shed_rate_normal=per_priority["normal"],
        shed_rate_low=per_priority["low"],
        ttft_p50_ms=_ms(percentile(ttfts, 50), time_scale),
        ttft_p95_ms=_ms(percentile(ttfts, 95), time_scale),
        ttft_p99_ms=_ms(percentile(ttfts, 99), time_scale),
        e2e_p50_ms=_ms(percentile(e2es, 50), time_scale),
        e2e_p95_ms=_ms(percentile(e2es, 95), time_scale),
        output_tokens_per_s=tokens / sim_window if sim_window > 0 else None,
        requests_per_s=done_in_window / sim_window if sim_window > 0 else None,
        prefix_hit_rate=backends.hit_rate if backends is not None else None,
        usage_cached_rate=sum(r.cached_tokens for r in ok) / prompt if prompt else None,
        preemptions=int(backends.preemptions) if backends is not None else 0,
        backend_max_share=max(by_backend.values()) / len(ok) if ok and by_backend else None,
        duration_s=phase.wall_s / time_scale,
        wall_s=phase.wall_s,
        stopped_by=phase.stopped_by,
        cpu_sim=cpu.get("sim"),
        cpu_gateways=cpu.get("gateways"),
        cpu_client=cpu.get("client"),
        cpu_redis=cpu.get("redis"),
        host_cpu_busy=cpu.get("host"),
        loop_lag_p99_ms=phase.loop_lag_p99_s * 1000.0,
        ttft_p95_ms_high=ttft_p95_by_priority["high"],
        ttft_p95_ms_normal=ttft_p95_by_priority["normal"],
        ttft_p95_ms_low=ttft_p95_by_priority["low"],
        routing=routing,
        notes="; ".join([*notes, *([f"first error: {errors[0].error}"] if errors else [])]),
        extra={"first_errors": [r.error for r in errors[:3]]},
    )
