"""The Redis store: every replica's reservations, latencies and prefix index in one shared place.

Two round trips per proxied request: ``pick_and_reserve`` (one Lua script: reap dead leases, read the
candidates' fleet-wide in-flight counts and prefix matches, evaluate the policy's score, reserve, learn
the prefix) and ``release`` (one script: give the reservation back, fold TTFT and time per token into the
moving averages). Both answers refresh this replica's cached view, which policies plan on.

This store is plain: every Redis error or timeout is raised as ``CoordinationError``. Serving through an
outage is ``coordination.failover.FailoverStore``'s job. The store keeps a ledger of this replica's open
reservations; when Redis reports that the lease had lapsed (its reservations were reaped), the next
heartbeat writes the ledger back (absolute values, so nothing is counted twice).

Keys (one hash tag per fleet, so every script's keys live on one Redis Cluster slot):
``{gw:NS}:replicas`` ZSET replica -> lease expiry (ms, Redis clock), ``{gw:NS}:inflight`` HASH backend ->
open requests, ``{gw:NS}:held`` HASH "replica|backend" -> open requests of that replica, ``{gw:NS}:ewma``
HASH "backend|ttft" / "backend|tpot" -> seconds, ``{gw:NS}:backends`` HASH backend -> the last scrape of
its vLLM /metrics (published by the replica that polls it), ``{gw:NS}:queued`` HASH replica -> its
admission queue depths, ``{gw:NS}:prefix:BACKEND`` ZSET block hash ->
last use.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisClusterException, RedisError

from coordination.base import BackendLoad, CoordinationError, Observation, Reservation
from coordination.scoring import OverCapacity, Pick, PickRequest

T = TypeVar("T")

Observer = Callable[[str, float], None]
"""Called with (operation, seconds) after every Redis call: the round-trip latency metric hooks in here."""


def _lua(name: str) -> str:
    return resources.files("coordination.lua").joinpath(f"{name}.lua").read_text()


@dataclass(frozen=True, slots=True)
class Keys:
    replicas: str
    inflight: str
    held: str
    ewma: str
    tag: str
    prefix_prefix: str

    @classmethod
    def for_namespace(cls, namespace: str) -> Keys:
        if not namespace:
            raise ValueError("a key namespace is required")
        tag = f"{{gw:{namespace}}}"
        return cls(f"{tag}:replicas", f"{tag}:inflight", f"{tag}:held", f"{tag}:ewma", tag, f"{tag}:prefix:")

    def prefix(self, backend_id: str) -> str:
        return self.prefix_prefix + backend_id

    def table(self, name: str) -> str:
        return f"{self.tag}:{name}"


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _num(raw: Any) -> float | None:
    if raw is None or raw in (b"", ""):
        return None
    return float(raw)


class RedisStore:
    def __init__(
        self,
        client: Redis,
        *,
        namespace: str,
        lease_ttl_s: float = 10.0,
        ewma_alpha: float = 0.2,
        prefix_ttl_s: float = 600.0,
        call_timeout_s: float = 0.25,
        replica_id: str | None = None,
        observer: Observer | None = None,
        owns_client: bool = False,
    ) -> None:
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.keys = Keys.for_namespace(namespace)
        self._client = client
        self._owns_client = owns_client
        self._ttl_ms = int(lease_ttl_s * 1000)
        self._alpha = ewma_alpha
        self._prefix_ttl_ms = int(prefix_ttl_s * 1000)
        self._timeout_s = call_timeout_s
        self._observer = observer
        common = _lua("reap") + "\n"
        self._pick: AsyncScript = client.register_script(common + _lua("pick_and_reserve"))
        self._release: AsyncScript = client.register_script(common + _lua("release"))
        self._heartbeat: AsyncScript = client.register_script(common + _lua("heartbeat"))
        self._restore: AsyncScript = client.register_script(common + _lua("restore"))
        self._leave: AsyncScript = client.register_script(common + _lua("leave"))
        self._loads: dict[str, BackendLoad] = {}
        self._open: dict[int, str] = {}
        self._tokens = itertools.count(1)
        self._lapsed = False
        self.members: list[str] = []
        self.degraded = False
        """Always False: this store raises instead (see ``FailoverStore``)."""

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.heartbeat()

    async def close(self) -> None:
        """Leave the fleet (raises ``CoordinationError`` if Redis is away; the lease then runs out)."""
        self._open.clear()
        try:
            keys = [self.keys.replicas, self.keys.inflight, self.keys.held]
            await self._call("leave", self._leave(keys=keys, args=[self.replica_id]))
        finally:
            if self._owns_client:
                await self._client.aclose()

    async def heartbeat(self) -> None:
        keys = [self.keys.replicas, self.keys.inflight, self.keys.held, self.keys.ewma]
        lapsed, members, inflight, ewma = await self._call(
            "heartbeat", self._heartbeat(keys=keys, args=[self.replica_id, self._ttl_ms])
        )
        self.members = sorted(_text(m) for m in members)
        counts = {_text(inflight[i]): int(inflight[i + 1]) for i in range(0, len(inflight), 2)}
        averages = {_text(ewma[i]): float(ewma[i + 1]) for i in range(0, len(ewma), 2)}
        for backend in set(self._loads) | set(counts):
            self._loads[backend] = BackendLoad(
                counts.get(backend, 0), averages.get(f"{backend}|ttft"), averages.get(f"{backend}|tpot")
            )
        self._lapsed = self._lapsed or bool(lapsed)
        if self._lapsed:
            await self._restore_ledger()

    # -- the hot path --------------------------------------------------------------------------

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        pick = await self._pick_remote(request)
        return pick, self.adopt(pick.backend_id)

    async def _pick_remote(self, request: PickRequest) -> Pick:
        lines = request.lines
        blocks = request.prefix_blocks
        keys = [self.keys.replicas, self.keys.inflight, self.keys.held, self.keys.ewma]
        if blocks:
            keys += [self.keys.prefix(line.backend_id) for line in lines]
        args: list[Any] = [
            self.replica_id,
            self._ttl_ms,
            len(lines),
            _opt(request.guard_eps),
            len(blocks),
            self._prefix_ttl_ms,
            repr(request.guard_slack),
            _opt(request.admit_max_load),
        ]
        outside = request.outside_load or (0.0,) * len(lines)
        for i, line in enumerate(lines):
            args += [line.backend_id, repr(line.base), repr(line.per_in_flight), repr(line.per_cached_block)]
            args += [repr(line.queue), request.prefix_cap(i), repr(float(outside[i]))]
        args += blocks
        reply = await self._call("pick_and_reserve", self._pick(keys=keys, args=args))
        index, score, before, cached, guarded, lapsed = reply[:6]
        n = len(lines)
        for i, line in enumerate(lines):
            old = self._load(line.backend_id)
            self._loads[line.backend_id] = BackendLoad(int(reply[6 + i]), _num(reply[6 + n + i]), old.tpot_ewma_s)
        self._lapsed = self._lapsed or bool(lapsed)  # the next heartbeat restores the ledger
        if int(index) == 0:
            raise OverCapacity(float(score))
        i = int(index) - 1
        return Pick(i, lines[i].backend_id, float(score), int(before), int(cached), bool(guarded))

    async def release(self, reservation: Reservation, observation: Observation) -> None:
        """Give ``reservation`` back. It leaves the ledger first: if Redis fails here, a later ``restore``
        writes the right count anyway."""
        if self._open.pop(reservation.token, None) is None:
            return
        backend = reservation.backend_id
        keys = [self.keys.replicas, self.keys.inflight, self.keys.held, self.keys.ewma]
        args: list[str | int] = [self.replica_id, self._ttl_ms, backend, _opt(observation.ttft_s)]
        args += [_opt(observation.tpot_s), repr(self._alpha)]
        lapsed, left, ttft, tpot = await self._call("release", self._release(keys=keys, args=args))
        self._loads[backend] = BackendLoad(int(left), _num(ttft), _num(tpot))
        self._lapsed = self._lapsed or bool(lapsed)

    def cached_loads(self, backend_ids: Sequence[str]) -> dict[str, BackendLoad]:
        return {b: self._load(b) for b in backend_ids}

    def live_members(self) -> list[str]:
        return list(self.members)

    async def exchange(self, table: str, mine: Mapping[str, bytes]) -> dict[str, bytes]:
        """One round trip (a pipeline): HSET this replica's records, HGETALL everyone's."""
        key = self.keys.table(table)
        pipe = self._client.pipeline(transaction=False)
        if mine:
            pipe.hset(key, mapping=dict(mine))  # type: ignore[arg-type]  # redis-py's Mapping is invariant
        pipe.hgetall(key)
        replies = await self._call(f"exchange_{table}", pipe.execute())
        return {_text(k): v for k, v in replies[-1].items()}

    # -- the ledger ----------------------------------------------------------------------------

    def open_reservations(self) -> Counter[str]:
        """This replica's open reservations in Redis, per backend, as the ledger has them."""
        return Counter(self._open.values())

    def adopt(self, backend_id: str) -> Reservation:
        """Enter a reservation in the ledger (no I/O): Redis counts it after a pick, or after ``restore``."""
        token = next(self._tokens)
        self._open[token] = backend_id
        return Reservation(backend_id, token)

    def forget(self, reservation: Reservation) -> None:
        """Drop a reservation from the ledger without telling Redis (it is away); ``restore`` fixes Redis."""
        self._open.pop(reservation.token, None)

    async def restore(self, held: Mapping[str, int]) -> None:
        """Set this replica's counts in Redis to ``held`` (absolute values; backends it knew but are absent
        from ``held`` go to zero) and renew the lease."""
        args: list[Any] = [self.replica_id, self._ttl_ms]
        for backend in sorted(set(held) | set(self._loads)):
            args += [backend, held.get(backend, 0)]
        keys = [self.keys.replicas, self.keys.inflight, self.keys.held]
        await self._call("restore", self._restore(keys=keys, args=args))
        self._lapsed = False

    async def _restore_ledger(self) -> None:
        # Repeat until the ledger did not change during the call: each pass sets absolute counts.
        while True:
            held = self.open_reservations()
            await self.restore(held)
            if self.open_reservations() == held:
                return

    # -- helpers -------------------------------------------------------------------------------

    def _load(self, backend_id: str) -> BackendLoad:
        return self._loads.get(backend_id) or BackendLoad()

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call
        except asyncio.CancelledError:
            # Cut off half-way (the client left): Redis may have run the script. The next heartbeat writes this
            # replica's counts back from the ledger, so a reservation nobody holds does not outlive it.
            self._lapsed = True
            raise
        except (RedisError, RedisClusterException, OSError, TimeoutError) as e:  # the cluster's is no RedisError
            # the message, not repr(): redis-py 8's repr of its errors drops it (e.g. why a TLS handshake failed)
            raise CoordinationError(f"redis {operation}: {type(e).__name__}: {e}") from e
        finally:
            if self._observer is not None:
                self._observer(operation, time.perf_counter() - started)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
