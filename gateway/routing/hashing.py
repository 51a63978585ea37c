"""Stable hashes for routing: every replica must compute the same value (Python's ``hash()`` is salted)."""

from __future__ import annotations

import hashlib
import math


def stable_hash64(data: str | bytes) -> int:
    if isinstance(data, str):
        data = data.encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def rendezvous_order(key: str, members: list[tuple[str, float]]) -> list[str]:
    """Weighted rendezvous (highest random weight) hashing: members ordered by preference for ``key``.

    Score = -weight / ln(u) with u uniform in (0, 1) from hash(key, member): the standard weighted HRW,
    so a member holds a share of keys proportional to its weight, and removing one member moves only
    the keys it held.
    """

    def score(member: str, weight: float) -> float:
        u = (stable_hash64(f"{key}\x00{member}") + 1) / (2**64 + 1)
        return -weight / math.log(u)

    return [m for m, _ in sorted(members, key=lambda mw: score(*mw), reverse=True)]
