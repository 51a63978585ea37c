"""The load generator: streaming chat completions through the gateway replicas, closed or open loop.

- closed loop: ``concurrency`` workers, each sending its next request as soon as the previous one ends;
- open loop: requests start at their arrival times (Poisson at a rate, or a trace's own timestamps),
  whether or not earlier ones have finished (bounded by ``max_in_flight``).

Requests go to the replicas in turn (request k to replica k mod R) and carry ``x-priority`` (and
``x-session-id`` when asked). Each is a streamed chat completion with ``stream_options.include_usage``; the
generator records the status, the time to the first content chunk (TTFT), the time to the end of the
stream (e2e), the usage (completion, prompt and cached tokens) and the backend the gateway names. Times are
wall seconds here; the caller divides by the simulator's time scale.

aiohttp, not httpx: it is several times cheaper per streamed chunk, which matters with many open streams
on a small machine. A chat turn that must follow an earlier one (``WorkItem.after``) waits for it first.

Bounds: a phase stops issuing after ``max_requests`` or ``max_wall_s``; requests still open then get
``drain_s`` to finish and are cancelled after that (recorded as ``cancelled``); every request has a total
timeout. A small task samples the event loop's lag, the client-side sign of a saturated CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import aiohttp
import msgspec

from loadtests.workloads import WorkItem

AFTER_WAIT_S = 120.0
"""Longest a chat turn waits for its previous turn to complete (then it is sent anyway)."""
LAG_SAMPLE_S = 0.05

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class ClosedLoop:
    concurrency: int

    @property
    def kind(self) -> str:
        return "concurrency"

    @property
    def value(self) -> float:
        return float(self.concurrency)


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """Requests start at their arrival times, whether or not earlier ones have finished.

    Without ``use_arrivals``: Poisson arrivals at ``rate`` requests per simulated second. With it: at the
    items' own ``arrival_s`` (a trace), relative to the phase's first item, divided by ``rate_scale``
    (``rate`` is then only the label: the mean rate that scale gives, see ``plan.load_spec``).
    """

    rate: float = 0.0
    rate_scale: float = 0.0
    use_arrivals: bool = False

    @property
    def kind(self) -> str:
        return "rate" if self.rate > 0 else "rate_scale"

    @property
    def value(self) -> float:
        return self.rate if self.rate > 0 else self.rate_scale


LoadSpec = ClosedLoop | OpenLoop


@dataclass(slots=True)
class RequestRecord:
    index: int
    priority: str
    group: str
    replica: int
    start: float
    """Wall seconds since the phase started."""
    status: int = 0
    """HTTP status; 0 when no response arrived (connection error, timeout, cancelled)."""
    ttft: float | None = None
    first_token_at: float | None = None
    """Wall seconds since the phase started, at the first content chunk."""
    e2e: float | None = None
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    backend: str | None = None
    error: str | None = None
    cancelled: bool = False
    late_s: float = 0.0
    """Open loop: how long after its arrival time the request could start (in-flight cap reached)."""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None and not self.cancelled

    @property
    def shed(self) -> bool:
        return self.status == 429

    @property
    def end(self) -> float | None:
        return None if self.e2e is None else self.start + self.e2e


@dataclass(slots=True)
class PhaseResult:
    records: list[RequestRecord]
    wall_s: float
    """From the phase's start to its last request's end."""
    issue_window_s: float
    """From the phase's start to the last request's start (the steady part)."""
    loop_lag_p99_s: float
    loop_lag_max_s: float
    max_in_flight: int
    stopped_by: str
    """``requests``, ``duration`` or ``exhausted`` (the workload ran out)."""
    closed_loop: bool = True


@dataclass
class Client:
    """What the phases share: the HTTP session, the replicas' URLs, the model, the header options."""

    session: aiohttp.ClientSession
    urls: list[str]
    model: str
    send_session_id: bool = False
    request_timeout_s: float = 600.0

    async def send(
        self, item: WorkItem, replica: int, record: RequestRecord, t0: float, max_tokens: int | None
    ) -> None:
        body = {
            "model": self.model,
            "messages": list(item.messages),
            "max_tokens": max_tokens if max_tokens is not None else item.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"content-type": "application/json", "x-priority": item.priority}
        if self.send_session_id and item.session:
            headers["x-session-id"] = item.session
        url = f"{self.urls[replica]}/v1/chat/completions"
        start = time.perf_counter()
        timeout = aiohttp.ClientTimeout(total=self.request_timeout_s)
        try:
            async with self.session.post(url, data=_encode(body), headers=headers, timeout=timeout) as resp:
                record.status = resp.status
                record.backend = resp.headers.get("x-gateway-backend")
                if resp.status != 200:
                    text = await resp.text(errors="replace")
                    record.error = f"http {resp.status}: {text[:200]}"
                    record.e2e = time.perf_counter() - start
                    return
                done = False
                async for line in resp.content:
                    if not line.startswith(b"data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == b"[DONE]":
                        done = True
                        break
                    if record.ttft is not None and b'"usage"' not in payload and b'"error"' not in payload:
                        continue  # a content chunk after the first: nothing to record
                    _read_chunk(_decode(payload), record, start, t0)
                    if record.error:
                        break
                record.e2e = time.perf_counter() - start
                if not done and record.error is None:
                    record.error = "stream ended without [DONE]"
        except asyncio.CancelledError:
            record.cancelled = True
            record.e2e = None
            raise
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as e:
            record.error = f"{type(e).__name__}: {e}"[:200]
            record.e2e = time.perf_counter() - start


def _read_chunk(obj: object, record: RequestRecord, start: float, t0: float) -> None:
    if not isinstance(obj, dict):
        return
    if obj.get("error"):
        record.error = f"stream error: {str(obj['error'])[:200]}"
        return
    if record.ttft is None:
        for choice in obj.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                now = time.perf_counter()
                record.ttft = now - start
                record.first_token_at = now - t0
                break
    usage = obj.get("usage")
    if isinstance(usage, dict):
        record.completion_tokens = int(usage.get("completion_tokens") or 0)
        record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        record.cached_tokens = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0


@dataclass
class _Phase:
    client: Client
    items: Iterator[WorkItem]
    max_requests: int
    max_wall_s: float
    max_tokens: int | None
    on_progress: Callable[[int, int], None] | None
    t0: float = field(default_factory=time.perf_counter)
    records: list[RequestRecord] = field(default_factory=list)
    completed: dict[int, asyncio.Event] = field(default_factory=dict)
    issued: int = 0
    done: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    last_start: float = 0.0
    stopped_by: str = "requests"

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def may_issue(self) -> bool:
        if self.issued >= self.max_requests:
            self.stopped_by = "requests"
            return False
        if self.now() >= self.max_wall_s:
            self.stopped_by = "duration"
            return False
        return True

    def next_item(self) -> WorkItem | None:
        item = next(self.items, None)
        if item is None:
            self.stopped_by = "exhausted"
        return item

    async def run_one(self, item: WorkItem, late_s: float = 0.0) -> None:
        replica = self.issued % len(self.client.urls)
        self.issued += 1
        if item.index not in self.completed:
            self.completed[item.index] = asyncio.Event()
        if item.after is not None and item.after in self.completed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.completed[item.after].wait(), AFTER_WAIT_S)
        record = RequestRecord(item.index, item.priority, item.group, replica, self.now(), late_s=late_s)
        self.records.append(record)
        self.last_start = record.start
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.client.send(item, replica, record, self.t0, self.max_tokens)
        finally:
            self.in_flight -= 1
            self.done += 1
            self.completed[item.index].set()
            if item.after is not None:
                self.completed.pop(item.after, None)  # nobody else waits for it
            if self.on_progress is not None:
                self.on_progress(self.done, self.issued)


