"""Workload 3: replay of a Mooncake-format trace.

The trace is JSONL, one request per line: ``timestamp`` (ms since the trace's start), ``input_length`` and
``output_length`` (tokens) and ``hash_ids``, one id per 512-token block of the prompt, where equal ids mean
equal prefix blocks (the id names the block *and* everything before it). Each id becomes a deterministic
text block of exactly 512 simulator tokens (2,048 ASCII characters: the simulator's tokenizer counts 4 bytes
per token) that starts with the id, so equal ids give identical text and different ids never share a
block. A prompt is the concatenation of its blocks, cut to ``input_length`` tokens; equal leading ids
therefore make equal leading text, i.e. a shared KV prefix.

The text is sent as a chat: the first ``system_blocks`` blocks (default 1, never all of them) form the
system message and the rest the user message, so routers that key on the system prompt see something too.
The chat template adds a few tokens (``template_tokens``) to what the server counts.

Requests whose prompt plus output would exceed ``max_model_len`` are clipped (prompt cut to fit, the
leading, shareable blocks kept) and counted in ``clipped``. ``arrival_s`` is the request's timestamp in
seconds times ``time_scale`` (the trace's clock is read as simulated time).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loadtests.sim.tokenizer import count_tokens, render_chat
from loadtests.workloads.base import WorkItem
from loadtests.workloads.text import CHARS_PER_TOKEN, TextPool

BLOCK_TOKENS = 512
BLOCK_CHARS = BLOCK_TOKENS * CHARS_PER_TOKEN
DEFAULT_TRACE = Path(__file__).resolve().parent.parent / "data" / "mooncake_synthetic_trace.jsonl"
MAX_TRACE_LINES = 10_000_000


@dataclass(frozen=True, slots=True)
class TraceRecord:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def load_trace(path: str | Path, limit: int | None = None) -> list[TraceRecord]:
    """Read a Mooncake JSONL trace (blank lines skipped); ValueError naming the line when one is malformed."""
    records: list[TraceRecord] = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if number > MAX_TRACE_LINES or (limit is not None and len(records) >= limit):
                break
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                record = TraceRecord(
                    timestamp_ms=float(raw["timestamp"]),
                    input_length=int(raw["input_length"]),
                    output_length=int(raw["output_length"]),
                    hash_ids=tuple(int(h) for h in raw.get("hash_ids", ())),
                )
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{number}: not a Mooncake trace record: {e}") from e
            if record.input_length < 1 or record.output_length < 0:
                raise ValueError(f"{path}:{number}: input_length must be >= 1 and output_length >= 0")
            records.append(record)
    if not records:
        raise ValueError(f"{path}: no trace records")
    return records


@dataclass(frozen=True, slots=True)
class TraceParams:
    path: str = str(DEFAULT_TRACE)
    system_blocks: int = 1
    max_model_len: int = 32768
    time_scale: float = 1.0
    """Multiplies the trace's timestamps (2 = half the arrival rate)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.system_blocks < 0:
            raise ValueError("system_blocks must be >= 0")
        if self.time_scale <= 0:
            raise ValueError("the trace time scale must be > 0")


class TraceWorkload:
    name = "trace"

    def __init__(self, params: TraceParams, records: list[TraceRecord] | None = None) -> None:
        self.params = params
        self.records = records if records is not None else load_trace(params.path)
        self.pool = TextPool(f"{params.seed}:trace")
        two = render_chat([{"role": "system", "content": ""}, {"role": "user", "content": ""}])
        self.template_tokens = count_tokens(two) + 1  # +1: a non-aligned split may cost one more token
        self.clipped = sum(1 for r in self.records if self._input_tokens(r) < r.input_length)

    @property
    def mean_rate(self) -> float:
        """The whole trace's mean arrival rate, requests per (simulated) second after ``time_scale``."""
        span = (self.records[-1].timestamp_ms - self.records[0].timestamp_ms) / 1000 * self.params.time_scale
        return (len(self.records) - 1) / span if span > 0 and len(self.records) > 1 else 1.0

    def describe(self) -> str:
        p = self.params
        first, last = self.records[0].timestamp_ms, self.records[-1].timestamp_ms
        span = (last - first) / 1000
        return (
            f"trace: {Path(p.path).name}, {len(self.records)} requests over {span:.0f} s of trace time "
            f"(x{p.time_scale:g}; {self.mean_rate:.2f} req/s), {BLOCK_TOKENS}-token blocks as {BLOCK_CHARS}-char "
            "text, first "
            f"{p.system_blocks} block(s) as the system message, {self.clipped} prompts clipped to "
            f"max_model_len {p.max_model_len}, seed {p.seed}"
        )

    def block_text(self, hash_id: int) -> str:
        """The text of one hash id: exactly ``BLOCK_CHARS`` ASCII characters, starting with the id."""
        return self.pool.tagged(f"<block {hash_id}> ", f"block:{hash_id}", BLOCK_CHARS)

    def _output_tokens(self, r: TraceRecord) -> int:
        return max(1, min(r.output_length, self.params.max_model_len // 2))

    def _input_tokens(self, r: TraceRecord) -> int:
        room = self.params.max_model_len - self._output_tokens(r) - self.template_tokens
        return max(1, min(r.input_length, room))

    def prompt_text(self, r: TraceRecord) -> tuple[str, str]:
        """(system text, user text) of a record; their concatenation is ``input tokens`` x 4 characters."""
        chars = self._input_tokens(r) * CHARS_PER_TOKEN
        ids = r.hash_ids
        blocks_needed = -(-chars // BLOCK_CHARS)
        parts = [self.block_text(h) for h in ids[:blocks_needed]]
        # A record with fewer ids than its length needs: the missing tail is unique to this request.
        missing = blocks_needed - len(parts)
        if missing > 0:
            key = f"tail:{r.timestamp_ms}:{r.input_length}:{ids[-1] if ids else ''}"
            parts.append(self.pool.tagged(f"<tail {key}> ", key, missing * BLOCK_CHARS))
        text = "".join(parts)[:chars]
        system_chars = min(self.params.system_blocks, max(0, len(ids) - 1)) * BLOCK_CHARS
        system_chars = min(system_chars, len(text) - 1) if len(text) > 1 else 0
        return text[:system_chars], text[system_chars:]

    def items(self) -> Iterator[WorkItem]:
        t0 = self.records[0].timestamp_ms
        for index, r in enumerate(self.records):
            system, user = self.prompt_text(r)
            messages: tuple[dict[str, str], ...] = ({"role": "user", "content": user},)
            if system:
                messages = ({"role": "system", "content": system}, *messages)
            yield WorkItem(
                index=index,
                messages=messages,
                max_tokens=self._output_tokens(r),
                priority="normal",
                group=f"trace-{r.hash_ids[0] if r.hash_ids else index}",
                arrival_s=(r.timestamp_ms - t0) / 1000 * self.params.time_scale,
            )
