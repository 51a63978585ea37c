"""The Redis store: every replica's reservations, latencies and prefix index in one shared place.

Two round trips per proxied request: ``pick_and_reserve`` (one Lua script: reap dead leases, read the
candidates' fleet-wide in-flight counts and prefix matches, evaluate the policy's score, reserve, learn
the prefix) and ``release`` (one script: give the reservation back, fold TTFT and time per token into the
moving averages). Both answers refresh this replica's cached view, which policies plan on.

Failure never fails a request: any Redis error or timeout turns the store *degraded*. Picks then run on
the last known fleet view plus this replica's own changes, and the open reservations stay in a local
ledger. A background task retries with backoff; on success it restores this replica's held counts in
Redis from the ledger (absolute values, so nothing is counted twice) and leaves degraded mode. The same
restore runs whenever Redis reports that this replica's lease had lapsed (its reservations were reaped).

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
import logging
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
from coordination.scoring import OverCapacity, Pick, PickRequest, evaluate

log = logging.getLogger(__name__)
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
        backoff_max_s: float = 5.0,
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
        self._backoff_max_s = backoff_max_s
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
        self.members: list[str] = []
        self.degraded = False
        self._recovery: asyncio.Task[None] | None = None
        self._restoring: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.heartbeat_or_raise()
        except CoordinationError as e:
            log.warning("redis unavailable at start, serving degraded: %s", e)
            self._degrade()

    async def close(self) -> None:
        if self._recovery is not None:
            self._recovery.cancel()
        try:
            keys = [self.keys.replicas, self.keys.inflight, self.keys.held]
            await self._call("leave", self._leave(keys=keys, args=[self.replica_id]))
        except CoordinationError:
            pass  # the lease runs out by itself
        self._open.clear()
        if self._owns_client:
            await self._client.aclose()

    async def heartbeat(self) -> None:
        if self.degraded:
            return  # the recovery task owns the connection until it is back
        try:
            await self.heartbeat_or_raise()
        except CoordinationError as e:
            log.warning("redis heartbeat failed: %s", e)
            self._degrade()

    async def heartbeat_or_raise(self) -> None:
        keys = [self.keys.replicas, self.keys.inflight, self.keys.held, self.keys.ewma]
        lapsed, members, inflight, ewma = await self._call(
            "heartbeat", self._heartbeat(keys=keys, args=[self.replica_id, self._ttl_ms])
        )
        self.members = sorted(m.decode() if isinstance(m, bytes) else m for m in members)
        counts = {_text(inflight[i]): int(inflight[i + 1]) for i in range(0, len(inflight), 2)}
        averages = {_text(ewma[i]): float(ewma[i + 1]) for i in range(0, len(ewma), 2)}
        for backend in set(self._loads) | set(counts):
            self._loads[backend] = BackendLoad(
                counts.get(backend, 0), averages.get(f"{backend}|ttft"), averages.get(f"{backend}|tpot")
            )
        if lapsed:
            await self._restore_or_raise()

    # -- the hot path --------------------------------------------------------------------------

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        if not self.degraded:
            try:
                pick = await self._pick_remote(request)
                return pick, self._hold(pick.backend_id)
            except OverCapacity:
                raise
            except CoordinationError as e:
                log.warning("redis pick failed, degraded: %s", e)
                self._degrade()
        in_flight = {line.backend_id: self._load(line.backend_id).in_flight for line in request.lines}
        pick = evaluate(request, in_flight, {})
        self._bump(pick.backend_id, +1)
        return pick, self._hold(pick.backend_id)

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
        if lapsed:
            self._spawn_restore()
        if int(index) == 0:
            raise OverCapacity(float(score))
        i = int(index) - 1
        return Pick(i, lines[i].backend_id, float(score), int(before), int(cached), bool(guarded))

    async def release(self, reservation: Reservation, observation: Observation) -> None:
        if self._open.pop(reservation.token, None) is None:
            return
        backend = reservation.backend_id
        if self.degraded:
            self._bump(backend, -1)
            return  # the restore after recovery sets Redis to the ledger
        keys = [self.keys.replicas, self.keys.inflight, self.keys.held, self.keys.ewma]
        args: list[str | int] = [self.replica_id, self._ttl_ms, backend, _opt(observation.ttft_s)]
        args += [_opt(observation.tpot_s), repr(self._alpha)]
        try:
            lapsed, left, ttft, tpot = await self._call("release", self._release(keys=keys, args=args))
        except CoordinationError as e:
            log.warning("redis release failed, degraded: %s", e)
            self._bump(backend, -1)
            self._degrade()
            return
        self._loads[backend] = BackendLoad(int(left), _num(ttft), _num(tpot))
        if lapsed:
            self._spawn_restore()

    def cached_loads(self, backend_ids: Sequence[str]) -> dict[str, BackendLoad]:
        return {b: self._load(b) for b in backend_ids}

    def live_members(self) -> list[str]:
        return [] if self.degraded else list(self.members)

    async def exchange(self, table: str, mine: Mapping[str, bytes]) -> dict[str, bytes]:
        """One round trip (a pipeline): HSET this replica's records, HGETALL everyone's."""
        if self.degraded:
            return dict(mine)
        key = self.keys.table(table)
        pipe = self._client.pipeline(transaction=False)
        if mine:
            pipe.hset(key, mapping=dict(mine))  # type: ignore[arg-type]  # redis-py's Mapping is invariant
        pipe.hgetall(key)
        try:
            replies = await self._call(f"exchange_{table}", pipe.execute())
        except CoordinationError as e:
            log.warning("redis backend state exchange failed, degraded: %s", e)
            self._degrade()
            return dict(mine)
        return {_text(k): v for k, v in replies[-1].items()}

    def open_reservations(self) -> Counter[str]:
        return Counter(self._open.values())

    # -- failure and recovery ------------------------------------------------------------------

    def _degrade(self) -> None:
        self.degraded = True
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        delay = 0.05
        while True:
            await asyncio.sleep(delay)
            try:
                await self._restore_or_raise()
                await self.heartbeat_or_raise()
            except CoordinationError as e:
                delay = min(delay * 2, self._backoff_max_s)
                log.debug("redis still unavailable (retry in %.2fs): %s", delay, e)
                continue
            self.degraded = False
            log.info("redis coordination recovered; reservations restored")
            return

    def _spawn_restore(self) -> None:
        if self._restoring is None or self._restoring.done():
            self._restoring = asyncio.ensure_future(self._restore_in_background())

    async def _restore_in_background(self) -> None:
        try:
            await self._restore_or_raise()
        except CoordinationError:
            self._degrade()

    async def _restore_or_raise(self) -> None:
        # Repeat until the ledger did not change during the call: each pass sets absolute counts.
        while True:
            held = self.open_reservations()
            backends = set(held) | set(self._loads)
            args: list[Any] = [self.replica_id, self._ttl_ms]
            for backend in sorted(backends):
                args += [backend, held.get(backend, 0)]
            keys = [self.keys.replicas, self.keys.inflight, self.keys.held]
            await self._call("restore", self._restore(keys=keys, args=args))
            if self.open_reservations() == held:
                return

    # -- helpers -------------------------------------------------------------------------------

    def _hold(self, backend_id: str) -> Reservation:
        token = next(self._tokens)
        self._open[token] = backend_id
        return Reservation(backend_id, token)

    def _load(self, backend_id: str) -> BackendLoad:
        return self._loads.get(backend_id) or BackendLoad()

    def _bump(self, backend_id: str, delta: int) -> None:
        old = self._load(backend_id)
        self._loads[backend_id] = BackendLoad(max(old.in_flight + delta, 0), old.ttft_ewma_s, old.tpot_ewma_s)

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call
        except (RedisError, RedisClusterException, OSError, TimeoutError) as e:  # the cluster's is no RedisError
            # the message, not repr(): redis-py 8's repr of its errors drops it (e.g. why a TLS handshake failed)
            raise CoordinationError(f"redis {operation}: {type(e).__name__}: {e}") from e
        finally:
            if self._observer is not None:
                self._observer(operation, time.perf_counter() - started)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
