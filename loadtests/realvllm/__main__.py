"""``python -m loadtests.realvllm [--servers 2]``: real vLLM CPU servers until SIGINT/SIGTERM, like ``loadtest sim``.

Prints one line per server in ``loadtest sim``'s format (``vllm-0 http://127.0.0.1:PORT model=tiny
profile=real-vllm-cpu``), then ``ready`` (stdout flushed), so anything that drives ``loadtest sim`` (e.g.
``tests.processes.simulator_process``) can drive real servers instead. Exits 3 where vLLM cannot be
installed, 2 where it is not installed yet (the message says which script to run).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from loadtests.realvllm.servers import MODEL, missing_install, vllm_servers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.realvllm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=2, help="how many (server i pinned to core i)")
    parser.add_argument("--log-dir", type=Path, help="vLLM logs (default: a temporary directory)")
    args = parser.parse_args(argv)
    missing = missing_install()
    if missing is not None:
        impossible, reason = missing
        print(reason, file=sys.stderr, flush=True)
        return 3 if impossible else 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="realvllm-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    with vllm_servers(args.servers, log_dir) as servers:
        for s in servers:
            print(f"{s.id} {s.url} model={MODEL} profile=real-vllm-cpu log={s.log}", flush=True)
        print("ready", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
