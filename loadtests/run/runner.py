"""The sweep: for every cell (policy x load x replicas x state), a fresh fleet, fresh replicas, one load phase.

Per cell:

1. ``loadtest sim --backends B --base-port 0 --profile P --time-scale X`` (cold KV caches, zero counters);
2. R ``gateway serve --config`` replicas with ``[routing] policy``; state ``redis``: ``[coordination]
   redis_url`` and a namespace of their own (``lt-<run>-<cell>``), so the R replicas share one fleet view
   and no cell sees another's; state ``local``: no coordination section, i.e. R independent in-process
   stores (the "local-only" comparison);
3. wait for every replica's ``/readyz`` and for it to see every backend healthy;
4. warm-up (optional, unmeasured): the workload's first N requests with ``max_tokens`` 1, closed loop;
5. scrape the backends' and replicas' ``/metrics``, note CPU counters; drive the measured phase; scrape again;
6. stop the replicas and the simulator by PID; summarize; rewrite results.csv and report.md.

One ``redis-server`` serves the whole run when a cell needs Redis and no ``--redis-url`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import aiohttp

from loadtests.run import procs
from loadtests.run.loadgen import Client, ClosedLoop, LoadSpec, OpenLoop, PhaseResult, run_phase
from loadtests.run.options import RunOptions
from loadtests.run.plots import PlotsUnavailable, plot_all
from loadtests.run.report import RunInfo, markdown, write_csv
from loadtests.run.scrape import scrape_backends, scrape_gateways
from loadtests.run.stats import CellStats, summarize
from loadtests.sim.profiles import get_profile
from loadtests.workloads import (
    ChatParams,
    ChatWorkload,
    ReferenceParams,
    ReferenceWorkload,
    TraceParams,
    TraceWorkload,
    WorkItem,
    Workload,
)

MAX_CONSECUTIVE_FAILURES = 3
WARMUP_MAX_WALL_S = 120.0
LATE_ARRIVAL_S = 0.1
"""Open loop: an arrival sent more than this many wall seconds after its due time is counted as late."""


@dataclass(frozen=True, slots=True)
class Cell:
    index: int
    """1-based position in the sweep."""
    policy: str
    load: LoadSpec
    replicas: int
    state: str

    def label(self) -> str:
        prefix = {"concurrency": "c", "rate": "r", "rate_scale": "x"}[self.load.kind]
        return f"{self.policy} {prefix}={self.load.value:g} replicas={self.replicas} {self.state}"


def load_spec(kind: str, value: float, trace_rate: float | None = None) -> LoadSpec:
    """The load of a cell. ``trace_rate``: the trace's own mean arrival rate (requests per simulated
    second), for a trace under ``--rate``: its timestamps are then scaled by ``value / trace_rate``, so it
    keeps its burstiness at a mean rate of ``value``."""
    if kind == "concurrency":
        return ClosedLoop(int(value))
    if kind == "rate":
        if trace_rate is None:
            return OpenLoop(rate=value)
        return OpenLoop(rate=value, rate_scale=value / trace_rate, use_arrivals=True)
    return OpenLoop(rate_scale=value, use_arrivals=True)


def plan_cells(opts: RunOptions, workload: Workload | None = None) -> list[Cell]:
    trace_rate = workload.mean_rate if isinstance(workload, TraceWorkload) else None
    cells = []
    combos = itertools.product(opts.replicas, opts.states, opts.loads, opts.policies)
    for i, (replicas, state, load, policy) in enumerate(combos, start=1):
        cells.append(Cell(i, policy, load_spec(opts.load_kind, load, trace_rate), replicas, state))
    return cells


def build_workload(opts: RunOptions) -> Workload:
    a = opts.workload_args
    if opts.workload == "reference":
        return ReferenceWorkload(
            ReferenceParams(
                tenants=a["tenants"],
                system_tokens=a["system_tokens"] or 3000,
                user_tokens=a["user_tokens"] or 50,
                output_tokens=a["output_tokens"],
                zipf=a["zipf"],
                priority_mix=a["priority_mix"],
                seed=opts.seed,
            )
        )
    if opts.workload == "chat":
        return ChatWorkload(
            ChatParams(
                sessions=a["sessions"],
                turns=a["turns"],
                system_prompts=a["system_prompts"],
                system_tokens=a["system_tokens"] or 1000,
                user_tokens=a["user_tokens"] or 150,
                output_tokens=a["output_tokens"],
                priority_mix=a["priority_mix"],
                seed=opts.seed,
            )
        )
    return TraceWorkload(
        TraceParams(
            path=opts.trace,
            system_blocks=a["trace_system_blocks"],
            max_model_len=get_profile(opts.profile).max_model_len,
            time_scale=a["trace_time_scale"],
            seed=opts.seed,
        )
    )


class Progress:
    """Progress on stderr: a status line while a cell runs (rewritten in place on a terminal, every 10 s
    otherwise) and one line when it ends."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.run_start = time.monotonic()
        self.cell: Cell | None = None
        self.phase = ""
        self.cell_start = 0.0
        self.done = 0
        self.issued = 0
        self.target = 0

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.run_start)
        return f"{s // 60}m{s % 60:02d}s"

    def start(self, cell: Cell, phase: str, target: int) -> None:
        self.cell, self.phase, self.target = cell, phase, target
        self.cell_start = time.monotonic()
        self.done = self.issued = 0
        self.line()

    def update(self, done: int, issued: int) -> None:
        self.done, self.issued = done, issued

    def line(self) -> None:
        if self.cell is None:
            return
        text = (
            f"[cell {self.cell.index}/{self.total}] {self.cell.label()} {self.phase}: {self.done}/{self.target} "
            f"requests done ({self.issued} sent), {time.monotonic() - self.cell_start:.0f} s, run {self._elapsed()}"
        )
        if self.tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, cell: Cell, summary: str) -> None:
        prefix = "\r\x1b[2K" if self.tty else ""
        self.stream.write(
            f"{prefix}[cell {cell.index}/{self.total}] {cell.label()}: {summary} (run {self._elapsed()})\n"
        )
        self.stream.flush()
        self.cell = None

    def note(self, text: str) -> None:
        prefix = "\r\x1b[2K" if self.tty else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()

    async def ticker(self) -> None:
        interval = 1.0 if self.tty else 10.0
        for _ in range(10_000_000):
            await asyncio.sleep(interval)
            self.line()


