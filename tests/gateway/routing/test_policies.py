"""Each built-in preset's choice on crafted fleet snapshots (no network: plugins are pure)."""

import importlib
import random
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest

from coordination.scoring import evaluate
from gateway.config import PresetConfig, RoutingConfig, ScorerConfig
from gateway.routing.hashing import rendezvous_order
from gateway.routing.presets import BUILT_IN, SCORERS
from gateway.routing.runner import RouteDecision, Router, build_router
from gateway.routing.types import Candidate, RequestFeatures

REQ = RequestFeatures(model="m", stream=False)


def policy(name: str, seed: int = 7, **presets: PresetConfig) -> Router:
    return build_router(RoutingConfig(policy=name, presets=presets), random.Random(seed))


def decide(
    router: Router, request: RequestFeatures, cands: Sequence[Candidate], cached: Mapping[str, int] | None = None
) -> RouteDecision:
    """Plan, then evaluate as the store would, against the candidates' own in-flight counts."""
    plan = router.plan_candidates(request, cands)
    return router.decide(plan, evaluate(plan.pick_request(), {c.id: c.in_flight for c in cands}, cached or {}))


def scorers(*weighted: tuple[str, float], **params: Mapping[str, float]) -> PresetConfig:
    return PresetConfig(scorers=[ScorerConfig(type=t, weight=w, params=dict(params.get(t, {}))) for t, w in weighted])


def test_every_scorer_has_a_documented_formula_and_declares_what_it_reads() -> None:
    for name in SCORERS:
        module = importlib.import_module(f"gateway.routing.scorers.{name}")
        assert name == module.TYPE
        assert module.__doc__
        assert f"``{name}``" in module.__doc__
        assert "value_i" in module.__doc__


def test_every_plugin_reads_only_names_the_runner_knows() -> None:
    from gateway.routing.filters import FILTERS
    from gateway.routing.plugins import READABLE

    declared = [f.reads for f in FILTERS] + [factory.reads for _, factory in SCORERS.values()]  # type: ignore[attr-defined]
    assert all(reads <= READABLE for reads in declared)
    assert all(reads for reads in declared[len(FILTERS) :])  # a scorer that reads nothing rates nothing


def test_every_built_in_preset_builds_under_its_name() -> None:
    assert set(BUILT_IN) == {"prefix", "round_robin", "least_queue", "cache_aware"}
    for name in BUILT_IN:
        assert policy(name).name == name


def test_round_robin_takes_turns_in_id_order_from_a_random_start() -> None:
    rr = policy("round_robin")
    cands = [Candidate("b"), Candidate("a"), Candidate("c")]
    picks = [decide(rr, REQ, cands).backend_id for _ in range(6)]
    assert picks[:3] == picks[3:]
    assert sorted(picks[:3]) == ["a", "b", "c"]
    assert "".join(picks[:3]) in "abcab" + "cabca"  # cyclic order a -> b -> c
    starts = {decide(policy("round_robin", seed=s), REQ, cands).backend_id for s in range(20)}
    assert starts == {"a", "b", "c"}


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
    ca = policy(
        "cache_aware",
        cache_aware=scorers(("system_prompt", 100.0), ("least_queue", 1.0), system_prompt={"queue_threshold": 2}),
    )
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


BLOCKS = tuple(f"h{i}" for i in range(10))


def prefixed(session: str | None = None) -> RequestFeatures:
    return RequestFeatures(model="m", stream=False, prefix_blocks=BLOCKS, session_id=session)


@pytest.mark.parametrize(
    ("cands", "cached", "expected", "reason"),
    [
        pytest.param([Candidate("a"), Candidate("b")], {"b": 10}, "b", "affinity", id="cached-backend-wins"),
        pytest.param(
            [Candidate("a"), Candidate("b", in_flight=2)], {"b": 10}, "b", "affinity", id="affinity-beats-small-load"
        ),
        pytest.param(
            # b is far above the mean load: the guard withholds its cache bonus
            [Candidate("a", in_flight=1), Candidate("b", in_flight=9), Candidate("c", in_flight=2)],
            {"b": 10},
            "a",
            "least_load",
            id="bounded-load-guard",
        ),
        pytest.param(
            [Candidate("a", in_flight=3), Candidate("b", in_flight=1)], {}, "b", "least_load", id="no-cache-least-load"
        ),
        pytest.param(
            [Candidate("a", kv_usage=0.9), Candidate("b", kv_usage=0.1)], {}, "b", "least_load", id="kv-usage-counts"
        ),
        pytest.param(
            # a longer match wins over a shorter one at equal load
            [Candidate("a"), Candidate("b")],
            {"a": 3, "b": 8},
            "b",
            "affinity",
            id="longer-match",
        ),
    ],
)
def test_prefix_policy(cands: list[Candidate], cached: dict[str, int], expected: str, reason: str) -> None:
    decision = decide(policy("prefix"), prefixed(), cands, cached)
    assert (decision.backend_id, decision.reason) == (expected, reason)


def test_prefix_guard_stops_even_a_huge_cache_bonus() -> None:
    cands = [Candidate("a", in_flight=10), Candidate("b", in_flight=0)]
    heavy = scorers(("prefix_cache", 100.0), ("load", 2.0), ("kv_usage", 0.5))
    decision = decide(policy("prefix", prefix=heavy), prefixed(), cands, {"a": 10})
    assert (decision.backend_id, decision.reason) == ("b", "least_load")


def test_prefix_policy_session_sticks_until_overloaded() -> None:
    pr = policy("prefix")
    fleet = [Candidate(f"b{i}") for i in range(4)]
    home = decide(pr, prefixed("session-1"), fleet).backend_id
    assert all(decide(pr, prefixed("session-1"), fleet).backend_id == home for _ in range(10))
    busy = [Candidate(c.id, in_flight=12 if c.id == home else 1) for c in fleet]
    assert decide(pr, prefixed("session-1"), busy).backend_id != home


def test_prefix_policy_caps_index_share_by_kv_capacity() -> None:
    plan = policy("prefix").plan_candidates(prefixed(), [Candidate("a", kv_capacity_tokens=64 * 1000), Candidate("b")])
    request = plan.pick_request()
    caps = dict(zip((line.backend_id for line in request.lines), request.prefix_caps, strict=True))
    assert caps["a"] == 1000  # 64,000 tokens / (256 chars / 4 chars per token)
    assert caps["b"] > caps["a"]  # unknown capacity: the default cap
