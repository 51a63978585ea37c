"""``loadtest run`` end to end, as other tools drive it: a subprocess that starts its own simulated fleet,
gateway replicas (and redis-server), and writes report.md and results.csv. Tiny on purpose: short prompts
and outputs, a fast simulator clock, a handful of requests; no timing assertions."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SMALL = [
    "--backends", "2", "--tenants", "4", "--system-tokens", "300", "--user-tokens", "10", "--output-tokens", "8",
    "--time-scale", "0.5", "--max-requests", "6", "--duration", "20", "--drain", "20", "--warmup", "4",
    "--warmup-concurrency", "2",
]  # fmt: skip


def loadtest_run(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "loadtests", "run", "--workload", "reference", *SMALL, *args, "--out", str(out)]
    return subprocess.run(command, capture_output=True, text=True, timeout=150, check=False)


def check_outputs(out: Path, result: subprocess.CompletedProcess[str], cells: int) -> list[dict[str, str]]:
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((out / "results.csv").read_text().splitlines()))
    assert len(rows) == cells
    for row in rows:
        assert (int(row["requests"]), int(row["ok"])) == (6, 6), row
        assert 0.0 <= float(row["prefix_hit_rate"]) <= 1.0
        assert float(row["ttft_p50_ms"]) > 0
        assert float(row["output_tokens_per_s"]) > 0
        assert row["shed_rate"] == "0"
    report = (out / "report.md").read_text()
    assert report.startswith("# Load test report\n\n```sh\nloadtest run --workload reference")
    assert report.count("\n| ") >= cells + 1
    assert "[cell 1/" in result.stderr  # progress on stderr
    assert not (out / "logs").exists()  # logs are removed after cells that succeeded
    return rows


def test_run_local_state(tmp_path: Path) -> None:
    out = tmp_path / "local"
    result = loadtest_run(out, "--policies", "prefix", "--replicas", "1", "--state", "local", "--concurrency", "2")
    rows = check_outputs(out, result, 1)
    assert [(r["policy"], r["load_kind"], r["load"], r["replicas"], r["state"]) for r in rows] == [
        ("prefix", "concurrency", "2", "1", "local")
    ]
    assert rows[0]["cpu_redis"] == ""


@pytest.mark.redis
def test_run_redis_state_starts_and_stops_its_own_redis(tmp_path: Path) -> None:
    out = tmp_path / "redis"
    result = loadtest_run(out, "--policies", "round_robin", "--replicas", "2", "--state", "redis", "--concurrency", "2")
    rows = check_outputs(out, result, 1)
    assert (rows[0]["policy"], rows[0]["replicas"], rows[0]["state"]) == ("round_robin", "2", "redis")
    assert "started for this run" in (out / "report.md").read_text()
    assert rows[0]["cpu_redis"] != ""
