"""Deterministic workloads whose prefix-cache behaviour is known, and the counters read back from ``/metrics``.

Why token ids: the simulator's tokenizer (4 UTF-8 bytes per token) is not the tiny model's BPE, so the same
text is a different token sequence on each, cut into different blocks. A completions ``prompt`` given as a
list of token ids is used by both engines as is (vLLM and the simulator accept it), so the two see the same
tokens, the same 32-token blocks and the same block hashes up to the hash function: only then can their hit
counts be compared exactly. Ids start at 7 to keep clear of the tiny tokenizer's special tokens.

Chat workloads (``prefix_chat_workload``) are for the gateway: its prefix policy hashes the prompt's text,
so they use long shared system prompts (documents) made of words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.fleet.vllm_metrics import parse_vllm_metrics

FIRST_ID = 7
VOCAB = 2048
BLOCK = 32

_WORDS = (  # noqa: SIM905 (a word list reads best as text)
    "the of and to in is for that with as on by this be are from or it an at not which have all data file "
    "value return self name default list object type error path module function class string number time "
    "request server model cache block token prefix route backend fleet stream query result table index "
    "key update config system message user assistant thread process memory engine metric label policy"
).split()


def token_ids(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(FIRST_ID, VOCAB) for _ in range(n)]


@dataclass(frozen=True, slots=True)
class TokenRequest:
    prompt: list[int]
    max_tokens: int


def serial_token_sequence(seed: int, requests: int = 60, *, whole_blocks: bool = False) -> list[TokenRequest]:
    """A sequence mixing hits, misses, partial hits and LRU evictions on a 255-block cache.

    Six shared prefixes of 1-40 blocks (a few with a ragged end), each request one of them plus 0-100 own
    tokens, and every fifth request a 1,000-1,900-token one-off that pushes older blocks out. Over 60
    requests about 900 blocks are allocated, several times the cache: eviction order matters.

    ``whole_blocks``: pick each ``max_tokens`` (1-32) so that the tokens the engine computes (prompt +
    max_tokens - 1: the last sampled token is never fed back) fill whole blocks. Then no request leaves a
    partial, unhashed block behind, which vLLM 0.32 puts at the FRONT of its free queue (reused first,
    ``BlockPool.free_blocks``) while the simulator queues every freed block at the back.
    """
    rng = random.Random(seed)
    prefixes = [token_ids(rng, BLOCK * rng.randrange(1, 41) + rng.choice((0, 0, 7))) for _ in range(6)]
    out = []
    for i in range(requests):
        if i % 5 == 4:
            prompt = token_ids(rng, rng.randrange(1000, 1900))
        else:
            prompt = rng.choice(prefixes) + token_ids(rng, rng.randrange(0, 101))
        max_tokens = rng.randrange(1, 9)
        if whole_blocks:
            max_tokens = -len(prompt) % BLOCK + 1
        out.append(TokenRequest(prompt, max_tokens))
    return out


@dataclass(frozen=True, slots=True)
class PrefixCounters:
    """The prefix-cache counters of one ``/metrics`` scrape, read with the gateway's own parser."""

    queries: float
    hits: float

    @classmethod
    def of(cls, metrics_text: str) -> PrefixCounters:
        stats = parse_vllm_metrics(metrics_text)
        return cls(stats.prefix_queries_total, stats.prefix_hits_total)

    def __sub__(self, other: PrefixCounters) -> PrefixCounters:
        return PrefixCounters(self.queries - other.queries, self.hits - other.hits)


def words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


@dataclass(frozen=True, slots=True)
class ChatRequest:
    doc: int
    messages: list[dict[str, str]]


def prefix_chat_workload(seed: int, docs: int, repeats: int, doc_words: int) -> list[ChatRequest]:
    """``docs`` long system prompts, each asked ``repeats`` short questions, in a shuffled order.

    The shuffle keeps a document's requests apart, so round robin spreads each document over both servers
    (every server pays its own first miss, and holds every document) while a prefix router keeps each on one.
    """
    rng = random.Random(seed)
    systems = [f"Document {d} ({seed}). " + words(rng, doc_words) for d in range(docs)]
    out = [
        ChatRequest(d, [{"role": "system", "content": systems[d]}, {"role": "user", "content": words(rng, 6) + "?"}])
        for d in range(docs)
        for _ in range(repeats)
    ]
    rng.shuffle(out)
    return out


def route_receipt(header: str) -> dict[str, str]:
    """``x-gateway-route: policy=prefix; reason=affinity; ...`` as a dict."""
    return dict(part.split("=", 1) for part in header.split("; ") if "=" in part)
