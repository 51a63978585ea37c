"""The Redis store over every connection form the config offers, against real servers (no mocks), behind
the failover wrapper as the gateway runs it.

ACL users (URL credentials and the ``password`` override), TLS (``rediss://``, the CA and client certificate
given as URL query parameters), Sentinel (the master found by service name) and Redis Cluster (three
masters: every script's keys share the fleet's hash tag, so each lands on one slot). Each test starts its
own servers on 127.0.0.1 free ports and stops them by PID.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from coordination import InMemoryStore, Observation, PickRequest, ScoreLine
from coordination.connect import redis_client
from coordination.failover import FailoverStore
from coordination.redis_store import RedisStore
from tests.coordination.redis_topologies import (
    RedisProcess,
    cluster_ports,
    create_cluster,
    make_certificates,
    redis_cli_binary,
    redis_processes,
    start,
    tls_unsupported,
)
from tests.processes import free_port

pytestmark = [pytest.mark.redis, pytest.mark.timeout(30)]

BACKENDS = ("a", "b", "c")
LEAST = PickRequest(tuple(ScoreLine(b, 0.0, per_in_flight=1.0) for b in BACKENDS))
TIMEOUT_S = 2.0  # these tests are about topologies, not latency: a slow CI machine must not flake them


class Fleet:
    """Stores of one fleet, each over its own client from ``redis_client``; all closed at the end."""

    def __init__(self, connect: Callable[[], Any], namespace: str = "topo") -> None:
        self._connect = connect
        self.namespace = namespace
        self.stores: list[FailoverStore] = []
        self.clients: list[Any] = []

    def store(self, **options: Any) -> FailoverStore:
        client = self._connect()
        self.clients.append(client)
        shared = RedisStore(client, namespace=self.namespace, call_timeout_s=TIMEOUT_S, **options)
        store = FailoverStore(shared, InMemoryStore(replica_id=shared.replica_id))
        self.stores.append(store)
        return store

    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[RedisProcess]]:
    """The test's servers (append started ones): stopped by PID after the fleets are closed."""
    with redis_processes(tmp_path) as started:
        yield started


Fleets = Callable[[Callable[[], Any]], Fleet]


@pytest.fixture
async def fleets(servers: list[RedisProcess]) -> AsyncIterator[Fleets]:
    """Makes fleets (each its own namespace) from a client factory; closes them while the servers still run."""
    made: list[Fleet] = []

    def fleet(connect: Callable[[], Any]) -> Fleet:
        made.append(Fleet(connect, namespace=f"topo{len(made)}"))  # each its own fleet
        return made[-1]

    yield fleet
    for fleet_ in made:
        await fleet_.aclose()


async def exercise(fleet: Fleet) -> None:
    """The contract's core, over whatever connection the fleet's clients use."""
    a, b = fleet.store(), fleet.store()
    await a.start()
    await b.start()
    assert not a.degraded
    assert not b.degraded
    await a.heartbeat()
    assert a.live_members() == sorted([a.replica_id, b.replica_id])

    # concurrent picks from two replicas never double-book: the spread is exact
    async def one(store: FailoverStore) -> Any:
        return await store.pick_and_reserve(LEAST)

    # in concurrent waves of 12: over TLS every new pooled connection costs a fresh SSLContext in redis-py
    # (~45 ms of event-loop CPU loading the system CA store), so 60 at once would blow the call timeout
    held: list[Any] = []
    for _ in range(5):
        held += await asyncio.gather(*(one((a, b)[i % 2]) for i in range(12)))
    assert sorted(pick.backend_id for pick, _ in held) == sorted(BACKENDS * 20)
    assert not a.degraded
    assert not b.degraded

    # release (by whichever replica reserved) returns every count to zero
    for i, (_, reservation) in enumerate(held):
        await (a, b)[i % 2].release(reservation, Observation(ttft_s=0.5, tpot_s=0.01))
    pick, reservation = await b.pick_and_reserve(LEAST)
    assert pick.in_flight == 0
    await b.release(reservation, Observation())
    assert all(load.in_flight == 0 for load in b.cached_loads(BACKENDS).values())
    assert b.cached_loads(["a"])["a"].ttft_ewma_s == pytest.approx(0.5)

    # a prefix learned by one replica is used by the other
    affinity = PickRequest(tuple(ScoreLine(x, 1.0, per_cached_block=0.5) for x in BACKENDS), prefix_blocks=("h1", "h2"))
    first, r1 = await a.pick_and_reserve(affinity)
    second, r2 = await b.pick_and_reserve(affinity)
    assert first.cached_blocks == 0
    assert (second.backend_id, second.cached_blocks) == (first.backend_id, 2)
    await a.release(r1, Observation())
    await b.release(r2, Observation())

    # the per-fleet tables: one pipeline each, every replica sees every record
    assert await a.exchange("backends", {"a": b"scrape-a"}) == {"a": b"scrape-a"}
    assert await b.exchange("backends", {"b": b"scrape-b"}) == {"a": b"scrape-a", "b": b"scrape-b"}

    # a replica that stops heartbeating loses its reservations after its lease (reaped by anyone's call)
    dying = fleet.store(lease_ttl_s=0.3)
    await dying.start()
    for _ in range(3):
        await dying.pick_and_reserve(LEAST)
    await b.heartbeat()
    assert sum(load.in_flight for load in b.cached_loads(BACKENDS).values()) == 3
    assert len(b.live_members()) == 3
    await asyncio.sleep(0.4)
    await b.heartbeat()
    assert sum(load.in_flight for load in b.cached_loads(BACKENDS).values()) == 0
    assert b.live_members() == sorted([a.replica_id, b.replica_id])

    # leaving takes the replica out of the fleet at once
    await a.close()
    await b.heartbeat()
    assert b.live_members() == [b.replica_id]
    assert not any(store.degraded for store in (a, b))


