"""``results.csv`` and ``report.md`` from the cells' numbers.

The report opens with the exact command line and the conditions (machine, simulator profile and time
scale, workload, warm-up), then one table row per cell, the host-side check (was the machine the
bottleneck?), the comparison the issue's goals ask for, and the plots.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.run.stats import CSV_COLUMNS, CellStats

CPU_BUSY_WARN = 0.9
"""Host busy fraction above which a cell is flagged: the 2-core machine, not the fleet, may limit it."""
LOOP_LAG_WARN_MS = 50.0


@dataclass
class RunInfo:
    """What the report says about the run itself."""

    command: str
    started: str
    finished: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    time_scale: float = 1.0
    profile: str = ""
    profile_details: str = ""
    backends: int = 0
    workload: str = ""
    warmup: str = ""
    bounds: str = ""
    redis: str = ""
    notes: list[str] = field(default_factory=list)


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """Hide passwords in URLs (``redis://:secret@host`` -> ``redis://:***@host``)."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _load(s: CellStats) -> str:
    prefix = {"concurrency": "c", "rate": "r", "rate_scale": "x"}.get(s.load_kind, "")
    return f"{prefix}={s.load:g}"


def write_csv(rows: Sequence[CellStats], path: Path) -> None:
    path.write_text(csv_text(rows))


def csv_text(rows: Sequence[CellStats]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in r.row().items()}
        )
    return out.getvalue()


