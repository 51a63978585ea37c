"""Shared helpers for the simulator tests (a plain module, not a conftest, so its name cannot clash)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from loadtests.sim.fleet import SimFleet, SimFleetConfig

TINY = "tiny-cpu"


def tiny_fleet(**changes: object) -> SimFleet:
    """One fast ``tiny-cpu`` server (block_size 32) unless told otherwise."""
    values: dict[str, object] = {"backends": 1, "profile": TINY, "time_scale": 0.05, **changes}
    return SimFleet(SimFleetConfig(**values))  # type: ignore[arg-type]


def words(seed: str, n_chars: int) -> str:
    """Distinct-from-the-first-byte text of about ``n_chars`` characters (``n_chars / 4`` tokens)."""
    base = f"[{seed}] "
    body = " ".join(f"{seed}-{i}" for i in range(n_chars))
    return (base + body)[:n_chars]


async def scrape(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """``/metrics`` as ``{sample name + sorted labels (minus engine/model): value}``."""
    r = await client.get(url + "/metrics")
    r.raise_for_status()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            extra = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in ("engine", "model_name"))
            out[s.name + (f"{{{extra}}}" if extra else "")] = s.value
    return out


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``predicate`` every 10 ms; TimeoutError after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - engine state has no event to wait on; tests poll
            await asyncio.sleep(0.01)
