"""Stats, CSV, markdown and plots of ``loadtest run``, from synthetic results (no processes, no timing)."""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from loadtests.cli import build_parser, main
from loadtests.run.loadgen import PhaseResult, RequestRecord
from loadtests.run.options import OptionsError, resolve
from loadtests.run.plan import plan_cells
from loadtests.run.progress import Progress
from loadtests.run.report import RunInfo, csv_text, markdown
from loadtests.run.scrape import BackendCounters, GatewayCounters, parse_backend, parse_gateway
from loadtests.run.stats import CSV_COLUMNS, CellStats, percentile, summarize, tokens_in_window

REQUIRED_COLUMNS = [
    "policy", "load", "replicas", "state", "requests", "ttft_p50_ms", "ttft_p95_ms", "e2e_p50_ms",
    "output_tokens_per_s", "prefix_hit_rate", "shed_rate", "shed_rate_high", "shed_rate_normal", "shed_rate_low",
    "errors",
]  # fmt: skip


def record(
    i: int, priority: str = "normal", status: int = 200, start: float = 0.0, ttft: float = 0.1, e2e: float = 1.0
) -> RequestRecord:
    r = RequestRecord(i, priority, f"tenant-{i % 3}", 0, start, status=status)
    if status == 200:
        r.ttft, r.first_token_at, r.e2e = ttft, start + ttft, e2e
        r.completion_tokens, r.prompt_tokens, r.cached_tokens, r.backend = 100, 1000, 750, f"b{i % 2}"
    else:
        r.e2e = 0.01
        r.error = f"http {status}"
    return r


def phase(records: list[RequestRecord], window: float, closed: bool = True) -> PhaseResult:
    ends = [r.end for r in records if r.end is not None]
    return PhaseResult(records, max(ends), window, 0.002, 0.004, 4, "requests", closed)


def cell(policy: str, load: float, ttft: float, tput: float, replicas: int = 1, state: str = "local") -> CellStats:
    s = summarize(
        cell=1, workload="reference", policy=policy, load_kind="concurrency", load=load, replicas=replicas,
        state=state, phase=phase([record(0, ttft=ttft), record(1, ttft=ttft)], 0.0),
        backends=BackendCounters(1000, 800), gateways=None, time_scale=1.0,
    )  # fmt: skip
    s.output_tokens_per_s = tput
    return s


def test_percentile_interpolates_like_numpy() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 95) == 95.0


def test_tokens_in_window_counts_the_steady_part() -> None:
    a = record(0, start=0.0, ttft=0.0, e2e=1.0)  # 100 tokens within [0, 1]
    b = record(1, start=1.0, ttft=0.0, e2e=2.0)  # streams from 1 to 3
    assert tokens_in_window([a, b], 1.0) == 100
    assert tokens_in_window([a, b], 2.0) == pytest.approx(100 + 1 + 99 * 0.5)
    assert tokens_in_window([a, b], 10.0) == 200


def test_summarize_scales_to_simulated_time_and_counts_shed_per_priority() -> None:
    records = [record(i, "high" if i < 4 else "low", start=float(i), ttft=0.2, e2e=2.0) for i in range(8)]
    records += [record(8, "low", status=429), record(9, "low", status=429), record(10, "normal", status=500)]
    s = summarize(
        cell=3, workload="reference", policy="prefix", load_kind="concurrency", load=4, replicas=4, state="redis",
        phase=phase(records, 7.0), backends=BackendCounters(2000, 1500, preemptions=2), gateways=GatewayCounters(
            Counter({"affinity": 3, "least_load": 1})), time_scale=2.0, cpu={"sim": 0.5, "host": 0.4},
    )  # fmt: skip
    assert (s.requests, s.ok, s.shed, s.errors, s.cancelled) == (11, 8, 2, 1, 0)
    assert s.shed_rate == pytest.approx(2 / 11)
    assert s.shed_rate_high == 0.0
    assert s.shed_rate_low == pytest.approx(2 / 6)
    assert s.shed_rate_normal == 0.0
    assert s.ttft_p50_ms == pytest.approx(100.0)  # 0.2 s wall / time scale 2
    assert s.e2e_p50_ms == pytest.approx(1000.0)
    assert s.prefix_hit_rate == 0.75
    assert s.usage_cached_rate == 0.75
    assert s.preemptions == 2
    assert s.backend_max_share == 0.5
    assert s.routing == "affinity:75% least_load:25%"
    assert s.cpu_sim == 0.5
    assert s.host_cpu_busy == 0.4
    assert "first error: http 500" in s.notes
    # 7 wall seconds = 3.5 simulated; requests 0..5 ended by t=7 (600 tokens), 6 and 7 partly
    assert s.output_tokens_per_s == pytest.approx(tokens_in_window(records, 7.0) / 3.5)
    open_loop = summarize(
        cell=3, workload="reference", policy="prefix", load_kind="rate", load=4, replicas=1, state="local",
        phase=phase(records, 7.0, closed=False), backends=None, gateways=None, time_scale=2.0,
    )  # fmt: skip
    assert open_loop.output_tokens_per_s == pytest.approx(800 / (9.0 / 2.0))  # everything, over the whole phase
    assert open_loop.prefix_hit_rate is None


