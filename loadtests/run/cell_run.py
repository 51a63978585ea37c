"""One cell of the sweep: a fresh fleet, fresh replicas, one load phase.

Per cell:

1. ``loadtest sim --backends B --base-port 0 --profile P --time-scale X`` (cold KV caches, zero counters);
2. R ``gateway serve --config`` replicas with ``[routing] policy``; state ``redis``: ``[coordination]
   redis_url`` and a namespace of their own (``lt-<run>-<cell>``), so the R replicas share one fleet view
   and no cell sees another's; state ``local``: no coordination section, i.e. R independent in-process
   stores (the "local-only" comparison);
3. wait for every replica's ``/readyz`` and for it to see every backend healthy;
4. warm-up (optional, unmeasured): the workload's first N requests with ``max_tokens`` 1, closed loop;
5. scrape the backends' and replicas' ``/metrics``, note CPU counters; drive the measured phase; scrape again;
6. stop the replicas and the simulator by PID; summarize (the sweep then rewrites results.csv and report.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from loadtests.run import procs
from loadtests.run.cpu import cpu_snapshot, cpu_usage
from loadtests.run.loadgen import Client, ClosedLoop, PhaseResult, run_phase
from loadtests.run.options import RunOptions
from loadtests.run.plan import Cell
from loadtests.run.progress import Progress
from loadtests.run.report import RunInfo, markdown, write_csv
from loadtests.run.scrape import BackendCounters, scrape_backends, scrape_gateways
from loadtests.run.stats import CellStats, summarize
from loadtests.workloads import WorkItem, Workload

WARMUP_MAX_WALL_S = 120.0
LATE_ARRIVAL_S = 0.1
"""Open loop: an arrival sent more than this many wall seconds after its due time is counted as late."""


@dataclass
class Fleet:
    """What a cell started, filled in as it starts (so a failure part-way still stops and cleans up what did)."""

    log_files: list[Path]
    """The simulator's log first, then each replica's log and config."""
    children: list[procs.Child] = field(default_factory=list)
    """The simulator first, then the replicas."""
    backends: list[procs.Backend] = field(default_factory=list)
    gateways: list[procs.Gateway] = field(default_factory=list)


@dataclass
class Sweep:
    """The sweep's state (options, workload, cells, shared Redis, results so far) and how it runs one cell."""

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
        tag = f"cell-{cell.index:03d}"
        self.logs.mkdir(parents=True, exist_ok=True)
        fleet = Fleet(log_files=[self.logs / f"{tag}-sim.log"])
        t_start = time.monotonic()
        try:
            await self._start_fleet(cell, tag, fleet)
            stats = await self._drive(cell, fleet, t_start)
        except procs.StartError as e:
            self.progress.note(f"[cell {cell.index}/{len(self.cells)}] failed: {e}")
            raise
        finally:
            t_stop = time.monotonic()
            await self._teardown(cell, fleet)
        stats.notes = "; ".join([*filter(None, [stats.notes]), f"teardown {time.monotonic() - t_stop:.1f} s"])
        if not self.opts.keep_logs:
            self._remove_logs(fleet.log_files)
        return stats

    async def _start_fleet(self, cell: Cell, tag: str, fleet: Fleet) -> None:
        """Start the simulator, then the cell's gateway replicas (not yet ready)."""
        opts = self.opts
        sim, fleet.backends = await procs.start_simulator(
            opts.backends, opts.profile, opts.time_scale, opts.seed, fleet.log_files[0]
        )
        fleet.children.append(sim)
        namespace = self.namespace(cell)
        for r in range(cell.replicas):
            port = procs.free_port()
            toml = procs.gateway_config(
                fleet.backends,
                port,
                cell.policy,
                redis_url=self.redis_url() if cell.state == "redis" else None,
                namespace=namespace,
                health_interval_s=opts.health_interval_s,
            )
            log = self.logs / f"{tag}-gw{r}.log"
            fleet.log_files += [log, self.logs / f"{tag}-gw{r}.toml"]
            g = procs.spawn_gateway(toml, port, self.logs / f"{tag}-gw{r}.toml", log)
            fleet.gateways.append(g)
            fleet.children.append(g.child)

    async def _drive(self, cell: Cell, fleet: Fleet, t_start: float) -> CellStats:
        """Wait for the replicas, warm up (optional), measure."""
        opts = self.opts
        notes: list[str] = []
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            notes += await procs.wait_gateways_ready(session, fleet.gateways, len(fleet.backends))
            notes.append(f"setup {time.monotonic() - t_start:.1f} s")
            client = Client(
                session,
                [g.url for g in fleet.gateways],
                fleet.backends[0].model,
                send_session_id=opts.send_session_id,
                request_timeout_s=opts.request_timeout_s,
            )
            items = self.workload.items()
            if opts.warmup > 0:
                notes.append(await self._warmup(cell, client, items))
            return await self._measure(cell, session, client, items, fleet, notes)

    async def _teardown(self, cell: Cell, fleet: Fleet) -> None:
        await asyncio.gather(*(child.stop() for child in fleet.children))
        if cell.state == "redis" and self.opts.redis_url:  # a Redis we do not own: leave nothing behind
            with contextlib.suppress(Exception):
                await procs.delete_namespace(self.opts.redis_url, self.namespace(cell))

    def _remove_logs(self, log_files: list[Path]) -> None:
        for f in log_files:
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            self.logs.rmdir()

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

    def _cpu_roles(self, cell: Cell, fleet: Fleet) -> dict[str, list[int]]:
        """The process groups whose CPU each role's column sums."""
        return {
            "sim": [fleet.children[0].pid],
            "gateways": [g.child.pid for g in fleet.gateways],
            "redis": [self.redis.child.pid] if (self.redis and cell.state == "redis") else [],
        }

    async def _measure(
        self,
        cell: Cell,
        session: aiohttp.ClientSession,
        client: Client,
        items: Iterator[WorkItem],
        fleet: Fleet,
        notes: list[str],
    ) -> CellStats:
        opts = self.opts
        backend_urls = [b.url for b in fleet.backends]
        gateway_urls = [g.url for g in fleet.gateways]
        roles = self._cpu_roles(cell, fleet)
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
        notes += self._phase_notes(cell, phase, b0, b1)
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

    def _phase_notes(self, cell: Cell, phase: PhaseResult, b0: BackendCounters, b1: BackendCounters) -> list[str]:
        """What the measured phase's row should warn about: failed scrapes, waiting workers, late arrivals."""
        opts = self.opts
        notes = []
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
        return notes
