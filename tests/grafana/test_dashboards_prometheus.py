"""Every panel query of every dashboard, evaluated by a real Prometheus that scraped a loaded fleet.

Simulated vLLM servers (3 good ones, one that answers every completion with 500 and one serving a model only
it has, also failing), a gateway with the prefix policy, Redis coordination and a small admission capacity,
and Prometheus scraping the gateway and every simulator each second. Bounded load goes through the gateway:
streamed and whole chat completions sharing system prompts, a priority mix with bursts that queue and shed,
requests for a failing model and for an unknown one. Then each query, with Grafana's variables substituted,
goes to Prometheus' HTTP API; the test fails listing every query that is invalid or returns no series.

Needs the ``prometheus`` binary (Debian: ``apt-get install -y prometheus``; ``PROMETHEUS_BIN`` overrides).
``GRAFANA_TEST_SHOW=1`` (with ``-s``) prints every query's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.config import AdmissionConfig, CoordinationConfig, PriorityWaits
from tests.grafana.dashboards import Query, all_dashboards, queries, substitute, variables
from tests.processes import SimServer, free_port, gateway, gateway_config, simulator

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

PROMETHEUS = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
INSTALL_HINT = (
    "prometheus is not installed: `apt-get install -y prometheus` (Debian/Ubuntu; .ci/run installs it), "
    "or set PROMETHEUS_BIN to a prometheus binary"
)
MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
BROKEN_MODEL = "broken-model"
SYSTEM_PROMPTS = [
    f"You are assistant {i}. " + " ".join(f"Rule {j}: answer the question about topic {i} tersely." for j in range(40))
    for i in range(3)
]
ADMISSION = AdmissionConfig(
    backend_capacity=2,
    low_threshold=0.5,
    normal_threshold=0.8,
    max_queue=4,
    recheck_s=0.02,
    stale_after_s=3.0,
    max_wait_s=PriorityWaits(high=5.0, normal=1.0, low=0.3),
)
SCRAPE_INTERVAL_S = 1
VALUES = {"model": ".*", "backend": ".*", "datasource": "prometheus"}


@contextlib.contextmanager
def prometheus(config: dict[str, object], tmp: Path) -> Iterator[str]:
    """Prometheus with this config (JSON is YAML) on a free port, data in ``tmp``; stopped by PID."""
    assert PROMETHEUS is not None
    (tmp / "prometheus.yml").write_text(json.dumps(config, indent=2))
    port = free_port()
    log = (tmp / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "prometheus did not get ready"
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        log.close()


def scrape_config(gateway_url: str, servers: list[SimServer]) -> dict[str, object]:
    """The gateway, and each vLLM server with a ``backend`` target label naming it as the gateway does."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_INTERVAL_S}s", "scrape_timeout": f"{SCRAPE_INTERVAL_S}s"},
        "scrape_configs": [
            {"job_name": "gateway", "static_configs": [{"targets": [urlsplit(gateway_url).netloc]}]},
            {
                "job_name": "vllm",
                "static_configs": [{"targets": [urlsplit(s.url).netloc], "labels": {"backend": s.id}} for s in servers],
            },
        ],
    }


async def drive(url: str) -> Counter[int]:
    """Bounded load: three rounds of steady mixed traffic, an overload burst, and error requests."""
    rng = random.Random(7)
    statuses: Counter[int] = Counter()

    async def chat(client: httpx.AsyncClient, i: int, priority: str, model: str = MODEL) -> None:
        stream = i % 2 == 0
        body = {
            "model": model,
            "max_tokens": rng.choice((8, 16, 32)),
            "stream": stream,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPTS[i % len(SYSTEM_PROMPTS)]},
                {"role": "user", "content": f"question {i}: {rng.random()}"},
            ],
        }
        headers = {"x-priority": priority}
        if stream:
            async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r:
                await r.aread()
        else:
            r = await client.post(f"{url}/v1/chat/completions", json=body, headers=headers)
        statuses[r.status_code] += 1

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
        for round_ in range(3):
            steady = [chat(client, 100 * round_ + i, rng.choice(("high", "normal"))) for i in range(12)]
            await asyncio.gather(*steady)
            burst = [chat(client, 1000 * round_ + i, ("high", "normal", "low", "low")[i % 4]) for i in range(40)]
            errors = [chat(client, i, "normal", BROKEN_MODEL) for i in range(2)]
            errors.append(chat(client, 0, "normal", "no-such-model"))
            await asyncio.gather(*burst, *errors)
            await asyncio.sleep(1.5 * SCRAPE_INTERVAL_S)
    return statuses


