"""``loadtest``: the load-testing toolbox's command line. Each subcommand lives in its own module and
registers itself through an ``add_parser(subparsers)`` function; this module only assembles them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from loadtests.run import cli as run_cli
from loadtests.sim import cli as sim_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loadtest", description="vLLM simulator and load tests")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sim_cli.add_parser(subparsers)
    run_cli.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # the exact command, for reports
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # ``python -m loadtests.cli`` as well as ``python -m loadtests``
    raise SystemExit(main())
