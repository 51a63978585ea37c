"""Build a redis-py asyncio client for plain Redis, TLS, ACL users, Sentinel or Cluster."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel


def redis_client(
    url: str,
    *,
    password: str | None = None,
    sentinels: list[str] | None = None,
    sentinel_service: str = "mymaster",
    sentinel_password: str | None = None,
    cluster: bool = False,
    timeout_s: float = 0.25,
) -> Any:
    """A client whose every socket operation is bounded: a slow Redis must never stall a request."""
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if password is not None:
        options["password"] = password
    if sentinels:
        parsed = urlparse(url)
        hosts = [_host_port(s) for s in sentinels]
        master_options = dict(options)
        if parsed.username:
            master_options["username"] = parsed.username
        if parsed.password and password is None:
            master_options["password"] = parsed.password
        if parsed.scheme == "rediss":
            master_options["ssl"] = True
        db = parsed.path.strip("/")
        if db:
            master_options["db"] = int(db)
        sentinel_kwargs = {"password": sentinel_password} if sentinel_password else None
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=sentinel_kwargs, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return sentinel.master_for(sentinel_service, redis_class=_SentinelMaster, **master_options)
    if password is not None:
        url = _without_password(url)  # redis-py lets the URL's password win over the keyword
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)


class _SentinelMaster(Redis):
    """The master's client; ``aclose()`` also closes its connections to the sentinels (else they leak)."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        pool: Any = self.connection_pool  # a SentinelConnectionPool
        for sentinel in pool.sentinel_manager.sentinels:
            await sentinel.aclose()


def _without_password(url: str) -> str:
    """The URL with its password (not its user name) removed: ``redis://user:pw@host`` -> ``redis://user@host``."""
    parsed = urlparse(url)
    if "@" not in parsed.netloc:
        return url
    userinfo, hostport = parsed.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return parsed._replace(netloc=f"{user}@{hostport}" if user else hostport).geturl()


def _host_port(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or a bare host (Sentinel's default port 26379)."""
    if address.endswith("]") or ":" not in address or (address.count(":") > 1 and "]" not in address):
        return address.strip("[]"), 26379
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)