def query(prometheus_url: str, expr: str) -> tuple[str | None, list[dict[str, Any]]]:
    """(error or None, result vector) of an instant query."""
    r = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    result: list[dict[str, Any]] = body["data"]["result"]
    return None, result


def wait_for_scrapes(prometheus_url: str, targets: int, scrapes: int, timeout_s: float = 20) -> None:
    """Every target up, and scraped at least ``scrapes`` times."""
    expr = f"count_over_time(up[1m]) >= {scrapes} and up == 1"
    deadline = time.monotonic() + timeout_s
    while True:
        _, result = query(prometheus_url, expr)
        if len(result) >= targets:
            return
        assert time.monotonic() < deadline, f"not all {targets} targets up and scraped {scrapes}x: {result}"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def fleet() -> Iterator[list[SimServer]]:
    with (
        simulator("--backends", "3", "--time-scale", "0.3", "--model", MODEL) as good,
        simulator(
            "--backends", "2", "--time-scale", "0.3", "--model", MODEL, BROKEN_MODEL, "--fail-rate", "1.0"
        ) as failing,
    ):
        renamed = [SimServer(f"failing-{i}", s.url, s.model) for i, s in enumerate(failing)]
        assert [s.model for s in renamed] == [MODEL, BROKEN_MODEL], failing
        yield [*good, *renamed]


@pytest.mark.skipif(PROMETHEUS is None, reason=INSTALL_HINT)
def test_every_panel_query_returns_series(fleet: list[SimServer], redis_server_url: str, tmp_path: Path) -> None:
    coordination = CoordinationConfig(redis_url=redis_server_url, namespace=f"grafana-{uuid.uuid4().hex}")
    # failing backends stay in rotation (no passive ejection) so errors and retries keep coming
    config = gateway_config(
        fleet,
        free_port(),
        policy="prefix",
        health={"consecutive_errors": 1000},
        coordination=coordination,
        admission=ADMISSION,
    )
    quiet = {"GATEWAY_SERVER__LOG_LEVEL": "WARNING"}  # no log line per request
    with gateway(config, tmp_path, quiet) as url, prometheus(scrape_config(url, fleet), tmp_path) as prom:
        wait_for_scrapes(prom, targets=len(fleet) + 1, scrapes=2)
        # the checks below tell a bad query from a missing series
        assert query(prom, "gateway_no_such_metric_total") == (None, [])
        assert query(prom, "sum(")[0] is not None
        statuses = asyncio.run(drive(url))
        print("load:", dict(statuses))
        for status in (200, 404, 429, 500):
            assert statuses[status] > 0, f"the load produced no {status}: {dict(statuses)}"
        time.sleep(2.5 * SCRAPE_INTERVAL_S)  # the last counter values are scraped
        wait_for_scrapes(prom, targets=len(fleet) + 1, scrapes=5)

        dashboards = all_dashboards()
        all_queries: list[Query] = [q for name, d in dashboards.items() for q in queries(name, d)]
        invalid, empty, nan_only = [], [], []
        for q in all_queries:
            error, result = query(prom, substitute(q.expr, VALUES))
            if error:
                invalid.append(f"{q}\n    {error}")
            elif not result:
                empty.append(str(q))
            elif all(math.isnan(float(s["value"][1])) for s in result):
                nan_only.append(str(q))
            if os.environ.get("GRAFANA_TEST_SHOW"):
                print(q, [(s["metric"], s["value"][1]) for s in result])
        # A concrete multi-value selection, as Grafana formats it: the queries must stay valid.
        model = ("(" + MODEL.replace(".", "\\.") + "|" + BROKEN_MODEL + ")").replace("\\", "\\\\")
        backends = f"({fleet[0].id}|{fleet[1].id})"
        for q in all_queries:
            error, _ = query(prom, substitute(q.expr, {**VALUES, "model": model, "backend": backends}))
            if error:
                invalid.append(f"{q} (model={model}, backend={backends})\n    {error}")
        # The variables' own queries list values.
        for name, d in dashboards.items():
            for var in ("model", "backend"):
                metric, label = variables(d)[var]["definition"][len("label_values(") : -1].split(",")
                r = httpx.get(f"{prom}/api/v1/label/{label.strip()}/values", params={"match[]": metric}).json()
                if not r.get("data"):
                    empty.append(f"{name} / variable {var}: {variables(d)[var]['definition']}")

    print(f"{len(all_queries)} panel queries evaluated")
    problems = [f"invalid: {p}" for p in invalid] + [f"no series: {p}" for p in empty]
    # a quantile or ratio that is NaN everywhere draws nothing: the load did not reach that panel
    problems += [f"NaN only: {p}" for p in nan_only]
    assert not problems, f"{len(problems)} problems in {len(all_queries)} panel queries:\n" + "\n".join(problems)
