"""``loadtest run``: compare routing policies through real gateway replicas in front of a simulated fleet.

See docs/loadtests.md. Example::

    loadtest run --workload reference --policies round_robin,prefix --backends 4 --replicas 1 \\
        --state local --concurrency 1,8 --max-requests 100 --out /tmp/lt
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from loadtests.run.options import OptionsError, add_arguments, resolve


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``run`` subcommand on an ``argparse`` subparsers object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="sweep routing policies x load x replicas x state through the gateway; write a report",
        description=(
            "Start a fresh simulated fleet and gateway replicas per cell (policy x load x replicas x state), "
            "drive a workload through them and write OUT/report.md, OUT/results.csv and OUT/*.png. Latencies "
            "and rates are reported in simulated time (wall / --time-scale)."
        ),
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from loadtests.run.runner import run_sweep

    try:
        opts = resolve(args)
    except (OptionsError, ValueError) as e:
        print(f"loadtest run: {e}", file=sys.stderr)
        return 2
    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    return run_sweep(opts, argv)
