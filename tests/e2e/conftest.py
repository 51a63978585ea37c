from collections.abc import Iterator

import pytest

from tests.processes import SimServer, free_port, gateway, gateway_config, simulator


@pytest.fixture(scope="module")
def sim_pair() -> Iterator[list[SimServer]]:
    # time_scale 0.2: the simulated L4 runs 5x faster than real time, keeping tests short.
    with simulator("--backends", "2", "--time-scale", "0.2") as servers:
        yield servers


@pytest.fixture(scope="module")
def gateway_url(sim_pair: list[SimServer], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = gateway_config(sim_pair, free_port(), policy="round_robin")
    with gateway(config, tmp_path_factory.mktemp("gw")) as url:
        yield url
