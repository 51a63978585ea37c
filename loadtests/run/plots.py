"""PNG plots: TTFT p50, TTFT p95, output throughput and prefix hit rate against load, one line per policy,
one figure per (replicas, state). matplotlib is imported only here, only when plotting (Agg backend, no
display needed); without it the report says so and the CSV and markdown are still written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadtests.run.stats import CellStats

POLICY_ORDER = ("round_robin", "least_queue", "cache_aware", "prefix")
PANELS = (
    ("ttft_p50_ms", "TTFT p50 (ms, simulated)"),
    ("ttft_p95_ms", "TTFT p95 (ms, simulated)"),
    ("output_tokens_per_s", "output tokens/s (simulated)"),
    ("prefix_hit_rate", "prefix cache hit rate"),
)
X_LABELS = {
    "concurrency": "concurrency (closed loop)",
    "rate": "arrival rate (req/s, simulated)",
    "rate_scale": "trace rate scale",
}


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def figure_name(replicas: int, state: str) -> str:
    return f"replicas{replicas}-{state}.png"


def plot_all(rows: Sequence[CellStats], out_dir: Path, title: str = "") -> list[str]:
    """Write one PNG per (replicas, state); returns the file names. Raises PlotsUnavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotsUnavailable(f"matplotlib is not installed ({e}); no plots") from None

    groups: dict[tuple[int, str], list[CellStats]] = {}
    for s in rows:
        groups.setdefault((s.replicas, s.state), []).append(s)
    names = []
    for (replicas, state), cells in sorted(groups.items()):
        policies = sorted(
            {s.policy for s in cells}, key=lambda p: (POLICY_ORDER.index(p) if p in POLICY_ORDER else 99, p)
        )
        kind = cells[0].load_kind
        fig, grid = plt.subplots(2, 2, figsize=(10, 7.5), constrained_layout=True)
        axes = list(grid.flat)
        loads = sorted({s.load for s in cells})
        log_x = len(loads) > 2 and loads[0] > 0 and loads[-1] / loads[0] >= 8
        for ax, (column, label) in zip(axes, PANELS, strict=True):
            for policy in policies:
                points = sorted(
                    (s.load, getattr(s, column)) for s in cells if s.policy == policy and getattr(s, column) is not None
                )
                if points:
                    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=policy)
            ax.set_xlabel(X_LABELS.get(kind, kind))
            ax.set_title(label, fontsize=10)
            if log_x:
                ax.set_xscale("log", base=2)
                ax.set_xticks(loads, [f"{v:g}" for v in loads])
            if column == "prefix_hit_rate":
                ax.set_ylim(0, 1)
            else:
                ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{title}{replicas} replica(s), {state} state", fontsize=11)
        name = figure_name(replicas, state)
        fig.savefig(out_dir / name, dpi=100)
        plt.close(fig)
        names.append(name)
    return names
