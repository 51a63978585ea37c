"""One generation request as the engine tracks it, and how a consumer follows its output.

The engine mutates these fields in place each step; the HTTP handler only reads ``num_output``,
``finished``, ``finish_reason`` and ``cached_tokens``, waiting on ``progress`` between steps.
"""

from __future__ import annotations

import asyncio
import enum
from array import array
from collections.abc import AsyncIterator


class RequestState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


class SimRequest:
    """One generation request as the engine tracks it; consumers read ``num_output`` and ``finished``."""

    __slots__ = (
        "arrival", "block_hashes", "blocks", "cached_tokens", "finish_reason", "first_scheduled",
        "first_token", "last_token", "max_tokens", "num_computed", "num_output", "num_preemptions",
        "num_prompt_tokens", "num_registered", "progress", "prompt_ids", "request_id", "state", "streaming",
    )  # fmt: skip

    def __init__(
        self,
        request_id: str,
        prompt_ids: array[int],
        block_hashes: list[bytes],
        max_tokens: int,
        *,
        streaming: bool = True,
    ) -> None:
        self.request_id = request_id
        self.streaming = streaming
        """Wake the consumer at every token; False: only when the request ends (non-streaming replies)."""
        self.prompt_ids = prompt_ids
        self.num_prompt_tokens = len(prompt_ids)
        self.block_hashes = block_hashes
        self.max_tokens = max_tokens
        self.state = RequestState.WAITING
        self.blocks: list[int] = []
        self.num_computed = 0
        self.num_registered = 0
        self.num_output = 0
        self.cached_tokens = -1
        """Prompt tokens found in the prefix cache at first scheduling (-1 before that)."""
        self.num_preemptions = 0
        self.arrival = 0.0
        self.first_scheduled: float | None = None
        self.first_token: float | None = None
        self.last_token = 0.0
        self.finish_reason: str | None = None
        self.progress = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.state is RequestState.FINISHED or self.state is RequestState.ABORTED

    async def wait_finished(self) -> None:
        """Return once the request has finished or been aborted."""
        while not self.finished:
            self.progress.clear()
            await self.progress.wait()

    async def stream(self) -> AsyncIterator[tuple[int, int]]:
        """Yield ``(start, end)`` ranges of newly generated token indices until the request ends.

        Ranges coalesce when the consumer is slower than the engine, so a slow client costs no extra work.
        """
        sent = 0
        while True:
            n = self.num_output
            if n > sent:
                yield sent, n
                sent = n
                continue
            if self.finished:
                return
            self.progress.clear()
            await self.progress.wait()