@dataclass
class CpuSnapshot:
    groups: dict[int, float]
    client: float
    host: tuple[float, float] | None
    at: float = field(default_factory=time.monotonic)


def cpu_snapshot(pgids: set[int]) -> CpuSnapshot:
    return CpuSnapshot(procs.group_cpu_seconds(pgids), procs.self_cpu_seconds(), procs.host_cpu())


def cpu_usage(before: CpuSnapshot, after: CpuSnapshot, roles: dict[str, list[int]]) -> dict[str, float | None]:
    wall = max(1e-6, after.at - before.at)
    out: dict[str, float | None] = {}
    for role, pgids in roles.items():
        if pgids:
            used = sum(after.groups.get(g, 0.0) - before.groups.get(g, 0.0) for g in pgids)
            out[role] = max(0.0, used) / wall
        else:
            out[role] = None
    out["client"] = (after.client - before.client) / wall
    if before.host and after.host and after.host[1] > before.host[1]:
        out["host"] = (after.host[0] - before.host[0]) / (after.host[1] - before.host[1])
    else:
        out["host"] = None
    return out


@dataclass
class Sweep:
    opts: RunOptions
    argv: list[str]
    workload: Workload
    cells: list[Cell]
    progress: Progress
    info: RunInfo
    run_id: str
    redis: procs.RedisServer | None = None
    results: list[CellStats] = field(default_factory=list)
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.opts.out / "logs"

    def namespace(self, cell: Cell) -> str:
        """A coordination namespace of the cell's own: no cell sees another's state."""
        return f"lt-{self.run_id}-{cell.index}"

    def redis_url(self) -> str | None:
        if self.opts.redis_url:
            return self.opts.redis_url
        return self.redis.url if self.redis else None

    def write_outputs(self, plots: list[str] | None = None) -> None:
        self.info.finished = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        write_csv(self.results, self.opts.out / "results.csv")
        (self.opts.out / "report.md").write_text(markdown(self.info, self.results, plots or []))

    async def run_cell(self, cell: Cell) -> CellStats:
        opts = self.opts
        tag = f"cell-{cell.index:03d}"
        self.logs.mkdir(parents=True, exist_ok=True)
        log_files = [self.logs / f"{tag}-sim.log"]
        children: list[procs.Child] = []
        notes: list[str] = []
        t_start = time.monotonic()
        try:
            sim, backends = await procs.start_simulator(
                opts.backends, opts.profile, opts.time_scale, opts.seed, log_files[0]
            )
            children.append(sim)
            namespace = self.namespace(cell)
            gateways = []
            for r in range(cell.replicas):
                port = procs.free_port()
                toml = procs.gateway_config(
                    backends,
                    port,
                    cell.policy,
                    redis_url=self.redis_url() if cell.state == "redis" else None,
                    namespace=namespace,
                    health_interval_s=opts.health_interval_s,
                )
                log = self.logs / f"{tag}-gw{r}.log"
                log_files += [log, self.logs / f"{tag}-gw{r}.toml"]
                g = procs.spawn_gateway(toml, port, self.logs / f"{tag}-gw{r}.toml", log)
                gateways.append(g)
                children.append(g.child)
            connector = aiohttp.TCPConnector(limit=0, force_close=False)
            async with aiohttp.ClientSession(connector=connector) as session:
                notes += await procs.wait_gateways_ready(session, gateways, len(backends))
                notes.append(f"setup {time.monotonic() - t_start:.1f} s")
                client = Client(
                    session,
                    [g.url for g in gateways],
                    backends[0].model,
                    send_session_id=opts.send_session_id,
                    request_timeout_s=opts.request_timeout_s,
                )
                items = self.workload.items()
                if opts.warmup > 0:
                    notes.append(await self._warmup(cell, client, items))
                stats = await self._measure(cell, session, client, items, backends, gateways, children, notes)
        except procs.StartError as e:
            self.progress.note(f"[cell {cell.index}/{len(self.cells)}] failed: {e}")
            raise
        finally:
            t_stop = time.monotonic()
            await asyncio.gather(*(child.stop() for child in children))
            if cell.state == "redis" and opts.redis_url:  # a Redis we do not own: leave nothing behind
                with contextlib.suppress(Exception):
                    await procs.delete_namespace(opts.redis_url, self.namespace(cell))
        stats.notes = "; ".join([*filter(None, [stats.notes]), f"teardown {time.monotonic() - t_stop:.1f} s"])
        if not opts.keep_logs:
            for f in log_files:
                with contextlib.suppress(OSError):
                    f.unlink()
            with contextlib.suppress(OSError):
                self.logs.rmdir()
        return stats

    async def _warmup(self, cell: Cell, client: Client, items: Iterator[WorkItem]) -> str:
        opts = self.opts
        self.progress.start(cell, "warm-up", opts.warmup)
        phase = await run_phase(
            client,
            items,
            ClosedLoop(opts.warmup_concurrency),
            max_requests=opts.warmup,
            max_wall_s=WARMUP_MAX_WALL_S,
            drain_s=opts.drain_s,
            time_scale=opts.time_scale,
            max_tokens=1,
            seed=opts.seed,
            on_progress=self.progress.update,
        )
        bad = sum(1 for r in phase.records if not r.ok)
        return f"warm-up {len(phase.records)} req in {phase.wall_s:.1f} s wall" + (f" ({bad} failed)" if bad else "")

    async def _measure(
        self,
        cell: Cell,
        session: aiohttp.ClientSession,
        client: Client,
        items: Iterator[WorkItem],
        backends: list[procs.Backend],
        gateways: list[procs.Gateway],
        children: list[procs.Child],
        notes: list[str],
    ) -> CellStats:
        opts = self.opts
        backend_urls = [b.url for b in backends]
        gateway_urls = [g.url for g in gateways]
        sim_pgid = children[0].pid
        roles = {
            "sim": [sim_pgid],
            "gateways": [g.child.pid for g in gateways],
            "redis": [self.redis.child.pid] if (self.redis and cell.state == "redis") else [],
        }
        pgids = {g for gs in roles.values() for g in gs}
        b0, g0 = await asyncio.gather(scrape_backends(session, backend_urls), scrape_gateways(session, gateway_urls))
        cpu0 = cpu_snapshot(pgids)
        self.progress.start(cell, "load", opts.max_requests)
        phase: PhaseResult = await run_phase(
            client,
            items,
            cell.load,
            max_requests=opts.max_requests,
            max_wall_s=opts.duration_s,
            drain_s=opts.drain_s,
            time_scale=opts.time_scale,
            seed=opts.seed,
            on_progress=self.progress.update,
        )
        cpu1 = cpu_snapshot(pgids)
        b1, g1 = await asyncio.gather(scrape_backends(session, backend_urls), scrape_gateways(session, gateway_urls))
        if b1.failed or b0.failed:
            notes.append(f"{max(b0.failed, b1.failed)} backend scrape(s) failed")
        if (
            opts.workload == "chat"
            and isinstance(cell.load, ClosedLoop)
            and cell.load.concurrency > opts.workload_args["sessions"]
        ):
            notes.append("fewer open conversations than concurrency: workers waited for previous turns")
        late = sum(1 for r in phase.records if r.late_s > LATE_ARRIVAL_S)
        if late:
            notes.append(f"{late} arrivals sent over {LATE_ARRIVAL_S * 1000:.0f} ms late (client lag or in-flight cap)")
        return summarize(
            cell=cell.index,
            workload=opts.workload,
            policy=cell.policy,
            load_kind=cell.load.kind,
            load=cell.load.value,
            replicas=cell.replicas,
            state=cell.state,
            phase=phase,
            backends=b1.minus(b0),
            gateways=g1.minus(g0),
            time_scale=opts.time_scale,
            cpu=cpu_usage(cpu0, cpu1, roles),
            notes=notes,
        )


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


