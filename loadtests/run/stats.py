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
from typing import Any, TypedDict

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


@dataclass(frozen=True, slots=True)
class _Outcomes:
    """A phase's requests split by how they ended (errors: neither ok, shed nor cancelled)."""

    records: Sequence[RequestRecord]
    ok: list[RequestRecord]
    shed: list[RequestRecord]
    cancelled: list[RequestRecord]
    errors: list[RequestRecord]

    @classmethod
    def split(cls, records: Sequence[RequestRecord]) -> _Outcomes:
        return cls(
            records=records,
            ok=[r for r in records if r.ok],
            shed=[r for r in records if r.shed],
            cancelled=[r for r in records if r.cancelled],
            errors=[r for r in records if not r.ok and not r.shed and not r.cancelled],
        )


class _Counts(TypedDict):
    requests: int
    ok: int
    errors: int
    cancelled: int
    shed: int
    shed_rate: float
    shed_rate_high: float | None
    shed_rate_normal: float | None
    shed_rate_low: float | None


class _Latencies(TypedDict):
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    ttft_p95_ms_high: float | None
    ttft_p95_ms_normal: float | None
    ttft_p95_ms_low: float | None


class _Caching(TypedDict):
    prefix_hit_rate: float | None
    usage_cached_rate: float | None
    preemptions: int
    backend_max_share: float | None


def _shed_share(records: Sequence[RequestRecord]) -> float | None:
    """The share of ``records`` shed (429); None for no records."""
    return sum(1 for r in records if r.shed) / len(records) if records else None


def _counts(out: _Outcomes) -> _Counts:
    by_priority = {p: _shed_share([r for r in out.records if r.priority == p]) for p in PRIORITIES}
    return _Counts(
        requests=len(out.records),
        ok=len(out.ok),
        errors=len(out.errors),
        cancelled=len(out.cancelled),
        shed=len(out.shed),
        shed_rate=len(out.shed) / len(out.records) if out.records else 0.0,
        shed_rate_high=by_priority["high"],
        shed_rate_normal=by_priority["normal"],
        shed_rate_low=by_priority["low"],
    )


def _ttft_p95_ms(ok: Sequence[RequestRecord], priority: str, time_scale: float) -> float | None:
    return _ms(percentile([r.ttft for r in ok if r.ttft is not None and r.priority == priority], 95), time_scale)


def _latencies(ok: Sequence[RequestRecord], time_scale: float) -> _Latencies:
    ttfts = [r.ttft for r in ok if r.ttft is not None]
    e2es = [r.e2e for r in ok if r.e2e is not None]
    return _Latencies(
        ttft_p50_ms=_ms(percentile(ttfts, 50), time_scale),
        ttft_p95_ms=_ms(percentile(ttfts, 95), time_scale),
        ttft_p99_ms=_ms(percentile(ttfts, 99), time_scale),
        e2e_p50_ms=_ms(percentile(e2es, 50), time_scale),
        e2e_p95_ms=_ms(percentile(e2es, 95), time_scale),
        ttft_p95_ms_high=_ttft_p95_ms(ok, "high", time_scale),
        ttft_p95_ms_normal=_ttft_p95_ms(ok, "normal", time_scale),
        ttft_p95_ms_low=_ttft_p95_ms(ok, "low", time_scale),
    )


def _delivered(phase: PhaseResult, ok: Sequence[RequestRecord]) -> tuple[float, float, int]:
    """(window wall seconds, output tokens, requests done) over the throughput window (see the module doc)."""
    if phase.closed_loop and phase.issue_window_s > 0:
        window = phase.issue_window_s
        done_in_window = sum(1 for r in ok if r.end is not None and r.end <= window)
        return window, tokens_in_window(phase.records, window), done_in_window
    # open loop (or a single request): everything delivered, over the whole phase
    return phase.wall_s, float(sum(r.completion_tokens for r in ok)), len(ok)


def _throughput(
    phase: PhaseResult, ok: Sequence[RequestRecord], time_scale: float
) -> tuple[float | None, float | None]:
    """(output tokens, requests done) per simulated second over the throughput window; None for an empty one."""
    window, tokens, done_in_window = _delivered(phase, ok)
    sim_window = window / time_scale
    if sim_window > 0:
        return tokens / sim_window, done_in_window / sim_window
    return None, None


def _usage_cached_rate(ok: Sequence[RequestRecord]) -> float | None:
    prompt = sum(r.prompt_tokens for r in ok)
    return sum(r.cached_tokens for r in ok) / prompt if prompt else None


def _backend_max_share(ok: Sequence[RequestRecord]) -> float | None:
    """The busiest backend's share of the ok requests."""
    by_backend = Counter(r.backend for r in ok if r.backend)
    return max(by_backend.values()) / len(ok) if by_backend else None


def _caching(ok: Sequence[RequestRecord], backends: BackendCounters | None) -> _Caching:
    return _Caching(
        prefix_hit_rate=backends.hit_rate if backends is not None else None,
        usage_cached_rate=_usage_cached_rate(ok),
        preemptions=int(backends.preemptions) if backends is not None else 0,
        backend_max_share=_backend_max_share(ok),
    )


def _routing_mix(gateways: GatewayCounters | None) -> str:
    """The gateways' routing reasons as shares, most common first (``prefix:80% load:20%``)."""
    if gateways is None or not gateways.reasons:
        return ""
    total = sum(gateways.reasons.values())
    return " ".join(f"{k}:{v / total:.0%}" for k, v in gateways.reasons.most_common())


def _notes(notes: Sequence[str], errors: Sequence[RequestRecord]) -> str:
    return "; ".join([*notes, *([f"first error: {errors[0].error}"] if errors else [])])


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
    out = _Outcomes.split(phase.records)
    tokens_per_s, requests_per_s = _throughput(phase, out.ok, time_scale)
    cpu = cpu or {}
    return CellStats(
        cell=cell,
        workload=workload,
        policy=policy,
        load_kind=load_kind,
        load=load,
        replicas=replicas,
        state=state,
        **_counts(out),
        **_latencies(out.ok, time_scale),
        output_tokens_per_s=tokens_per_s,
        requests_per_s=requests_per_s,
        **_caching(out.ok, backends),
        duration_s=phase.wall_s / time_scale,
        wall_s=phase.wall_s,
        stopped_by=phase.stopped_by,
        cpu_sim=cpu.get("sim"),
        cpu_gateways=cpu.get("gateways"),
        cpu_client=cpu.get("client"),
        cpu_redis=cpu.get("redis"),
        host_cpu_busy=cpu.get("host"),
        loop_lag_p99_ms=phase.loop_lag_p99_s * 1000.0,
        routing=_routing_mix(gateways),
        notes=_notes(notes, out.errors),
        extra={"first_errors": [r.error for r in out.errors[:3]]},
    )
