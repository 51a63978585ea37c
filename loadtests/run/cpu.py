"""CPU accounting of a measured phase: the process groups' (simulator, gateways, Redis), the load
generator's own and the host's, as cores busy over the phase's wall time."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from loadtests.run import procs


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