async def sweep(opts: RunOptions, argv: list[str]) -> int:
    opts.out.mkdir(parents=True, exist_ok=True)
    workload = build_workload(opts)
    cells = plan_cells(opts, workload)
    profile = get_profile(opts.profile)
    info = RunInfo(
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
            f"load: {opts.load_kind} "
            + {
                "concurrency": "(closed loop)",
                "rate": "(open loop, req/s in simulated time"
                + (
                    "; the trace's timestamps rescaled to that mean rate)" if opts.workload == "trace" else ", Poisson)"
                ),
                "rate_scale": "(open loop, the trace's timestamps divided by the factor)",
            }[opts.load_kind],
            "requests spread over the replicas round robin; streaming chat completions with "
            "`stream_options.include_usage`; `x-priority` from the workload"
            + ("; `x-session-id` sent" if opts.send_session_id else ""),
        ],
    )
    progress = Progress(len(cells))
    run_id = f"{int(time.time()) % 100000:05d}{os.getpid() % 1000:03d}"
    s = Sweep(opts, argv, workload, cells, progress, info, run_id)
    ticker = asyncio.create_task(progress.ticker())
    failures = consecutive = 0
    try:
        if "redis" in opts.states and not opts.redis_url:
            s.redis = await procs.start_redis(None)
            info.redis = f"local redis-server {s.redis.version} ({s.redis.binary}), started for this run"
        elif "redis" in opts.states:
            info.redis = f"{opts.redis_url} (given)"
        progress.note(f"loadtest run: {len(cells)} cells -> {opts.out}")
        for cell in cells:
            try:
                stats = await s.run_cell(cell)
                consecutive = 0
            except (procs.StartError, OSError, aiohttp.ClientError) as e:
                failures += 1
                consecutive += 1
                stats = failed_row(cell, opts.workload, str(e))
            s.results.append(stats)
            progress.finish(cell, summary_line(stats))
            s.write_outputs()
            if consecutive >= MAX_CONSECUTIVE_FAILURES:
                progress.note(f"loadtest run: {consecutive} cells failed in a row; stopping")
                break
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        if s.redis is not None:
            await s.redis.stop()
        plots: list[str] = []
        if opts.plots and any(r.requests for r in s.results):
            try:
                plots = plot_all(s.results, opts.out, title=f"{opts.workload}, {opts.backends} backends: ")
            except PlotsUnavailable as e:
                info.notes.append(str(e))
        if s.results:
            s.write_outputs(plots)
        logs = opts.out / "logs"
        if logs.is_dir() and not any(logs.iterdir()):
            shutil.rmtree(logs, ignore_errors=True)
    progress.note(f"loadtest run: wrote {opts.out / 'report.md'}, {opts.out / 'results.csv'}")
    return 1 if failures else 0


def run_sweep(opts: RunOptions, argv: list[str]) -> int:
    """Run the sweep in a fresh event loop; SIGTERM and Ctrl-C stop it cleanly (children stopped, partial
    results written)."""

    async def main() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background job may inherit it ignored
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, task.cancel)
        return await sweep(opts, argv)

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        done = (opts.out / "results.csv").exists()
        print(
            f"loadtest run: interrupted; {'partial results are in ' + str(opts.out) if done else 'no cell completed'}",
            file=sys.stderr,
        )
        return 130
