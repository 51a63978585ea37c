"""Prompt -> prefix block hashes, without a tokenizer.

The prompt is serialized in a canonical, role-aware form (``openai_request`` builds it: each message as
``<|role|>\\ncontent\\n``, so the same system prompt gives the same leading text whatever follows), cut into
fixed blocks of ``block_chars`` characters, and chain-hashed:

    h_0 = H(seed),  h_i = H(h_{i-1} || block_i),   seed = model name (+ cache_salt if sent)

so block i's hash names the whole prefix up to it, as vLLM's own block hashes do. Only full blocks count
(vLLM caches only full blocks), at most ``max_blocks``. A match of the first k blocks on a backend predicts
about ``k * block_chars / chars_per_token`` cached tokens there. The cost is one BLAKE2b call per block:
``loadtests/bench_prefix_hash.py`` measures it for a 60 KB prompt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CHARS_PER_TOKEN = 4.0
"""Typical English BPE ratio; used only to express matched blocks as predicted tokens."""


@dataclass(frozen=True, slots=True)
class PrefixHasher:
    block_chars: int = 256
    max_blocks: int = 512

    def blocks(self, model: str, text: str, salt: str | None = None) -> tuple[str, ...]:
        data = text.encode("utf-8", "surrogatepass")
        # Cut on characters, not bytes: the same text gives the same blocks whatever its encoding width.
        step = self.block_chars
        full = min(len(text) // step, self.max_blocks)
        if full == 0:
            return ()
        if len(data) != len(text):  # non-ASCII: slice the str, encode each block
            chunks = [text[i * step : (i + 1) * step].encode("utf-8", "surrogatepass") for i in range(full)]
        else:
            chunks = [data[i * step : (i + 1) * step] for i in range(full)]
        seed = f"{model}\x00{salt or ''}".encode()
        digest = hashlib.blake2b(seed, digest_size=8).digest()
        out = []
        for chunk in chunks:
            digest = hashlib.blake2b(digest + chunk, digest_size=8).digest()
            out.append(digest.hex())
        return tuple(out)

    def predicted_tokens(self, blocks: int) -> int:
        return int(blocks * self.block_chars / CHARS_PER_TOKEN)
