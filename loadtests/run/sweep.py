"""The sweep: every cell (policy x load x replicas x state) in turn, each on a fresh fleet and fresh
replicas (see ``cell_run``); results.csv and report.md rewritten after each cell, plots at the end.

One ``redis-server`` serves the whole run when a cell needs Redis and no ``--redis-url`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import time
from datetime import UTC, datetime

import aiohttp

from loadtests.run import procs
from loadtests.run.cell_run import Sweep
from loadtests.run.options import RunOptions
from loadtests.run.plan import Cell, plan_cells
from loadtests.run.plots import PlotsUnavailable, plot_all
from loadtests.run.progress import Progress
from loadtests.run.report import RunInfo
from loadtests.run.stats import CellStats
from loadtests.run.workload_factory import build_workload
from loadtests.sim.profiles import get_profile
from loadtests.workloads import Workload

MAX_CONSECUTIVE_FAILURES = 3


def failed_row(cell: Cell, workload: str, error: str) -> CellStats:
    return CellStats(
        cell=cell.index, workload=workload, policy=cell.policy, load_kind=cell.load.kind, load=cell.load.value,
        replicas=cell.replicas, state=cell.state, requests=0, ok=0, errors=0, cancelled=0, shed=0, shed_rate=0.0,
        shed_rate_high=None, shed_rate_normal=None, shed_rate_low=None, ttft_p50_ms=None, ttft_p95_ms=None,
        ttft_p99_ms=None, e2e_p50_ms=None, e2e_p95_ms=None, output_tokens_per_s=None, requests_per_s=None,
        prefix_hit_rate=None, usage_cached_rate=None, preemptions=0, backend_max_share=None, duration_s=0.0,
        wall_s=0.0, stopped_by="failed", notes=f"FAILED: {error}",
    )  # fmt: skip


def summary_line(s: CellStats) -> str:
    def f(v: float | None, unit: str = "", digits: int = 0) -> str:
        return "-" if v is None else f"{v:.{digits}f}{unit}"

    hit = "-" if s.prefix_hit_rate is None else f"{s.prefix_hit_rate:.0%}"
    return (
        f"{s.ok}/{s.requests} ok, TTFT p50 {f(s.ttft_p50_ms, ' ms')} p95 {f(s.ttft_p95_ms, ' ms')}, "
        f"{f(s.output_tokens_per_s, ' tok/s')}, hit {hit}, shed {s.shed}, errors {s.errors + s.cancelled}, "
        f"{s.wall_s:.1f} s wall"
    )


def _load_note(opts: RunOptions) -> str:
    return (
        f"load: {opts.load_kind} "
        + {
            "concurrency": "(closed loop)",
            "rate": "(open loop, req/s in simulated time"
            + ("; the trace's timestamps rescaled to that mean rate)" if opts.workload == "trace" else ", Poisson)"),
            "rate_scale": "(open loop, the trace's timestamps divided by the factor)",
        }[opts.load_kind]
    )


def run_info(opts: RunOptions, argv: list[str], workload: Workload) -> RunInfo:
    """The report's header: the command, the machine, the profile, the workload, the bounds."""
    profile = get_profile(opts.profile)
    return RunInfo(
        command="loadtest " + shlex.join(argv),
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        machine=procs.describe_machine(),
        time_scale=opts.time_scale,
        profile=opts.profile,
        profile_details=(
            f"{profile.model}, {profile.num_gpu_blocks} KV blocks x {profile.block_size} tokens, "
            f"max_num_seqs {profile.max_num_seqs}, max_num_batched_tokens {profile.max_num_batched_tokens}"
        ),
        backends=opts.backends,
        workload=workload.describe(),
        warmup=(
            f"{opts.warmup} requests (max_tokens 1, concurrency {opts.warmup_concurrency}) through the cell's "
            "gateways before measuring, not counted"
            if opts.warmup
            else "none (cold caches)"
        ),
        bounds=(
            f"{opts.max_requests} measured requests or {opts.duration_s:g} s wall of load, whichever first, "
            f"then up to {opts.drain_s:g} s for open requests to finish"
        ),
        notes=[
            _load_note(opts),
            "requests spread over the replicas round robin; streaming chat completions with "
            "`stream_options.include_usage`; `x-priority` from the workload"
            + ("; `x-session-id` sent" if opts.send_session_id else ""),
        ],
    )


async def _start_redis(s: Sweep) -> None:
    """A local redis-server for the run when a cell needs Redis and none was given."""
    opts = s.opts
    if "redis" in opts.states and not opts.redis_url:
        s.redis = await procs.start_redis(None)
        s.info.redis = f"local redis-server {s.redis.version} ({s.redis.binary}), started for this run"
    elif "redis" in opts.states:
        s.info.redis = f"{opts.redis_url} (given)"


async def _run_cells(s: Sweep) -> int:
    """Every cell in turn, the outputs rewritten after each; stops after MAX_CONSECUTIVE_FAILURES failed
    cells in a row. Returns how many cells failed."""
    failures = consecutive = 0
    for cell in s.cells:
        try:
            stats = await s.run_cell(cell)
            consecutive = 0
        except (procs.StartError, OSError, aiohttp.ClientError) as e:
            failures += 1
            consecutive += 1
            stats = failed_row(cell, s.opts.workload, str(e))
        s.results.append(stats)
        s.progress.finish(cell, summary_line(stats))
        s.write_outputs()
        if consecutive >= MAX_CONSECUTIVE_FAILURES:
            s.progress.note(f"loadtest run: {consecutive} cells failed in a row; stopping")
            break
    return failures


def _finish_outputs(s: Sweep) -> None:
    """Plots (when asked for and any cell sent requests), the final report, no empty logs directory."""
    opts = s.opts
    plots: list[str] = []
    if opts.plots and any(r.requests for r in s.results):
        try:
            plots = plot_all(s.results, opts.out, title=f"{opts.workload}, {opts.backends} backends: ")
        except PlotsUnavailable as e:
            s.info.notes.append(str(e))
    if s.results:
        s.write_outputs(plots)
    logs = opts.out / "logs"
    if logs.is_dir() and not any(logs.iterdir()):
        shutil.rmtree(logs, ignore_errors=True)


async def sweep(opts: RunOptions, argv: list[str]) -> int:
    opts.out.mkdir(parents=True, exist_ok=True)
    workload = build_workload(opts)
    cells = plan_cells(opts, workload)
    info = run_info(opts, argv, workload)
    progress = Progress(len(cells))
    run_id = f"{int(time.time()) % 100000:05d}{os.getpid() % 1000:03d}"
    s = Sweep(opts, argv, workload, cells, progress, info, run_id)
    ticker = asyncio.create_task(progress.ticker())
    failures = 0
    try:
        await _start_redis(s)
        progress.note(f"loadtest run: {len(cells)} cells -> {opts.out}")
        failures = await _run_cells(s)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if s.redis is not None:
            await s.redis.stop()
        _finish_outputs(s)
    progress.note(f"loadtest run: wrote {opts.out / 'report.md'}, {opts.out / 'results.csv'}")
    return 1 if failures else 0