# -- ACL users -----------------------------------------------------------------------------------------


async def test_acl_user_from_url_and_password_override(
    tmp_path: Path, servers: list[RedisProcess], fleets: Fleets, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    acl = ["requirepass admin-secret", "user gw on >secret ~* &* +@all"]
    start(servers, RedisProcess(tmp_path, "acl", port, acl))
    base = f"127.0.0.1:{port}/0"
    with redis.Redis(port=port, password="admin-secret", decode_responses=True) as admin:
        assert admin.acl_whoami() == "default"

    # credentials in the URL
    in_url = fleets(lambda: redis_client(f"redis://gw:secret@{base}", timeout_s=TIMEOUT_S))
    await exercise(in_url)
    assert await in_url.clients[0].acl_whoami() == "gw"

    # the user in the URL, the password from the override; the override wins over a password in the URL
    for url in (f"redis://gw@{base}", f"redis://gw:stale@{base}"):
        override = fleets(functools.partial(redis_client, url, password="secret", timeout_s=TIMEOUT_S))
        await exercise(override)
        assert await override.clients[0].acl_whoami() == "gw"

    # a wrong password: no exception out of start(); the store serves degraded and logs why
    store = fleets(lambda: redis_client(f"redis://gw:wrong@{base}", timeout_s=TIMEOUT_S)).store()
    with caplog.at_level(logging.WARNING, logger="coordination.failover"):
        await store.start()
    assert store.degraded
    assert "redis start failed, serving degraded" in caplog.text
    assert "AuthenticationError: invalid username-password pair" in caplog.text
    pick, _ = await store.pick_and_reserve(LEAST)  # still routes, on its own view
    assert pick.backend_id in BACKENDS


# -- TLS -----------------------------------------------------------------------------------------------


async def test_tls_with_the_ca_and_client_certificate_in_the_url(
    tmp_path: Path, servers: list[RedisProcess], fleets: Fleets, caplog: pytest.LogCaptureFixture
) -> None:
    reason = tls_unsupported(tmp_path)
    if reason:
        pytest.skip(reason)
    certs = make_certificates(tmp_path)
    tls = [
        "port 0",
        f'tls-cert-file "{certs["server.crt"]}"',
        f'tls-key-file "{certs["server.key"]}"',
        f'tls-ca-cert-file "{certs["ca.crt"]}"',
    ]
    one_way, mutual = free_port(), free_port()
    start(servers, RedisProcess(tmp_path, "tls", one_way, [*tls, f"tls-port {one_way}", "tls-auth-clients no"]))
    start(servers, RedisProcess(tmp_path, "mtls", mutual, [*tls, f"tls-port {mutual}", "tls-auth-clients yes"]))

    # the client trusts the test CA through a URL query parameter (redis-py passes ssl_* names through)
    ca = f"ssl_ca_certs={certs['ca.crt']}"
    await exercise(fleets(lambda: redis_client(f"rediss://127.0.0.1:{one_way}/0?{ca}", timeout_s=TIMEOUT_S)))

    # mutual TLS: the client certificate and key in the URL as well
    client_cert = f"ssl_certfile={certs['client.crt']}&ssl_keyfile={certs['client.key']}"
    mtls_url = f"rediss://127.0.0.1:{mutual}/0?{ca}&{client_cert}"
    await exercise(fleets(lambda: redis_client(mtls_url, timeout_s=TIMEOUT_S)))

    # the certificate is really verified: without the CA (system trust only) the store goes degraded
    store = fleets(lambda: redis_client(f"rediss://127.0.0.1:{one_way}/0", timeout_s=TIMEOUT_S)).store()
    with caplog.at_level(logging.WARNING, logger="coordination.failover"):
        await store.start()
    assert store.degraded
    assert "certificate verify failed" in caplog.text


# -- Sentinel ------------------------------------------------------------------------------------------


async def test_sentinel_finds_the_master_by_service_name(
    tmp_path: Path, servers: list[RedisProcess], fleets: Fleets
) -> None:
    master_port, sentinel_port = free_port(), free_port()
    start(servers, RedisProcess(tmp_path, "master", master_port, ["requirepass master-secret"]))
    sentinel_config = [
        f"sentinel monitor mymaster 127.0.0.1 {master_port} 1",
        "sentinel auth-pass mymaster master-secret",
        "sentinel down-after-milliseconds mymaster 5000",
    ]
    start(servers, RedisProcess(tmp_path, "sentinel", sentinel_port, sentinel_config, sentinel=True))
    with redis.Redis(port=sentinel_port, decode_responses=True) as sentinel:
        assert sentinel.sentinel_get_master_addr_by_name("mymaster") == ("127.0.0.1", master_port)

    # the URL's host is not used with sentinels: only its credentials and db
    def connect() -> Any:
        return redis_client(
            "redis://:master-secret@ignored.invalid:1/3",
            sentinels=[f"127.0.0.1:{sentinel_port}"],
            sentinel_service="mymaster",
            timeout_s=TIMEOUT_S,
        )

    fleet = fleets(connect)
    await exercise(fleet)
    with redis.Redis(port=master_port, password="master-secret", db=3) as master:
        assert master.exists(f"{{gw:{fleet.namespace}}}:backends")  # the store wrote to the master's db 3

    # the password override reaches the master through the sentinel-managed pool as well
    def override() -> Any:
        return redis_client(
            "redis://ignored.invalid/3",
            password="master-secret",
            sentinels=[f"127.0.0.1:{sentinel_port}"],
            sentinel_service="mymaster",
            timeout_s=TIMEOUT_S,
        )

    await exercise(fleets(override))


# -- Cluster -------------------------------------------------------------------------------------------


async def test_cluster_runs_every_script_on_the_fleets_slot(
    tmp_path: Path, servers: list[RedisProcess], fleets: Fleets, caplog: pytest.LogCaptureFixture
) -> None:
    if redis_cli_binary() is None:
        pytest.skip("redis-cli is not installed (Debian: apt-get install redis-tools)")
    ports = cluster_ports(3)
    for port in ports:
        node = ["cluster-enabled yes", f'cluster-config-file "{tmp_path}/nodes-{port}.conf"']
        start(servers, RedisProcess(tmp_path, f"node-{port}", port, node))
    create_cluster(servers)

    fleet = fleets(lambda: redis_client(f"redis://127.0.0.1:{ports[0]}", cluster=True, timeout_s=TIMEOUT_S))
    await exercise(fleet)

    # every key the fleet wrote is on one node, in one slot: the hash tag's
    tag = f"{{gw:{fleet.namespace}}}"
    found: dict[int, set[str]] = {}
    for port in ports:
        with redis.Redis(port=port, decode_responses=True) as node:
            keys = set(node.scan_iter(match="*"))
            if keys:
                found[port] = keys
                assert {node.cluster("KEYSLOT", key) for key in keys} == {node.cluster("KEYSLOT", tag)}
    assert len(found) == 1
    assert set(*found.values()) >= {f"{tag}:{name}" for name in ("replicas", "ewma", "backends", "prefix:a")}

    # the cluster gone: a store that cannot even discover it serves degraded, no exception escapes
    for server in servers:
        server.stop()
    store = fleets(lambda: redis_client(f"redis://127.0.0.1:{ports[0]}", cluster=True, timeout_s=TIMEOUT_S)).store()
    with caplog.at_level(logging.WARNING, logger="coordination.failover"):
        await store.start()
        pick, _ = await store.pick_and_reserve(LEAST)
        assert await store.exchange("backends", {"a": b"mine"}) == {"a": b"mine"}
    assert store.degraded
    assert pick.backend_id in BACKENDS
    assert "RedisClusterException" in caplog.text