def results_table(rows: Sequence[CellStats]) -> list[str]:
    head = (
        "| policy | load | replicas | state | requests | TTFT p50 ms | TTFT p95 ms | e2e p50 ms | output tok/s "
        "| req/s | prefix hit | shed | shed high/normal/low | TTFT p95 high/normal/low ms "
        "| errors/cancelled | routing |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in rows:
        shed_pp = "/".join(_pct(v) for v in (s.shed_rate_high, s.shed_rate_normal, s.shed_rate_low))
        ttft_pp = "/".join(_fmt(v) for v in (s.ttft_p95_ms_high, s.ttft_p95_ms_normal, s.ttft_p95_ms_low))
        lines.append(
            f"| {s.policy} | {_load(s)} | {s.replicas} | {s.state} | {s.requests} | {_fmt(s.ttft_p50_ms)} "
            f"| {_fmt(s.ttft_p95_ms)} | {_fmt(s.e2e_p50_ms, 0)} | {_fmt(s.output_tokens_per_s, 0)} "
            f"| {_fmt(s.requests_per_s, 2)} | {_pct(s.prefix_hit_rate)} | {_pct(s.shed_rate)} | {shed_pp} | {ttft_pp} "
            f"| {s.errors}/{s.cancelled} | {s.routing or '-'} |"
        )
    return lines


def host_table(rows: Sequence[CellStats]) -> list[str]:
    head = (
        "| cell | policy | load | replicas | state | wall s | sim CPU | gateways CPU | client CPU | redis CPU "
        "| host busy | client loop lag p99 ms | stopped by | notes |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in rows:
        flag = ""
        if (s.host_cpu_busy or 0) > CPU_BUSY_WARN or (s.loop_lag_p99_ms or 0) > LOOP_LAG_WARN_MS:
            flag = " **(!)**"
        lines.append(
            f"| {s.cell} | {s.policy} | {_load(s)} | {s.replicas} | {s.state} | {_fmt(s.wall_s)} "
            f"| {_fmt(s.cpu_sim, 2)} | {_fmt(s.cpu_gateways, 2)} | {_fmt(s.cpu_client, 2)} | {_fmt(s.cpu_redis, 2)} "
            f"| {_pct(s.host_cpu_busy)}{flag} | {_fmt(s.loop_lag_p99_ms)} | {s.stopped_by} | {s.notes or '-'} |"
        )
    return lines


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def goal_lines(rows: Sequence[CellStats]) -> list[str]:
    """The issue's comparisons, where the run has the cells for them (prefix vs the others)."""
    lines: list[str] = []
    groups: dict[tuple[int, str], list[CellStats]] = {}
    for s in rows:
        groups.setdefault((s.replicas, s.state), []).append(s)
    for (replicas, state), cells in sorted(groups.items()):
        by = {(s.policy, s.load): s for s in cells}
        loads = sorted({s.load for s in cells})
        if not any(p == "prefix" for p, _ in by) or not loads:
            continue
        lines.append(f"**{replicas} replica(s), {state} state**")
        low = loads[0]
        pre = by.get(("prefix", low))
        if pre is not None:
            rr, ca = by.get(("round_robin", low)), by.get(("cache_aware", low))
            lines.append(
                f"- lowest load ({_load(pre)}): prefix TTFT p50 {_fmt(pre.ttft_p50_ms)} ms = "
                f"{_ratio(pre.ttft_p50_ms, rr.ttft_p50_ms if rr else None)} round_robin (goal <= 0.5x), "
                f"{_ratio(pre.ttft_p50_ms, ca.ttft_p50_ms if ca else None)} cache_aware (goal <= 0.8x)"
            )
        for load in loads:
            pre = by.get(("prefix", load))
            others = [s for (p, ld), s in by.items() if ld == load and p != "prefix" and s.output_tokens_per_s]
            if pre is None or not others or pre.output_tokens_per_s is None:
                continue
            best = max(others, key=lambda s: s.output_tokens_per_s or 0.0)
            lines.append(
                f"- {_load(pre)}: prefix throughput {_fmt(pre.output_tokens_per_s, 0)} tok/s = "
                f"{_ratio(pre.output_tokens_per_s, best.output_tokens_per_s)} the best other "
                f"({best.policy}, goal >= 0.98x)"
            )
        lines.append("")
    one = {(s.policy, s.load): s for s in rows if s.replicas == 1 and s.state == "redis"} or {
        (s.policy, s.load): s for s in rows if s.replicas == 1
    }
    many = [s for s in rows if s.replicas > 1 and s.state == "redis"]
    if one and many:
        lines.append("**Replicas sharing Redis vs one replica** (goal: hit rate within 2 points, TTFT p50 within 5%)")
        for s in many:
            base = one.get((s.policy, s.load))
            if base is None:
                continue
            hit = (
                "-"
                if s.prefix_hit_rate is None or base.prefix_hit_rate is None
                else f"{(s.prefix_hit_rate - base.prefix_hit_rate) * 100:+.1f} points"
            )
            lines.append(
                f"- {s.policy} {_load(s)}: {s.replicas} replicas hit rate {_pct(s.prefix_hit_rate)} vs "
                f"{_pct(base.prefix_hit_rate)} ({hit}); TTFT p50 {_ratio(s.ttft_p50_ms, base.ttft_p50_ms)} of 1 replica"
            )
        lines.append("")
    return lines


def markdown(info: RunInfo, rows: Sequence[CellStats], plots: Sequence[str]) -> str:
    m = info.machine
    loadavg = m.get("loadavg") or (0, 0, 0)
    out = [
        "# Load test report",
        "",
        "```sh",
        redact(info.command),
        "```",
        "",
        f"- started {info.started}, finished {info.finished or '-'}",
        f"- machine: {m.get('cpus', '?')} CPUs ({m.get('cpu_model', '?')}), host {m.get('hostname', '?')}, "
        f"load average at start {loadavg[0]:.2f}/{loadavg[1]:.2f}/{loadavg[2]:.2f}, Python {m.get('python', '?')}",
        f"- fleet: {info.backends} simulated vLLM backends, profile `{info.profile}` ({info.profile_details})",
        f"- **time scale {info.time_scale:g}**: the simulator stretches every simulated duration by this factor; "
        "all latencies, rates and throughputs below are in **simulated time** (wall-clock values divided by "
        f"{info.time_scale:g}), i.e. what the modelled GPUs would show",
        f"- workload: {info.workload}",
        f"- warm-up: {info.warmup}",
        f"- bounds per cell: {info.bounds}",
    ]
    if info.redis:
        out.append(f"- redis: {redact(info.redis)}")
    out += [f"- {n}" for n in info.notes]
    out += [
        "- each cell starts a fresh simulated fleet (cold caches, zeroed counters) and fresh gateway replicas; "
        "prefix hit rate = delta of the backends' `vllm:prefix_cache_hits_total / vllm:prefix_cache_queries_total` "
        "over the measured phase; shed = HTTP 429 (per priority: 429s / requests of that priority); "
        "errors/cancelled = other failed requests / requests still open at the drain deadline; routing = the gateways' "
        "`gateway_routing_decisions_total` by reason",
        "",
        "## Results",
        "",
        *results_table(rows),
        "",
    ]
    goals = goal_lines(rows)
    if goals:
        out += ["## Against the goals of issue 5", "", *goals]
    if plots:
        out += ["## Plots", ""]
        out += [f"![{p}]({p})" for p in plots]
        out.append("")
    out += [
        "## Host check",
        "",
        "CPU columns are cores used on average over the cell (1.00 = one core busy); host busy is the share of "
        f"all CPUs busy (including other work on the machine). **(!)** marks host busy above {CPU_BUSY_WARN:.0%} "
        f"or a client event-loop lag p99 above {LOOP_LAG_WARN_MS:.0f} ms: there the machine, not the simulated "
        "fleet, may have limited the numbers (raise --time-scale). A simulator process near 1.00 core is "
        "saturated too (it runs every backend in one event loop).",
        "",
        *host_table(rows),
        "",
    ]
    return "\n".join(out)
