"""The sweep's plan: its cells (policy x load x replicas x state) and each cell's load."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from loadtests.run.loadgen import ClosedLoop, LoadSpec, OpenLoop
from loadtests.run.options import RunOptions
from loadtests.workloads import TraceWorkload, Workload


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
