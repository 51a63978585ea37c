"""Workload 2: multi-turn chats whose history grows.

``sessions`` conversations are open at any time. Each has one of ``system_prompts`` shared application
system prompts, a priority, and a number of turns; turn k's prompt is the system prompt, every earlier user
turn and assistant reply, and a new user turn, so consecutive turns of a conversation share everything but
the newest messages (what vLLM's prefix cache and a prefix-aware router can exploit). When a conversation
has had its turns, a new one takes its slot.

The order is deterministic: rounds over the open slots, each round in a fresh random order, so a
conversation's next turn comes about ``sessions`` requests after its previous one. Each item names the
previous turn in ``after``; the load generator does not send a turn before the previous one has completed
(a user reads the answer before replying).

The assistant replies in the history are deterministic filler of the requested output length, not the
text the server returned: the simulator caches only prompt blocks, so what the reply says does not matter
for the cache, and the workload stays a pure function of its seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from loadtests.workloads.base import WorkItem, jittered, priority_chooser
from loadtests.workloads.text import TextPool, tokens_to_chars


@dataclass(frozen=True, slots=True)
class ChatParams:
    sessions: int = 128
    """Conversations open at once (keep it above the highest concurrency)."""
    turns: int = 8
    """Mean turns per conversation (each has between half and 1.5x this many)."""
    system_prompts: int = 8
    system_tokens: int = 1000
    user_tokens: int = 150
    output_tokens: int = 100
    length_jitter: float = 0.2
    priority_mix: tuple[float, float, float] = (20.0, 50.0, 30.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sessions < 1 or self.turns < 1 or self.system_prompts < 1:
            raise ValueError("sessions, turns and system prompts must be >= 1")


@dataclass(slots=True)
class _Conversation:
    id: str
    system: str
    priority: str
    turns_left: int
    history: list[dict[str, str]] = field(default_factory=list)
    last_index: int | None = None


class ChatWorkload:
    name = "chat"

    def __init__(self, params: ChatParams, pool: TextPool | None = None) -> None:
        self.params = params
        self.pool = pool or TextPool(params.seed)
        rng = random.Random(f"{params.seed}:chat:system")
        self.system_prompts = [
            self.pool.tagged(
                f"You are assistant app {a:03d}. Be helpful and precise.\n",
                f"chat-system:{a}",
                tokens_to_chars(jittered(rng, params.system_tokens, params.length_jitter)),
            )
            for a in range(params.system_prompts)
        ]
        self._priority = priority_chooser(params.priority_mix)

    def describe(self) -> str:
        p = self.params
        mix = "/".join(f"{w:g}" for w in p.priority_mix)
        return (
            f"chat: {p.sessions} open conversations, ~{p.turns} turns each ({max(1, p.turns // 2)}.."
            f"{max(1, (3 * p.turns) // 2)}), {p.system_prompts} shared system prompts of ~{p.system_tokens} tokens, "
            f"user turns ~{p.user_tokens} tokens, {p.output_tokens} output tokens (history grows by both), "
            f"priority mix high/normal/low {mix}, seed {p.seed}"
        )

    def _new_conversation(self, rng: random.Random, number: int) -> _Conversation:
        p = self.params
        return _Conversation(
            id=f"conv-{number}",
            system=self.system_prompts[rng.randrange(len(self.system_prompts))],
            priority=self._priority.draw(rng),
            turns_left=rng.randint(max(1, p.turns // 2), max(1, (3 * p.turns) // 2)),
        )

    def items(self) -> Iterator[WorkItem]:
        p = self.params
        rng = random.Random(f"{p.seed}:chat:requests")
        opened = 0
        slots: list[_Conversation] = []
        for _ in range(p.sessions):
            slots.append(self._new_conversation(rng, opened))
            opened += 1
        index = 0
        order = list(range(p.sessions))
        while True:
            rng.shuffle(order)
            for slot in order:
                conv = slots[slot]
                user_chars = tokens_to_chars(jittered(rng, p.user_tokens, p.length_jitter))
                user = {
                    "role": "user",
                    "content": self.pool.tagged(f"[{conv.id} turn {index}] ", f"u:{index}", user_chars),
                }
                messages = ({"role": "system", "content": conv.system}, *conv.history, user)
                yield WorkItem(
                    index=index,
                    messages=messages,
                    max_tokens=p.output_tokens,
                    priority=conv.priority,
                    group=conv.id,
                    session=conv.id,
                    after=conv.last_index,
                )
                reply = self.pool.tagged(f"(reply {index}) ", f"a:{index}", tokens_to_chars(p.output_tokens))
                conv.history += [user, {"role": "assistant", "content": reply}]
                conv.last_index = index
                conv.turns_left -= 1
                index += 1
                if conv.turns_left <= 0:
                    slots[slot] = self._new_conversation(rng, opened)
                    opened += 1
