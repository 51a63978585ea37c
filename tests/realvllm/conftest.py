"""Session fixtures for the ``realvllm`` tests: two real vLLM CPU servers, started once (~35 s), and gateways.

A missing install fails these tests (they were asked for with ``-m realvllm``); only a machine where the
install is impossible (not Linux x86_64, no python3.11, no torch 2.13.0+cpu wheel) skips them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from gateway.config import AdmissionConfig, CoordinationConfig
from loadtests.realvllm.servers import VllmServer, external_servers, missing_install, vllm_servers
from tests.processes import SimServer, free_port, gateway, gateway_config


@pytest.fixture(scope="session")
def vllm_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[VllmServer]]:
    """Two real vLLM servers, pinned to cores 0 and 1; their logs are in the session's tmp dir.

    ``REALVLLM_URLS=http://a,http://b`` uses servers already running instead (see ``external_servers``).
    """
    if urls := os.environ.get("REALVLLM_URLS"):
        yield external_servers(urls)
        return
    missing = missing_install()
    if missing is not None:
        impossible, reason = missing
        if impossible:
            pytest.skip(reason)
        pytest.fail(reason)
    with vllm_servers(2, tmp_path_factory.mktemp("vllm-logs")) as servers:
        yield servers


def as_backends(servers: list[VllmServer]) -> list[SimServer]:
    """The (id, url, model) triples ``tests.processes.gateway_config`` makes the fleet's backends of."""
    return [SimServer(s.id, s.url, s.model) for s in servers]


GatewayFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="session")
def start_gateway(vllm_pair: list[VllmServer], tmp_path_factory: pytest.TempPathFactory) -> GatewayFactory:
    """``with start_gateway(policy="prefix") as url:`` a fresh gateway (empty prefix index) over the pair;
    ``coordination=``/``admission=`` (structs from ``gateway.config``) set those sections."""

    def start(
        policy: str | None = None,
        *,
        coordination: CoordinationConfig | None = None,
        admission: AdmissionConfig | None = None,
    ) -> AbstractContextManager[str]:
        config = gateway_config(
            as_backends(vllm_pair), free_port(), policy=policy, coordination=coordination, admission=admission
        )
        tmp: Path = tmp_path_factory.mktemp("gw")
        return gateway(config, tmp)

    return start


@pytest.fixture(scope="module")
def gateway_url(start_gateway: GatewayFactory) -> Iterator[str]:
    """A gateway with the default policy, shared by a module's tests."""
    with start_gateway() as url:
        yield url