def test_csv_has_the_contract_columns_and_one_row_per_cell() -> None:
    rows = [cell("round_robin", 1, 0.2, 100.0), cell("prefix", 1, 0.05, 120.0)]
    text = csv_text(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert list(parsed[0]) == CSV_COLUMNS
    assert set(REQUIRED_COLUMNS) <= set(CSV_COLUMNS)
    assert [r["policy"] for r in parsed] == ["round_robin", "prefix"]
    assert parsed[1]["ttft_p50_ms"] == "50"
    assert parsed[1]["prefix_hit_rate"] == "0.8"
    assert parsed[0]["cpu_sim"] == ""  # unknown values are empty, not "None"


def test_markdown_starts_with_the_command_and_compares_against_the_goals() -> None:
    rows = [
        cell("round_robin", 1, 0.2, 100.0),
        cell("cache_aware", 1, 0.1, 100.0),
        cell("prefix", 1, 0.05, 110.0),
        cell("round_robin", 16, 0.4, 1000.0),
        cell("prefix", 16, 0.1, 990.0),
        cell("prefix", 1, 0.05, 110.0, replicas=4, state="redis"),
        cell("prefix", 1, 0.05, 110.0, replicas=1, state="redis"),
    ]
    info = RunInfo(command="loadtest run --workload reference --out x", started="now", time_scale=2.0, backends=8)
    text = markdown(info, rows, ["replicas1-local.png"])
    lines = text.splitlines()
    assert lines[0] == "# Load test report"
    assert "loadtest run --workload reference --out x" in lines[3]
    assert "simulated time" in text
    assert "time scale 2" in text
    table = [line for line in lines if line.startswith("| round_robin") or line.startswith("| prefix")]
    assert len(table) >= 5
    assert "0.25x round_robin" in text
    assert "0.50x cache_aware" in text
    assert "0.99x the best other (round_robin" in text
    assert "4 replicas hit rate 80.0% vs 80.0% (+0.0 points)" in text
    assert "![replicas1-local.png](replicas1-local.png)" in text


def test_plots_one_png_per_replicas_and_state(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from loadtests.run.plots import plot_all

    rows = [
        cell(p, c, 0.1 * c, 50.0 * c, replicas=r) for p in ("round_robin", "prefix") for c in (1, 4) for r in (1, 4)
    ]
    names = plot_all(rows, tmp_path)
    assert sorted(names) == ["replicas1-local.png", "replicas4-local.png"]
    assert all((tmp_path / n).read_bytes().startswith(b"\x89PNG") for n in names)


def test_parsers_read_vllm_and_gateway_metrics() -> None:
    vllm = (
        '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine="0",model_name="m"} 1.0\n'
        '# TYPE vllm:prefix_cache_queries counter\nvllm:prefix_cache_queries_total{engine="0",model_name="m"} 400.0\n'
        '# TYPE vllm:prefix_cache_hits counter\nvllm:prefix_cache_hits_total{engine="0",model_name="m"} 100.0\n'
        '# TYPE vllm:num_preemptions counter\nvllm:num_preemptions_total{engine="0",model_name="m"} 3.0\n'
    )
    counters = parse_backend(vllm)
    assert (counters.prefix_queries, counters.prefix_hits, counters.preemptions) == (400, 100, 3)
    assert counters.minus(BackendCounters(200, 100)).hit_rate == 0.0
    gw = (
        "# TYPE gateway_routing_decisions counter\n"
        'gateway_routing_decisions_total{policy="prefix",reason="affinity",backend="a"} 5.0\n'
        'gateway_routing_decisions_total{policy="prefix",reason="affinity",backend="b"} 2.0\n'
        'gateway_routing_decisions_total{policy="prefix",reason="least_load",backend="b"} 1.0\n'
    )
    assert parse_gateway(gw) == Counter({"affinity": 7, "least_load": 1})


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_options_and_the_cells_of_a_sweep(tmp_path: Path) -> None:
    args = parse(
        "--workload", "reference", "--policies", "round_robin,prefix", "--replicas", "1,4", "--state", "redis,local",
        "--concurrency", "1,16", "--out", str(tmp_path),
    )  # fmt: skip
    opts = resolve(args)
    assert opts.warmup == 200  # auto: one request per tenant
    cells = plan_cells(opts)
    assert len(cells) == 2 * 2 * 2 * 2
    assert [c.index for c in cells] == list(range(1, 17))
    assert cells[0].label() == "round_robin c=1 replicas=1 redis"
    assert {(c.replicas, c.state) for c in cells} == {(1, "redis"), (1, "local"), (4, "redis"), (4, "local")}
    assert resolve(parse("--workload", "chat", "--rate", "2,4", "--out", "x")).load_kind == "rate"
    with pytest.raises(OptionsError, match="rate-scale"):
        resolve(parse("--workload", "reference", "--rate-scale", "2", "--out", "x"))
    with pytest.raises(SystemExit):
        parse("--workload", "reference", "--policies", "nope", "--out", "x")
    with pytest.raises(SystemExit):
        parse("--workload", "reference", "--concurrency", "1", "--rate", "2", "--out", "x")


def test_invalid_options_exit_2_without_starting_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--workload", "trace", "--trace", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_progress_lines_name_the_cell_and_the_counts() -> None:
    out = io.StringIO()
    progress = Progress(4, out)
    cells = plan_cells(resolve(parse("--workload", "reference", "--concurrency", "8", "--out", "x")))
    progress.start(cells[1], "load", 100)
    progress.update(40, 48)
    progress.line()
    progress.finish(cells[1], "done")
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("[cell 2/4] least_queue c=8 replicas=1 local load: 40/100 requests done (48 sent)")
    assert lines[-1].startswith("[cell 2/4] least_queue c=8 replicas=1 local: done")