async def _lag_monitor(samples: list[float]) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(10_000_000):
        before = loop.time()
        await asyncio.sleep(LAG_SAMPLE_S)
        samples.append(max(0.0, loop.time() - before - LAG_SAMPLE_S))


async def _closed(phase: _Phase, concurrency: int) -> None:
    async def worker() -> None:
        while phase.may_issue():
            item = phase.next_item()
            if item is None:
                return
            await phase.run_one(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class ArrivalClock:
    """Arrival times in simulated seconds since the phase's start, one item at a time (nothing is
    materialized: a long trace replay keeps only the open requests' prompts in memory)."""

    def __init__(self, load: OpenLoop, seed: int) -> None:
        if load.use_arrivals and load.rate_scale <= 0:
            raise ValueError("a trace replay needs a rate scale > 0")
        if not load.use_arrivals and load.rate <= 0:
            raise ValueError("an open loop needs a rate > 0")
        self.load = load
        self._rng = random.Random(f"{seed}:arrivals:{load.rate!r}")
        self._next = 0.0
        self._first: float | None = None

    def due(self, item: WorkItem) -> float:
        if self.load.use_arrivals:
            if item.arrival_s is None:
                raise ValueError(f"item {item.index} has no arrival time to replay")
            if self._first is None:
                self._first = item.arrival_s
            return (item.arrival_s - self._first) / self.load.rate_scale
        t = self._next
        self._next += self._rng.expovariate(self.load.rate)
        return t


def arrival_times(items: Iterable[WorkItem], load: OpenLoop, seed: int) -> list[float]:
    clock = ArrivalClock(load, seed)
    return [clock.due(i) for i in items]


async def _open(phase: _Phase, load: OpenLoop, time_scale: float, max_in_flight: int, seed: int) -> None:
    clock = ArrivalClock(load, seed)
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(item: WorkItem, due: float) -> None:
        try:
            await phase.run_one(item, late_s=max(0.0, phase.now() - due))
        finally:
            slots.release()

    try:
        for _ in range(phase.max_requests):  # issued counts only once each task has started
            item = phase.next_item()
            if item is None:
                break
            due = clock.due(item) * time_scale
            if due >= phase.max_wall_s:
                phase.stopped_by = "duration"
                break
            delay = due - phase.now()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            task = asyncio.create_task(one(item, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*list(tasks))
    finally:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)


async def run_phase(
    client: Client,
    items: Iterator[WorkItem],
    load: LoadSpec,
    *,
    max_requests: int,
    max_wall_s: float,
    drain_s: float,
    time_scale: float,
    max_tokens: int | None = None,
    max_in_flight: int = 2048,
    seed: int = 0,
    on_progress: Callable[[int, int], None] | None = None,
) -> PhaseResult:
    """Send up to ``max_requests`` items under ``load`` for at most ``max_wall_s`` (+ ``drain_s``)."""
    phase = _Phase(client, items, max_requests, max_wall_s, max_tokens, on_progress)
    lag: list[float] = []
    monitor = asyncio.create_task(_lag_monitor(lag))
    if isinstance(load, ClosedLoop):
        driver = asyncio.ensure_future(_closed(phase, load.concurrency))
    else:
        driver = asyncio.ensure_future(_open(phase, load, time_scale, max_in_flight, seed))
    try:
        # issuing stops by itself at max_wall_s; what is open then gets drain_s to finish
        await asyncio.wait_for(asyncio.shield(driver), max_wall_s + drain_s)
    except TimeoutError:
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
    except asyncio.CancelledError:  # the sweep itself is being stopped: stop sending too
        driver.cancel()
        raise
    finally:
        monitor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await monitor
    ends = [r.end for r in phase.records if r.end is not None]
    lag_sorted = sorted(lag)
    return PhaseResult(
        records=phase.records,
        wall_s=max(ends, default=phase.now()),
        issue_window_s=phase.last_start,
        loop_lag_p99_s=lag_sorted[int(0.99 * (len(lag_sorted) - 1))] if lag_sorted else 0.0,
        loop_lag_max_s=lag_sorted[-1] if lag_sorted else 0.0,
        max_in_flight=phase.max_in_flight,
        stopped_by=phase.stopped_by,
        closed_loop=isinstance(load, ClosedLoop),
    )
