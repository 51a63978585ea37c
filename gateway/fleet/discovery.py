"""Where the backends come from: a static list, or a DNS name re-resolved periodically.

The DNS form is how a Kubernetes headless Service is used: each A/AAAA record is one vLLM pod.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from gateway.config import DnsDiscoveryConfig, FleetConfig
from gateway.fleet.backends import BackendSpec

Resolver = Callable[[str, int], Awaitable[list[str]]]


def static_backends(config: FleetConfig) -> list[BackendSpec]:
    return [BackendSpec(b.id, b.url.rstrip("/"), frozenset(b.models), b.weight) for b in config.backends]


async def resolve_addresses(name: str, port: int) -> list[str]:
    """The A and AAAA records of ``name``, through the event loop's non-blocking resolver."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def dns_backends(config: DnsDiscoveryConfig, addresses: list[str]) -> list[BackendSpec]:
    specs = []
    for address in addresses:
        host = f"[{address}]" if ":" in address else address
        specs.append(
            BackendSpec(
                id=f"{host}:{config.port}",
                url=f"{config.scheme}://{host}:{config.port}",
                models=frozenset(config.models),
            )
        )
    return specs


async def watch_dns(
    config: DnsDiscoveryConfig,
    on_change: Callable[[list[BackendSpec]], None],
    resolver: Resolver = resolve_addresses,
) -> None:
    """Re-resolve every ``refresh_s``; a failed lookup keeps the last known list (DNS blips happen)."""
    while True:
        try:
            addresses = await resolver(config.name, config.port)
        except OSError:
            addresses = None
        if addresses is not None:
            on_change(dns_backends(config, addresses))
        await asyncio.sleep(config.refresh_s)
