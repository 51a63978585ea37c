"""The workloads of ``loadtest run``: deterministic by seed and shaped as specified."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from loadtests.run.loadgen import OpenLoop, arrival_times
from loadtests.run.plan import load_spec
from loadtests.sim.tokenizer import count_tokens, render_chat
from loadtests.workloads import (
    DEFAULT_TRACE,
    ChatParams,
    ChatWorkload,
    ReferenceParams,
    ReferenceWorkload,
    TraceParams,
    TraceWorkload,
    WorkItem,
    load_trace,
)
from loadtests.workloads.text import TextPool
from loadtests.workloads.trace import BLOCK_CHARS


def take(workload: ReferenceWorkload | ChatWorkload | TraceWorkload, n: int) -> list[WorkItem]:
    return list(itertools.islice(workload.items(), n))


# ---- text ----------------------------------------------------------------------------------------------


def test_text_pool_is_deterministic_ascii_and_exact_length() -> None:
    a, b = TextPool(7), TextPool(7)
    assert a.text("k", 5000) == b.text("k", 5000)
    assert a.text("k", 5000) != a.text("other", 5000)
    assert TextPool(8).text("k", 100) != a.text("k", 100)
    long = a.text("big", 700_000)  # longer than half the pool: several slices
    assert len(long) == 700_000
    assert long.isascii()
    assert a.tagged("<x> ", "k", 10) == "<x> " + a.text("k", 6)
    assert a.tagged("a long tag", "k", 3) == "a l"


# ---- reference -----------------------------------------------------------------------------------------


def test_reference_is_deterministic_by_seed() -> None:
    params = ReferenceParams(tenants=20, system_tokens=400, seed=3)
    first, again = take(ReferenceWorkload(params), 50), take(ReferenceWorkload(params), 50)
    assert first == again
    other = take(ReferenceWorkload(ReferenceParams(tenants=20, system_tokens=400, seed=4)), 50)
    assert [i.group for i in first] != [i.group for i in other]


def test_reference_tenants_share_their_own_long_system_prompt() -> None:
    params = ReferenceParams(tenants=30, system_tokens=3000, user_tokens=50, output_tokens=100, seed=1)
    items = take(ReferenceWorkload(params), 400)
    by_tenant: dict[str, set[str]] = {}
    for item in items:
        assert [m["role"] for m in item.messages] == ["system", "user"]
        assert item.max_tokens == 100
        assert item.priority in ("high", "normal", "low")
        by_tenant.setdefault(item.group, set()).add(item.messages[0]["content"])
    assert all(len(prompts) == 1 for prompts in by_tenant.values())  # one prompt per tenant, shared
    prompts = [next(iter(p)) for p in by_tenant.values()]
    assert len({p[:64] for p in prompts}) == len(prompts)  # distinct from the first KV block on
    for p in prompts:
        assert 0.8 * 3000 <= count_tokens(p) <= 1.2 * 3000 + 1
    users = [i.messages[1]["content"] for i in items]
    assert len(set(users)) == len(users)  # user turns are never shared
    assert all(count_tokens(u) <= 1.2 * 50 + 1 for u in users)


def test_reference_popularity_is_skewed_and_priority_mix_holds() -> None:
    items = take(ReferenceWorkload(ReferenceParams(tenants=50, system_tokens=100, zipf=1.0, seed=0)), 3000)
    counts = Counter(i.group for i in items)
    assert counts.most_common(1)[0][0] == "tenant-0"
    assert counts["tenant-0"] > 5 * counts.get("tenant-40", 1)
    mix = Counter(i.priority for i in items)
    assert mix["high"] / 3000 == pytest.approx(0.2, abs=0.04)
    assert mix["normal"] / 3000 == pytest.approx(0.5, abs=0.04)
    assert mix["low"] / 3000 == pytest.approx(0.3, abs=0.04)
    uniform = take(ReferenceWorkload(ReferenceParams(tenants=5, system_tokens=100, zipf=0.0)), 2000)
    assert min(Counter(i.group for i in uniform).values()) > 300


# ---- chat ----------------------------------------------------------------------------------------------


def test_chat_history_grows_turn_by_turn() -> None:
    params = ChatParams(sessions=6, turns=4, system_prompts=2, system_tokens=200, user_tokens=30, output_tokens=20)
    items = take(ChatWorkload(params), 120)
    assert items == take(ChatWorkload(params), 120)  # deterministic
    by_session: dict[str, list[WorkItem]] = {}
    for item in items:
        assert item.session == item.group
        by_session.setdefault(item.group, []).append(item)
    assert len(by_session) > 6  # conversations end and new ones take their slots
    grew = 0
    for turns in by_session.values():
        assert turns[0].after is None
        for prev, nxt in itertools.pairwise(turns):
            assert nxt.after == prev.index
            # the next prompt = the previous prompt + the assistant's reply + a new user turn
            assert nxt.messages[: len(prev.messages)] == prev.messages
            assert [m["role"] for m in nxt.messages[len(prev.messages) :]] == ["assistant", "user"]
            assert count_tokens(nxt.messages[-2]["content"]) == 20
            assert count_tokens(render_chat(nxt.messages)) > count_tokens(render_chat(prev.messages))
            grew += 1
    assert grew > 50
    assert {i.messages[0]["content"] for i in items} <= set(ChatWorkload(params).system_prompts)


def test_chat_turns_of_a_conversation_are_spread_out() -> None:
    items = take(ChatWorkload(ChatParams(sessions=32, system_tokens=50, user_tokens=10, output_tokens=5)), 500)
    gaps = [i.index - i.after for i in items if i.after is not None]
    assert sum(gaps) / len(gaps) > 16  # about `sessions` requests between two turns of one conversation


# ---- trace ---------------------------------------------------------------------------------------------


def write_trace(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_trace_equal_hash_ids_make_equal_text_and_prompt_lengths_match(tmp_path: Path) -> None:
    trace = write_trace(
        tmp_path / "t.jsonl",
        [
            {"timestamp": 0, "input_length": 1500, "output_length": 7, "hash_ids": [1, 2, 3]},
            {"timestamp": 250, "input_length": 1300, "output_length": 9, "hash_ids": [1, 2, 4]},
            {"timestamp": 1000, "input_length": 600, "output_length": 3, "hash_ids": [5, 6]},
            {"timestamp": 1500, "input_length": 20, "output_length": 1, "hash_ids": [7]},
        ],
    )
    w = TraceWorkload(TraceParams(path=str(trace), seed=2))
    items = take(w, 10)
    assert len(items) == 4
    assert items == take(TraceWorkload(TraceParams(path=str(trace), seed=2)), 10)
    assert w.block_text(1) == TraceWorkload(TraceParams(path=str(trace), seed=2)).block_text(1)
    assert len(w.block_text(1)) == BLOCK_CHARS
    assert w.block_text(1) != w.block_text(2)
    for item, record in zip(items, w.records, strict=True):
        content = "".join(m["content"] for m in item.messages)
        assert count_tokens(content) == record.input_length  # the blocks cut to input_length tokens
        rendered = count_tokens(render_chat(item.messages))
        assert record.input_length <= rendered <= record.input_length + w.template_tokens
        assert item.max_tokens == record.output_length
    a, b = ("".join(m["content"] for m in i.messages) for i in items[:2])
    shared = 2 * BLOCK_CHARS  # ids 1 and 2 in common
    assert a[:shared] == b[:shared] == w.block_text(1) + w.block_text(2)
    assert a[shared : shared + 64] != b[shared : shared + 64]
    assert items[0].messages[0] == {"role": "system", "content": w.block_text(1)}  # first block = system
    assert items[3].messages[0]["role"] == "user"
    assert len(items[3].messages) == 1
    assert [i.arrival_s for i in items] == [0.0, 0.25, 1.0, 1.5]


def test_trace_clips_prompts_beyond_max_model_len(tmp_path: Path) -> None:
    trace = write_trace(
        tmp_path / "t.jsonl",
        [{"timestamp": 0, "input_length": 5000, "output_length": 100, "hash_ids": list(range(10))}],
    )
    w = TraceWorkload(TraceParams(path=str(trace), max_model_len=2048))
    (item,) = take(w, 1)
    assert w.clipped == 1
    assert count_tokens(render_chat(item.messages)) + item.max_tokens <= 2048
    assert item.messages[0]["content"] == w.block_text(0)  # the leading, shareable blocks are kept


def test_trace_loader_names_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1]}\n{"oops": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_trace(bad)


def test_bundled_trace_is_the_mooncake_synthetic_one() -> None:
    records = load_trace(DEFAULT_TRACE)
    assert len(records) == 3993
    assert TraceWorkload(TraceParams(), records).mean_rate == pytest.approx(3992 / 1022.025)
    assert all(len(r.hash_ids) == -(-r.input_length // 512) for r in records)


# ---- arrivals ------------------------------------------------------------------------------------------


def test_poisson_arrivals_have_the_rate_and_trace_arrivals_are_rescaled() -> None:
    items = take(ReferenceWorkload(ReferenceParams(tenants=3, system_tokens=10)), 4000)
    times = arrival_times(items, OpenLoop(rate=20.0), seed=1)
    assert times == arrival_times(items, OpenLoop(rate=20.0), seed=1)
    assert len(times) / times[-1] == pytest.approx(20.0, rel=0.1)
    traced = [WorkItem(i, (), 1, "normal", "t", arrival_s=t) for i, t in enumerate([10.0, 11.0, 12.0, 14.0])]
    assert arrival_times(traced, OpenLoop(rate_scale=2.0, use_arrivals=True), 0) == [0.0, 0.5, 1.0, 2.0]
    # --rate with a trace: the whole trace's mean rate scaled to the target, burstiness kept
    load = load_spec("rate", 3.0, trace_rate=1.0)
    assert isinstance(load, OpenLoop)
    assert (load.kind, load.value) == ("rate", 3.0)
    assert arrival_times(traced, load, 0) == pytest.approx([0, 1 / 3, 2 / 3, 4 / 3])
    with pytest.raises(ValueError, match="no arrival time"):
        arrival_times(items[:1], OpenLoop(rate_scale=1.0, use_arrivals=True), 0)
