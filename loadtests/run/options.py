"""``loadtest run``'s command line (a contract: other tools drive it) and the resolved options."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.sim.profiles import DEFAULT_PROFILE, PROFILES
from loadtests.workloads import DEFAULT_TRACE, WORKLOADS

POLICIES = ("round_robin", "least_queue", "cache_aware", "prefix")
STATES = ("redis", "local")

DEFAULT_TIME_SCALE = 2.0
"""Simulated time runs this many times slower than the wall clock. See docs/loadtests.md: at 1.0 the
two-core machine saturates at 64 open streams (the simulator, the gateway and the client share it)."""
DEFAULT_MAX_REQUESTS = 400
DEFAULT_DURATION_S = 15.0
DEFAULT_DRAIN_S = 30.0
DEFAULT_WARMUP_CONCURRENCY = 16


def _list(kind: type, choices: tuple[str, ...] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        out = []
        for t in items:
            if choices is not None and t not in choices:
                raise argparse.ArgumentTypeError(f"{t!r} is not one of {', '.join(choices)}")
            try:
                value = kind(t)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{t!r} is not a valid {kind.__name__}") from None
            if kind in (int, float) and value <= 0:
                raise argparse.ArgumentTypeError(f"{t!r} must be > 0")
            out.append(value)
        if len(set(out)) != len(out):
            raise argparse.ArgumentTypeError("duplicate values")
        return out

    return parse


def _mix(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace("/", ",").split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError("expected three numbers, e.g. 20,50,30") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError("expected three non-negative weights (high,normal,low), e.g. 20,50,30")
    return values[0], values[1], values[2]


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be > 0")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workload", required=True, choices=WORKLOADS)
    p.add_argument("--trace", default=str(DEFAULT_TRACE), help="Mooncake JSONL trace (default: the bundled one)")
    p.add_argument("--policies", type=_list(str, POLICIES), default=list(POLICIES), help="comma-separated")
    p.add_argument("--backends", type=_positive(int), default=8, help="simulated vLLM servers (default 8)")
    p.add_argument("--replicas", type=_list(int), default=[1], help="gateway replica counts, e.g. 1,4 (default 1)")
    p.add_argument("--state", type=_list(str, STATES), default=["local"], help="redis,local (default local)")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=_list(int), help="closed loop at these concurrencies (default 1,4,16,64)")
    load.add_argument("--rate", type=_list(float), help="open loop at these arrival rates (req/s, simulated time)")
    load.add_argument(
        "--rate-scale", type=_list(float), help="trace only: replay the trace's timestamps sped up by these factors"
    )
    p.add_argument(
        "--time-scale",
        type=_positive(float),
        default=DEFAULT_TIME_SCALE,
        help=f"the simulator's time stretch (default {DEFAULT_TIME_SCALE:g}); results are reported in simulated time",
    )
    p.add_argument(
        "--max-requests",
        type=_positive(int),
        default=DEFAULT_MAX_REQUESTS,
        help=f"measured requests per cell (default {DEFAULT_MAX_REQUESTS})",
    )
    p.add_argument(
        "--duration",
        type=_positive(float),
        default=DEFAULT_DURATION_S,
        help=f"wall seconds of load per cell at most (default {DEFAULT_DURATION_S:g}); open requests then get --drain",
    )
    p.add_argument(
        "--drain", type=_positive(float), default=DEFAULT_DRAIN_S, help="wall seconds to let requests finish"
    )
    p.add_argument(
        "--warmup",
        default="auto",
        help="unmeasured requests (max_tokens 1) sent through the gateway before each cell's measurement; "
        "auto = --tenants for reference (one per tenant on average), --sessions for chat (every open "
        "conversation's first turn), 0 for trace",
    )
    p.add_argument("--warmup-concurrency", type=_positive(int), default=DEFAULT_WARMUP_CONCURRENCY)
    p.add_argument("--redis-url", help="use this Redis for --state redis (default: start a local redis-server)")
    p.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES), help="simulator profile")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="output directory (report.md, results.csv, *.png)")
    w = p.add_argument_group("workload shape")
    w.add_argument("--tenants", type=_positive(int), default=200, help="reference: tenants (default 200)")
    w.add_argument("--system-tokens", type=_positive(int), help="system prompt tokens (reference 3000, chat 1000)")
    w.add_argument("--user-tokens", type=_positive(int), help="user turn tokens (reference 50, chat 150)")
    w.add_argument("--output-tokens", type=_positive(int), default=100, help="max_tokens per request (default 100)")
    w.add_argument("--zipf", type=float, default=1.0, help="reference: tenant popularity exponent (0 = uniform)")
    w.add_argument("--priority-mix", type=_mix, default=(20.0, 50.0, 30.0), help="high,normal,low weights")
    w.add_argument(
        "--sessions",
        type=_positive(int),
        help="chat: open conversations (default: twice the highest concurrency, at least 16; 128 for --rate)",
    )
    w.add_argument("--turns", type=_positive(int), default=8, help="chat: mean turns per conversation (default 8)")
    w.add_argument("--system-prompts", type=_positive(int), default=8, help="chat: shared system prompts")
    w.add_argument("--send-session-id", action="store_true", help="chat: send x-session-id (session affinity)")
    w.add_argument("--trace-system-blocks", type=_non_negative_int, default=1, help="trace: blocks sent as system")
    w.add_argument(
        "--trace-time-scale", type=_positive(float), default=1.0, help="trace: multiply the timestamps (default 1)"
    )
    g = p.add_argument_group("harness")
    g.add_argument("--health-interval", type=_positive(float), help="gateway fleet.health.interval_s (wall seconds)")
    g.add_argument("--request-timeout", type=_positive(float), default=600.0, help="wall seconds per request")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--keep-logs", action="store_true", help="keep every process's log under OUT/logs")


@dataclass
class RunOptions:
    workload: str
    trace: str
    policies: list[str]
    backends: int
    replicas: list[int]
    states: list[str]
    load_kind: str
    loads: list[float]
    time_scale: float
    max_requests: int
    duration_s: float
    drain_s: float
    warmup: int
    warmup_concurrency: int
    redis_url: str | None
    profile: str
    seed: int
    out: Path
    workload_args: dict[str, Any] = field(default_factory=dict)
    health_interval_s: float | None = None
    request_timeout_s: float = 600.0
    plots: bool = True
    keep_logs: bool = False
    send_session_id: bool = False


class OptionsError(ValueError):
    pass


def resolve(args: argparse.Namespace) -> RunOptions:
    if args.rate is not None:
        kind, loads = "rate", [float(v) for v in args.rate]
    elif args.rate_scale is not None:
        if args.workload != "trace":
            raise OptionsError("--rate-scale replays a trace's timestamps: use it with --workload trace")
        kind, loads = "rate_scale", [float(v) for v in args.rate_scale]
    else:
        kind, loads = "concurrency", [float(v) for v in (args.concurrency or [1, 4, 16, 64])]
    if args.workload == "trace" and not Path(args.trace).is_file():
        raise OptionsError(f"--trace {args.trace}: no such file")
    sessions = args.sessions or (max(16, 2 * int(max(loads))) if kind == "concurrency" else 128)
    if args.warmup == "auto":
        warmup = {"reference": args.tenants, "chat": sessions}.get(args.workload, 0)
    else:
        try:
            warmup = int(args.warmup)
        except ValueError:
            raise OptionsError("--warmup must be a number of requests or 'auto'") from None
        if warmup < 0:
            raise OptionsError("--warmup must be >= 0")
    if args.redis_url and not args.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise OptionsError("--redis-url must start with redis://, rediss:// or unix://")
    workload_args = {
        "tenants": args.tenants,
        "system_tokens": args.system_tokens,
        "user_tokens": args.user_tokens,
        "output_tokens": args.output_tokens,
        "zipf": args.zipf,
        "priority_mix": args.priority_mix,
        "sessions": sessions,
        "turns": args.turns,
        "system_prompts": args.system_prompts,
        "trace_system_blocks": args.trace_system_blocks,
        "trace_time_scale": args.trace_time_scale,
    }
    return RunOptions(
        workload=args.workload,
        trace=args.trace,
        policies=list(args.policies),
        backends=args.backends,
        replicas=list(args.replicas),
        states=list(args.state),
        load_kind=kind,
        loads=loads,
        time_scale=args.time_scale,
        max_requests=args.max_requests,
        duration_s=args.duration,
        drain_s=args.drain,
        warmup=warmup,
        warmup_concurrency=args.warmup_concurrency,
        redis_url=args.redis_url,
        profile=args.profile,
        seed=args.seed,
        out=args.out,
        workload_args=workload_args,
        health_interval_s=args.health_interval,
        request_timeout_s=args.request_timeout,
        plots=not args.no_plots,
        keep_logs=args.keep_logs,
        send_session_id=args.send_session_id,
    )
