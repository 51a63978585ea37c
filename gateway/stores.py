"""The coordination store a replica runs on, chosen by its config."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from coordination import CoordinationStore, InMemoryStore
from coordination.connect import redis_client
from coordination.failover import FailoverStore
from coordination.redis_store import RedisStore
from gateway.config import CoordinationConfig


def build_store(
    config: CoordinationConfig,
    *,
    observer: Callable[[str, float], None] | None,
    clock: Callable[[], float],
) -> CoordinationStore:
    """In process unless a Redis URL is configured; then Redis, with this replica's own state serving
    (degraded) while Redis is away. ``observer`` gets (operation, seconds) for every Redis call."""
    local = InMemoryStore(ewma_alpha=config.ewma_alpha, prefix_ttl_s=config.prefix_ttl_s, clock=clock)
    if config.redis_url is None:
        return local
    client = redis_client(
        config.redis_url,
        password=config.password,
        sentinels=config.sentinels,
        sentinel_service=config.sentinel_service,
        sentinel_password=config.sentinel_password,
        cluster=config.cluster,
        timeout_s=config.call_timeout_s,
    )
    shared = RedisStore(
        client,
        namespace=config.namespace,
        lease_ttl_s=config.lease_ttl_s,
        ewma_alpha=config.ewma_alpha,
        prefix_ttl_s=config.prefix_ttl_s,
        call_timeout_s=config.call_timeout_s,
        replica_id=f"{socket.gethostname()}-{os.getpid()}",
        observer=observer,
        owns_client=True,
    )
    local.replica_id = shared.replica_id
    return FailoverStore(shared, local, backoff_max_s=config.backoff_max_s)
