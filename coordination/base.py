"""The shared fleet state: one interface, implemented by the in-process store (here) and Redis (later).

The operations are shaped for a remote store with a budget of two round trips per request:

- ``pick_and_reserve``: the policy's choice and the in-flight increment happen as ONE step, so two
  callers racing for the least-loaded backend do not both take it blindly (the policy states its choice
  as a score the store evaluates, see ``coordination.scoring``);
- ``release``: gives the reservation back and records what was observed (TTFT, per-token latency) in
  the same step;
- a lease per replica: reservations are held under it, so a replica that dies loses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from coordination.scoring import Pick, PickRequest


class CoordinationError(Exception):
    """A store failed (timeout, connection, script error); callers fall back, never fail a request."""


@dataclass(slots=True)
class BackendLoad:
    """What the gateway fleet knows about one backend from its own traffic."""

    in_flight: int = 0
    ttft_ewma_s: float | None = None
    tpot_ewma_s: float | None = None
    """Moving average of time per output token after the first."""


@dataclass(slots=True)
class Reservation:
    backend_id: str
    token: int
    """Identifies this reservation within its replica's lease."""


@dataclass(slots=True)
class Observation:
    ttft_s: float | None = None
    tpot_s: float | None = None


class CoordinationStore(Protocol):
    replica_id: str
    degraded: bool
    """True while a shared store is unreachable and this replica decides alone."""

    async def start(self) -> None:
        """Register this replica's lease."""

    async def close(self) -> None:
        """Give up the lease and every reservation under it."""

    async def heartbeat(self) -> None:
        """Keep the lease alive and refresh this replica's view of the fleet; called every lease_ttl / 3,
        and more often by admission while requests wait for capacity."""

    async def pick_and_reserve(self, request: PickRequest) -> tuple[Pick, Reservation]:
        """Evaluate ``request`` (see ``coordination.scoring``) on the current state and reserve the winner.

        Safe to cancel (a client leaving cancels it): a cancelled pick holds nothing once the store has
        repaired itself - at once in process, at the next heartbeat for Redis (which rewrites this replica's
        counts from its ledger) - so the request path needs no shield task per request."""

    async def release(self, reservation: Reservation, observation: Observation) -> None: ...

    def cached_loads(self, backend_ids: Sequence[str]) -> dict[str, BackendLoad]:
        """The latest load view this replica holds, without I/O (policies plan on it)."""

    def live_members(self) -> list[str]:
        """Replica ids holding a lease (as of the last heartbeat); empty when the store is not shared."""

    async def exchange(self, table: str, mine: Mapping[str, bytes]) -> dict[str, bytes]:
        """Publish records into a shared table (``backends``: scrapes; ``queued``: admission queue depths)
        and return every replica's latest records in it, in one round trip."""
