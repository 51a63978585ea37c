"""Each policy's choice on crafted fleet snapshots (no network: policies are pure)."""

import random
from collections import Counter

import pytest

from gateway.config import RoutingConfig
from gateway.routing.hashing import rendezvous_order
from gateway.routing.registry import build_policy, policy_names
from gateway.routing.types import Candidate, RequestFeatures, decide

REQ = RequestFeatures(model="m", stream=False)


def policy(name: str, **params: float):  # type: ignore[no-untyped-def]
    return build_policy(RoutingConfig(policy=name, params={name: params} if params else {}), random.Random(7))


def test_every_registered_policy_builds_and_has_a_docstring() -> None:
    import importlib

    for name in policy_names():
        module = importlib.import_module(f"gateway.routing.policies.{name}")
        assert name == module.TYPE
        assert module.__doc__
        assert name in module.__doc__
        assert policy(name).name == name


def test_round_robin_takes_turns_in_id_order() -> None:
    rr = policy("round_robin")
    cands = [Candidate("b"), Candidate("a"), Candidate("c")]
    assert [decide(rr, REQ, cands).backend_id for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


@pytest.mark.parametrize(
    ("cands", "expected"),
    [
        pytest.param(
            [Candidate("a", waiting=3, ttft_ewma_s=0.1), Candidate("b", waiting=1, ttft_ewma_s=0.1)],
            "b",
            id="shorter-queue",
        ),
        pytest.param(
            [Candidate("a", in_flight=5, ttft_ewma_s=0.1), Candidate("b", in_flight=1, ttft_ewma_s=0.1)],
            "b",
            id="fewer-in-flight",
        ),
        pytest.param(
            # (0+1+1)*0.1 = 0.2 beats (0+0+1)*0.5 = 0.5: a fast backend with one request beats an idle slow one
            [Candidate("fast", in_flight=1, ttft_ewma_s=0.1), Candidate("slow", ttft_ewma_s=0.5)],
            "fast",
            id="latency-weighs",
        ),
        pytest.param(
            # no observation yet: takes the mean of the others (0.3), (0+1)*0.3 < (1+1)*0.2
            [
                Candidate("new"),
                Candidate("old", in_flight=1, ttft_ewma_s=0.2),
                Candidate("x", in_flight=2, ttft_ewma_s=0.4),
            ],
            "new",
            id="unknown-latency-takes-mean",
        ),
    ],
)
def test_least_queue_picks_the_lowest_reference_score(cands: list[Candidate], expected: str) -> None:
    decision = decide(policy("least_queue"), REQ, cands)
    assert decision.backend_id == expected
    assert decision.reason == "least_score"


def test_least_queue_breaks_ties_at_random() -> None:
    lq = policy("least_queue")
    picks = Counter(decide(lq, REQ, [Candidate("a"), Candidate("b")]).backend_id for _ in range(200))
    assert set(picks) == {"a", "b"}
    assert min(picks.values()) > 60


def with_system(prompt: str | None) -> RequestFeatures:
    return RequestFeatures(model="m", stream=False, system_prompt=prompt)


def test_cache_aware_same_system_prompt_same_backend_until_queue_passes_threshold() -> None:
    ca = policy("cache_aware", queue_threshold=2)
    fleet = [Candidate(f"b{i}", ttft_ewma_s=0.1) for i in range(4)]
    first = decide(ca, with_system("You are a pirate."), fleet)
    assert first.reason == "affinity"
    for waiting in (0, 1, 2):
        loaded = [Candidate(c.id, waiting=waiting if c.id == first.backend_id else 0, ttft_ewma_s=0.1) for c in fleet]
        assert decide(ca, with_system("You are a pirate."), loaded).backend_id == first.backend_id
    over = [Candidate(c.id, waiting=3 if c.id == first.backend_id else 0, ttft_ewma_s=0.1) for c in fleet]
    spilled = decide(ca, with_system("You are a pirate."), over)
    assert spilled.reason == "spill"
    assert spilled.backend_id != first.backend_id


def test_cache_aware_spreads_distinct_system_prompts() -> None:
    ca = policy("cache_aware")
    fleet = [Candidate(f"b{i}") for i in range(4)]
    picks = Counter(decide(ca, with_system(f"tenant {t}"), fleet).backend_id for t in range(400))
    assert set(picks) == {"b0", "b1", "b2", "b3"}
    assert min(picks.values()) > 60


def test_cache_aware_without_system_prompt_uses_least_queue() -> None:
    decision = decide(policy("cache_aware"), with_system(None), [Candidate("a", waiting=5), Candidate("b")])
    assert (decision.backend_id, decision.reason) == ("b", "no_system_prompt")


def test_rendezvous_moves_only_the_leavers_keys() -> None:
    members = [(f"b{i}", 1.0) for i in range(5)]
    before = {k: rendezvous_order(str(k), members)[0] for k in range(500)}
    after = {k: rendezvous_order(str(k), members[:-1])[0] for k in range(500)}
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {k for k in before if before[k] == "b4"}


def test_rendezvous_respects_weights() -> None:
    picks = Counter(rendezvous_order(str(k), [("heavy", 3.0), ("light", 1.0)])[0] for k in range(2000))
    assert 2.4 < picks["heavy"] / picks["light"] < 3.8
