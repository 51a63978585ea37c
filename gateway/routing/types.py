"""What routing reads: a request's features and the candidates, as plain frozen values.

Routing plugins are pure functions of these (no I/O, no clock, no globals), so they can be tested on
crafted snapshots. Plain dataclasses, never mutated by convention: they are made per request and per
candidate, and a frozen constructor costs about 4x (docs/proxy-path-costs.md, section 5).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RequestFeatures:
    """The parts of a request that routing reads, decoded once from the body."""

    model: str
    stream: bool
    system_prompt: str | None = None
    """The leading system/developer message(s), the reference design's affinity key."""
    prompt_chars: int = 0
    prompt_text: str = ""
    """The prompt in canonical, role-aware form (what prefix block hashes are cut from)."""
    cache_salt: str | None = None
    """vLLM's ``cache_salt``: requests with different salts never share cached blocks."""
    prefix_blocks: tuple[str, ...] = ()
    """Chained prefix block hashes, filled in when a scorer reads them (see ``routing.prefix``)."""
    session_id: str | None = None
    priority: str = "normal"
    """high, normal or low: from the x-priority header or the configured default."""


@dataclass(slots=True)
class Candidate:
    """One healthy backend that serves the requested model, as the fleet currently knows it."""

    id: str
    weight: float = 1.0
    waiting: float = 0.0
    """vLLM's num_requests_waiting from the last scrape."""
    running: float = 0.0
    kv_usage: float = 0.0
    in_flight: int = 0
    """Requests the gateway fleet has open on this backend right now (all replicas)."""
    ttft_ewma_s: float | None = None
    """Moving average of the time to first token the gateway observed; None before the first one."""
    kv_capacity_tokens: int | None = None
    """block_size x num_gpu_blocks from vLLM's cache_config_info."""

    @property
    def queue_depth(self) -> float:
        return self.waiting

    @property
    def load(self) -> float:
        """Queued at vLLM plus open from the gateway fleet: the load the bounded-load guard compares."""
        return self.waiting + self.in_flight
