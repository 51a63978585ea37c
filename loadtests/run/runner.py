"""``loadtest run``'s entry point: the sweep (``sweep.py``) in a fresh event loop, stopped cleanly by
SIGTERM and Ctrl-C.

The pieces: ``plan`` (the cells), ``workload_factory`` (the workload), ``cell_run`` (one cell: fleet,
replicas, warm-up, measurement), ``cpu`` (CPU accounting), ``progress`` (stderr), ``sweep`` (every cell,
the outputs), ``stats`` (a cell's numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from loadtests.run.options import RunOptions
from loadtests.run.sweep import sweep


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
