"""Several granian workers in one replica: /metrics reports the replica's totals, whichever worker answers."""

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import SimServer, free_port, gateway, gateway_config

pytestmark = pytest.mark.e2e

N = 40


def requests_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "gateway_requests_total" and s.labels.get("status") == "200"
    )


def test_two_workers_report_the_replica_totals(sim_pair: list[SimServer], tmp_path: Path) -> None:
    config = gateway_config(sim_pair, free_port(), policy="round_robin", workers=2)
    with gateway(config, tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}) as url:
        body = {"model": sim_pair[0].model, "max_tokens": 1, "messages": [{"role": "user", "content": "count me"}]}
        for _ in range(N):  # a new connection each time: the workers share them out
            assert httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).status_code == 200
        # every scrape, whichever worker serves it, sees all N
        assert [requests_total(url) for _ in range(8)] == [N] * 8
