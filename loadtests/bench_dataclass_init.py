"""Micro-benchmark: what ``frozen=True`` costs a slots dataclass's constructor.

    uv run python -m loadtests.bench_dataclass_init --out loadtests/results/dataclass-init.json

The request path makes several small value objects per request and per candidate backend (features,
candidates, ratings, score lines, the pick request, the decision). A frozen dataclass's ``__init__`` sets
each field through ``object.__setattr__``, a plain one assigns it; this measures both for five fields,
interleaved in rounds, and reports the median per construction and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import timeit
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Frozen:
    a: float
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    e: float = 0.0


@dataclass(slots=True)
class Plain:
    a: float
    b: float = 0.0
    c: float = 0.0
    d: float = 0.0
    e: float = 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    frozen, plain = [], []
    for i in range(args.rounds):
        print(f"round {i + 1}/{args.rounds}", flush=True)
        frozen.append(timeit.timeit(lambda: Frozen(1.0, 2.0, 3.0, 4.0, 5.0), number=args.number) / args.number)
        plain.append(timeit.timeit(lambda: Plain(1.0, 2.0, 3.0, 4.0, 5.0), number=args.number) / args.number)
    result = {
        "frozen_us": statistics.median(frozen) * 1e6,
        "plain_us": statistics.median(plain) * 1e6,
        "ratio_frozen_over_plain": statistics.median(f / p for f, p in zip(frozen, plain, strict=True)),
        "rounds": args.rounds,
        "number": args.number,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
