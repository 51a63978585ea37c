"""Deterministic filler text for workloads: the same key and length always give the same ASCII text.

A pool of ~1 MiB of pseudo-random English-like words is built once per seed; a piece of text is a slice of
that pool at an offset derived from its key (BLAKE2b, not Python's salted ``hash``), so building a 12,000
character system prompt or a 2,048-character trace block costs one slice, not one random draw per word.
The text is pure ASCII: the simulator's tokenizer counts 4 UTF-8 bytes per token, so ``4 * n`` characters
are exactly ``n`` tokens.
"""

from __future__ import annotations

import hashlib
import random

CHARS_PER_TOKEN = 4
"""The simulator's tokenizer: 4 UTF-8 bytes (here: ASCII characters) per token."""

_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "that",
    "this",
    "are",
    "be",
    "or",
    "it",
    "an",
    "was",
    "can",
    "will",
    "not",
    "your",
    "our",
    "you",
    "we",
    "all",
    "more",
    "new",
    "data",
    "user",
    "time",
    "use",
    "service",
    "support",
    "account",
    "order",
    "request",
    "report",
    "policy",
    "product",
    "team",
    "customer",
    "system",
    "model",
    "answer",
    "question",
    "price",
    "plan",
    "contract",
    "invoice",
    "delivery",
    "shipping",
    "return",
    "refund",
    "warranty",
    "store",
    "online",
    "help",
    "please",
    "note",
    "must",
    "should",
    "may",
    "each",
    "any",
    "other",
    "only",
    "also",
    "when",
    "where",
    "which",
    "how",
    "what",
    "who",
    "why",
    "after",
    "before",
    "during",
    "between",
    "into",
    "over",
    "under",
    "about",
    "above",
    "below",
    "up",
    "down",
    "out",
    "off",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "both",
    "few",
    "most",
    "some",
    "such",
    "no",
    "nor",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "just",
    "now",
    "include",
    "provide",
    "ensure",
    "review",
    "update",
    "create",
    "delete",
    "manage",
    "contact",
    "respond",
    "explain",
    "describe",
    "list",
    "summarize",
    "translate",
    "check",
    "verify",
    "confirm",
    "cancel",
    "schedule",
    "process",
    "handle",
    "follow",
    "escalate",
    "resolve",
    "network",
    "storage",
    "compute",
    "cluster",
    "region",
    "zone",
    "latency",
    "throughput",
    "error",
    "warning",
    "status",
    "incident",
    "backup",
    "security",
    "access",
    "token",
    "key",
    "secret",
    "password",
    "login",
    "session",
    "profile",
    "setting",
    "option",
    "feature",
    "release",
    "version",
    "document",
    "section",
    "chapter",
    "table",
    "figure",
    "value",
    "number",
    "amount",
    "total",
    "balance",
    "payment",
    "card",
    "bank",
]

POOL_CHARS = 1 << 20


class TextPool:
    """Slices of one deterministic word pool, addressed by a string key."""

    def __init__(self, seed: int | str = 0, size: int = POOL_CHARS) -> None:
        rng = random.Random(f"loadtests.textpool:{seed}")
        words: list[str] = []
        length = 0
        while length < size:
            batch = rng.choices(_WORDS, k=4096)
            words.extend(batch)
            length += sum(len(w) + 1 for w in batch)
        self._pool = " ".join(words)[:size]
        self._seed = str(seed)

    def _offset(self, key: str, chars: int) -> int:
        digest = hashlib.blake2b(f"{self._seed}\x00{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % (len(self._pool) - chars + 1)

    def text(self, key: str, chars: int) -> str:
        """``chars`` characters of filler for ``key`` (several slices joined when longer than half the pool)."""
        if chars <= 0:
            return ""
        limit = len(self._pool) // 2
        if chars <= limit:
            off = self._offset(key, chars)
            return self._pool[off : off + chars]
        parts = []
        remaining = chars
        part = 0
        while remaining > 0:
            n = min(limit, remaining)
            parts.append(self.text(f"{key}#{part}", n))
            remaining -= n
            part += 1
        return "".join(parts)

    def tagged(self, tag: str, key: str, chars: int) -> str:
        """``tag`` followed by filler, exactly ``chars`` characters (the tag is cut if it alone is longer).

        A distinct tag at the start guarantees that two keys never share a prefix, whatever the pool holds.
        """
        if len(tag) >= chars:
            return tag[:chars]
        return tag + self.text(key, chars - len(tag))


def tokens_to_chars(tokens: int) -> int:
    return max(0, tokens) * CHARS_PER_TOKEN
