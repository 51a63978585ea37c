"""Counters read from the backends' and the gateways' ``/metrics`` before and after a phase.

Backends: ``vllm:prefix_cache_hits_total`` / ``vllm:prefix_cache_queries_total`` (through the gateway's own
``parse_vllm_metrics``), plus preemptions and generated tokens. Gateways: routing decisions by reason.
Both are Prometheus text parsed with prometheus-client's parser; a failed scrape is reported, not fatal.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from gateway.fleet.vllm_metrics import MetricsParseError, parse_vllm_metrics

SCRAPE_TIMEOUT_S = 5.0


@dataclass(slots=True)
class BackendCounters:
    prefix_queries: float = 0.0
    prefix_hits: float = 0.0
    preemptions: float = 0.0
    generation_tokens: float = 0.0
    failed: int = 0
    """Backends whose scrape failed (their counters are missing from the sums)."""

    def minus(self, before: BackendCounters) -> BackendCounters:
        return BackendCounters(
            self.prefix_queries - before.prefix_queries,
            self.prefix_hits - before.prefix_hits,
            self.preemptions - before.preemptions,
            self.generation_tokens - before.generation_tokens,
            max(self.failed, before.failed),
        )

    @property
    def hit_rate(self) -> float | None:
        return self.prefix_hits / self.prefix_queries if self.prefix_queries > 0 else None


@dataclass(slots=True)
class GatewayCounters:
    reasons: Counter[str] = field(default_factory=Counter)
    failed: int = 0

    def minus(self, before: GatewayCounters) -> GatewayCounters:
        diff = Counter(self.reasons)
        diff.subtract(before.reasons)
        return GatewayCounters(Counter({k: v for k, v in diff.items() if v > 0}), max(self.failed, before.failed))


def _sum_samples(text: str, names: set[str]) -> dict[str, float]:
    sums = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in sums:
                sums[sample.name] += sample.value
    return sums


def parse_backend(text: str) -> BackendCounters:
    stats = parse_vllm_metrics(text)
    extra = _sum_samples(text, {"vllm:num_preemptions_total", "vllm:generation_tokens_total"})
    return BackendCounters(
        prefix_queries=stats.prefix_queries_total,
        prefix_hits=stats.prefix_hits_total,
        preemptions=extra["vllm:num_preemptions_total"],
        generation_tokens=extra["vllm:generation_tokens_total"],
    )


def parse_gateway(text: str) -> Counter[str]:
    reasons: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_routing_decisions_total":
                reasons[sample.labels.get("reason", "?")] += int(sample.value)
    return reasons


async def _get(session: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with session.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)) as r:
            return await r.text() if r.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


async def scrape_backends(session: aiohttp.ClientSession, urls: list[str]) -> BackendCounters:
    total = BackendCounters()
    for text in await asyncio.gather(*(_get(session, u) for u in urls)):
        try:
            if text is None:
                raise MetricsParseError("no answer")
            one = parse_backend(text)
        except (MetricsParseError, ValueError):
            total.failed += 1
            continue
        total.prefix_queries += one.prefix_queries
        total.prefix_hits += one.prefix_hits
        total.preemptions += one.preemptions
        total.generation_tokens += one.generation_tokens
    return total


async def scrape_gateways(session: aiohttp.ClientSession, urls: list[str]) -> GatewayCounters:
    total = GatewayCounters()
    for text in await asyncio.gather(*(_get(session, u) for u in urls)):
        if text is None:
            total.failed += 1
            continue
        try:
            total.reasons.update(parse_gateway(text))
        except ValueError:
            total.failed += 1
    return total
