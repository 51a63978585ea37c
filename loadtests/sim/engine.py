"""The engine model of one simulated vLLM server: a scheduler stepping a batch through a paged KV cache.

One asyncio task per server runs steps back to back while there is work, and sleeps on an event when there
is none. Each step, like vLLM v1's scheduler with chunked prefill (always on in v1):

1. running requests are scheduled first, in admission order, each for the tokens it still needs (the rest
   of its prompt, capped by the step's token budget ``max_num_batched_tokens``, or one decode token);
   a request whose new tokens need blocks the cache cannot give preempts the most recently admitted running
   request (recompute mode: its blocks are freed, it goes back to the FRONT of the waiting queue and later
   recomputes its prompt and generated tokens, mostly from the prefix cache);
2. if nothing was preempted, waiting requests are admitted in FCFS order while ``max_num_seqs`` and the
   token budget allow: a request's prefix-cache hit is looked up once, at its first scheduling, which is also
   when ``cached_tokens`` and the prefix-cache counters are set; a head that does not fit blocks the queue;
3. the step lasts ``profile.step_seconds(...) * time_scale`` (see ``profiles.py``); at its end every request
   whose scheduled tokens completed its known tokens samples one new token, which is delivered to its
   consumer; a request with ``max_tokens`` outputs finishes and frees its blocks.

Abort (the client went away) removes a request at once and frees its blocks, even mid-step.
Per-step work is O(scheduled requests); a request's block hashes are computed once, at submission.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from array import array
from collections import deque

from loadtests.sim.kv_cache import KVCache, hash_blocks, max_cache_hit_blocks
from loadtests.sim.profiles import SimProfile
from loadtests.sim.request import RequestState, SimRequest
from loadtests.sim.stats import EngineStats

MAX_LAG_S = 0.05
"""When the event loop falls behind the step deadlines by more than this (wall seconds), forget the debt
instead of running steps back to back to catch up."""


class SimEngine:
    """The scheduler and KV cache of one simulated server, stepped by its own asyncio task."""

    def __init__(self, profile: SimProfile, *, time_scale: float = 1.0, name: str = "sim") -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.profile = profile
        self.time_scale = time_scale
        self.name = name
        self.kv = KVCache(profile.num_gpu_blocks, profile.block_size)
        self.stats = EngineStats()
        self.waiting: deque[SimRequest] = deque()
        self.running: list[SimRequest] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count()

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sim-engine-{self.name}")

    async def stop(self) -> None:
        """Stop stepping and abort every request still queued or running."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for req in [*self.running, *self.waiting]:
            self.abort(req)

    # ---- observation -------------------------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    def sim_seconds(self, wall_seconds: float) -> float:
        """Convert a wall-clock duration into simulated seconds (what a real server would have measured)."""
        return wall_seconds / self.time_scale

    # ---- requests ----------------------------------------------------------------------------------
    def add_request(
        self, prompt_ids: array[int], max_tokens: int, request_id: str | None = None, *, streaming: bool = True
    ) -> SimRequest:
        """Queue a request; the caller has checked ``len(prompt_ids) + max_tokens <= max_model_len``.

        ``streaming=False`` wakes the consumer only when the request ends (one wake-up, not one per token).
        """
        if len(prompt_ids) < 1 or max_tokens < 1:
            raise ValueError("a request needs at least one prompt token and one output token")
        if len(prompt_ids) + max_tokens > self.profile.max_model_len:
            raise ValueError("prompt + max_tokens exceeds max_model_len")
        rid = request_id if request_id is not None else f"{self.name}-{next(self._ids)}"
        hashes = hash_blocks(prompt_ids, self.profile.block_size)
        req = SimRequest(rid, prompt_ids, hashes, max_tokens, streaming=streaming)
        req.arrival = asyncio.get_running_loop().time()
        self.waiting.append(req)
        self._wakeup.set()
        return req

    def abort(self, req: SimRequest) -> None:
        """Drop a request now (client disconnect): free its blocks; a no-op once it has finished."""
        if req.finished:
            return
        if req.state is RequestState.WAITING:
            with contextlib.suppress(ValueError):
                self.waiting.remove(req)
        else:
            with contextlib.suppress(ValueError):
                self.running.remove(req)
        self.kv.release(req.blocks)
        req.blocks = []
        req.state = RequestState.ABORTED
        req.finish_reason = "abort"
        self.stats.finished["abort"] += 1
        req.progress.set()

    # ---- the step loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            if not self.running and not self.waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                deadline = loop.time()
            batch, tokens, pairs, context = self._schedule(loop.time())
            duration = self.profile.step_seconds(tokens, pairs, len(batch), context) * self.time_scale
            now = loop.time()
            if now - deadline > MAX_LAG_S:
                self.stats.lag_dropped_s += now - MAX_LAG_S - deadline
                deadline = now - MAX_LAG_S
            deadline += duration
            await asyncio.sleep(max(0.0, deadline - now))
            self._complete_step(batch, loop.time())

    def _grow(self, req: SimRequest, num_new: int) -> bool:
        """Give ``req`` the blocks for ``num_new`` more tokens; False (nothing changed) if they are not free."""
        bs = self.profile.block_size
        total = req.num_computed + num_new
        need = -(-total // bs) - len(req.blocks)
        if need > 0:
            if need > self.kv.num_free_blocks:
                return False
            req.blocks.extend(self.kv.allocate(need))
        if req.num_registered < len(req.block_hashes):
            self._register_full_blocks(req, total)
        return True

    def _register_full_blocks(self, req: SimRequest, total: int) -> None:
        upto = min(total // self.profile.block_size, len(req.block_hashes))
        for i in range(req.num_registered, upto):
            self.kv.register(req.blocks[i], req.block_hashes[i])
        req.num_registered = max(req.num_registered, upto)

    def _preempt(self, req: SimRequest) -> None:
        self.kv.release(req.blocks)
        req.blocks = []
        req.num_computed = 0
        req.num_registered = 0
        req.num_preemptions += 1
        req.state = RequestState.WAITING
        self.waiting.appendleft(req)
        self.stats.preemptions += 1

    def _schedule(self, now: float) -> tuple[list[tuple[SimRequest, int]], int, float, int]:
        """Pick this step's batch: ``[(request, new tokens)]`` plus the step-time inputs."""
        budget = self.profile.max_num_batched_tokens
        batch: list[tuple[SimRequest, int]] = []
        tokens, pairs, context = 0, 0.0, 0
        running = self.running
        preempted = False
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            num_new = min(req.num_prompt_tokens + req.num_output - req.num_computed, budget)
            scheduled = self._grow(req, num_new)
            while not scheduled:
                victim = running.pop()
                self._preempt(victim)
                preempted = True
                if victim is req:
                    break
                scheduled = self._grow(req, num_new)
            if not scheduled:
                break
            batch.append((req, num_new))
            budget -= num_new
            tokens += num_new
            pairs += num_new * (req.num_computed + num_new / 2)
            context += req.num_computed + num_new
            i += 1
        if not preempted:
            admitted = self._admit(now, budget)
            for req, num_new in admitted:
                batch.append((req, num_new))
                tokens += num_new
                pairs += num_new * (req.num_computed + num_new / 2)
                context += req.num_computed + num_new
        return batch, tokens, pairs, context

    def _admit(self, now: float, budget: int) -> list[tuple[SimRequest, int]]:
        """Move waiting requests into the running set, FCFS, with their prefix-cache hits."""
        bs = self.profile.block_size
        kv, waiting, running = self.kv, self.waiting, self.running
        out: list[tuple[SimRequest, int]] = []
        while waiting and budget > 0 and len(running) < self.profile.max_num_seqs:
            req = waiting[0]
            num_tokens = req.num_prompt_tokens + req.num_output
            hits = kv.lookup(req.block_hashes, max_cache_hit_blocks(num_tokens, bs))
            num_computed = len(hits) * bs
            num_new = min(num_tokens - num_computed, budget)
            need = -(-(num_computed + num_new) // bs) - len(hits)
            if need + kv.num_evictable(hits) > kv.num_free_blocks:
                break
            kv.acquire(hits)
            req.blocks = hits + kv.allocate(need)
            req.num_computed = num_computed
            req.num_registered = len(hits)
            self._register_full_blocks(req, num_computed + num_new)
            waiting.popleft()
            running.append(req)
            req.state = RequestState.RUNNING
            if req.cached_tokens < 0:  # first scheduling (not a resume after preemption)
                req.cached_tokens = num_computed
                req.first_scheduled = now
                self.stats.prefix_queries += req.num_prompt_tokens
                self.stats.prefix_hits += num_computed
                self.stats.queue_time.observe(self.sim_seconds(now - req.arrival))
            out.append((req, num_new))
            budget -= num_new
        return out

    def _complete_step(self, batch: list[tuple[SimRequest, int]], now: float) -> None:
        """Apply the step's results: advance computed tokens, sample, deliver, finish."""
        stats = self.stats
        stats.steps += 1
        any_finished = False
        for req, num_new in batch:
            if req.state is not RequestState.RUNNING:
                continue  # aborted during the step
            req.num_computed += num_new
            if req.num_computed < req.num_prompt_tokens + req.num_output:
                continue  # a prefill chunk that did not reach the end of the known tokens
            req.num_output += 1
            stats.generation_tokens += 1
            if req.first_token is None:
                req.first_token = now
                stats.ttft.observe(self.sim_seconds(now - req.arrival))
                stats.prompt_tokens += req.num_prompt_tokens
                stats.prompt_tokens_cached += req.cached_tokens
            else:
                stats.itl.observe(self.sim_seconds(now - req.last_token))
            req.last_token = now
            if req.num_output >= req.max_tokens:
                self._finish(req, "length", now)
                any_finished = True
            if req.streaming or req.finished:
                req.progress.set()
        if any_finished:
            self.running = [r for r in self.running if r.state is RequestState.RUNNING]

    def _finish(self, req: SimRequest, reason: str, now: float) -> None:
        self.kv.release(req.blocks)
        req.blocks = []
        req.state = RequestState.FINISHED
        req.finish_reason = reason
        self.stats.finished[reason] += 1
        self.stats.e2e.observe(self.sim_seconds(now - req.arrival))
