"""The runner contract exchange.py codes against: prepare, filter, plan, decide, receipt, timing."""

import random
from collections.abc import Callable

import pytest

from coordination.scoring import evaluate
from gateway.config import PresetConfig, RoutingConfig, ScorerConfig
from gateway.fleet.backends import Backend, BackendSpec
from gateway.fleet.view import FleetView
from gateway.routing.presets import build_scorer, resolve
from gateway.routing.runner import RouteDecision, build_router
from gateway.routing.scorers.context import BuildContext
from gateway.routing.types import Candidate, RequestFeatures

REQ = RequestFeatures("m", False)
PROMPT = "x" * 1000  # 3 full blocks of 256 characters


def backend(backend_id: str, *, models: frozenset[str] = frozenset({"m"}), healthy: bool = True) -> Backend:
    return Backend(BackendSpec(backend_id, f"http://{backend_id}", models), healthy=healthy)


def view(*backends: Backend, now: float = 100.0) -> FleetView:
    return FleetView(backends, {}, now)


@pytest.mark.parametrize(
    ("policy", "hashed"),
    [
        pytest.param("prefix", True, id="prefix-reads-blocks"),
        pytest.param("round_robin", False, id="round-robin-does-not"),
        pytest.param("least_queue", False, id="least-queue-does-not"),
        pytest.param("cache_aware", False, id="cache-aware-does-not"),
    ],
)
def test_prepare_hashes_prefix_blocks_only_for_policies_that_read_them(policy: str, hashed: bool) -> None:
    router = build_router(RoutingConfig(policy=policy), random.Random(1))
    features = router.prepare(RequestFeatures("m", False, prompt_text=PROMPT))
    assert router.name == policy
    assert len(features.prefix_blocks) == (3 if hashed else 0)


def test_prepare_respects_block_settings() -> None:
    config = RoutingConfig(prefix_block_chars=100, prefix_max_blocks=4)
    features = build_router(config, random.Random(1)).prepare(RequestFeatures("m", False, prompt_text=PROMPT))
    assert len(features.prefix_blocks) == 4


@pytest.mark.parametrize(
    ("backends", "excluded", "expected"),
    [
        pytest.param((backend("a"), backend("b")), (), ("a", "b"), id="all-routable"),
        pytest.param((backend("a"), backend("b", models=frozenset({"other"}))), (), ("a",), id="model"),
        pytest.param((backend("a"), backend("b", healthy=False)), (), ("a",), id="unhealthy"),
        pytest.param((backend("a"), backend("b")), ("a",), ("b",), id="excluded"),
        pytest.param((backend("a"),), ("a",), (), id="nothing-left"),
    ],
)
def test_filter_model_health_exclusions(
    backends: tuple[Backend, ...], excluded: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    router = build_router(RoutingConfig(), random.Random(1))
    kept = router.filter(RequestFeatures("m", False), view(*backends), excluded)
    assert tuple(b.id for b in kept) == expected


def test_filter_drops_an_ejected_backend_until_its_ejection_runs_out() -> None:
    ejected = backend("a")
    ejected.ejected_until = 150.0
    router = build_router(RoutingConfig(), random.Random(1))
    assert router.filter(RequestFeatures("m", False), view(ejected, now=100.0), ()) == ()
    assert router.filter(RequestFeatures("m", False), view(ejected, now=150.0), ()) == (ejected,)


def test_plan_decide_and_receipt_for_prefix() -> None:
    router = build_router(RoutingConfig(policy="prefix"), random.Random(1))
    fleet = view(backend("a"), backend("b"))
    features = router.prepare(RequestFeatures("m", False, prompt_text=PROMPT))
    plan = router.plan(features, router.filter(features, fleet, ()), fleet)
    pick = evaluate(plan.pick_request(), {}, {"b": 2})
    decision = router.decide(plan, pick)
    assert (decision.backend_id, decision.policy, decision.reason) == ("b", "prefix", "affinity")
    assert plan.backend("b").spec.url == "http://b"
    assert decision.predicted_cached_tokens == 2 * 256 // 4
    receipt = dict(p.split("=", 1) for p in decision.receipt(attempts=2).split("; "))
    assert (receipt["policy"], receipt["reason"], receipt["attempts"]) == ("prefix", "affinity", "2")
    assert (receipt["cached_blocks"], receipt["predicted_cached_tokens"]) == ("2", "128")


def test_round_robin_receipt_has_no_prefix_numbers() -> None:
    router = build_router(RoutingConfig(policy="round_robin"), random.Random(1))
    fleet = view(backend("a"), backend("b"))
    features = router.prepare(RequestFeatures("m", False, prompt_text=PROMPT))
    plan = router.plan(features, router.filter(features, fleet, ()), fleet)
    decision = router.decide(plan, evaluate(plan.pick_request(), {}, {}))
    assert decision.predicted_cached_tokens is None
    assert decision.receipt(1).startswith("policy=round_robin; reason=turn; attempts=1")
    assert "cached_blocks" not in decision.receipt(1)


def test_receipt_formats_parts_with_four_significant_digits() -> None:
    decision = RouteDecision("a", "least_queue", "least_score", {"latency_s": 0.123456, "in_flight": 3.0})
    assert decision.receipt(1) == "policy=least_queue; reason=least_score; attempts=1; latency_s=0.1235; in_flight=3"


def test_runner_times_every_filter_scorer_and_picker_with_labels_bound_once() -> None:
    bound: list[tuple[str, str, str]] = []
    observed: list[tuple[tuple[str, str, str], float]] = []

    def timer(point: str, plugin_type: str, name: str) -> Callable[[float], None]:
        bound.append((point, plugin_type, name))
        return lambda seconds: observed.append(((point, plugin_type, name), seconds))

    router = build_router(RoutingConfig(policy="cache_aware"), random.Random(1), timer, timing_every=1)
    plugins = [
        ("filter", "model", "model"),
        ("filter", "healthy", "healthy"),
        ("filter", "not_excluded", "not_excluded"),
        ("scorer", "system_prompt", "system_prompt"),
        ("scorer", "least_queue", "least_queue"),
        ("picker", "max_score", "max_score"),
    ]
    assert sorted(bound) == sorted(plugins)
    fleet = view(backend("a"))
    for _ in range(2):
        router.plan(RequestFeatures("m", False), router.filter(RequestFeatures("m", False), fleet, ()), fleet)
    assert len(bound) == len(plugins)  # bound at build time, not per request
    assert sorted(name for name, _ in observed) == sorted(plugins * 2)
    assert all(seconds >= 0.0 for _, seconds in observed)


def candidates_at_random(rng: random.Random, n: int) -> list[Candidate]:
    return [
        Candidate(
            f"b{i}",
            waiting=rng.randrange(6),
            in_flight=rng.randrange(6),
            kv_usage=rng.random(),
            ttft_ewma_s=rng.choice([None, 0.05, 0.2, 0.5]),
        )
        for i in range(n)
    ]


def test_the_store_picks_the_highest_weighted_clamped_score() -> None:
    preset = PresetConfig(
        scorers=[ScorerConfig(type="load", weight=2.0), ScorerConfig(type="kv_usage", weight=0.5),
                 ScorerConfig(type="least_queue", weight=1.5)]
    )  # fmt: skip
    config = RoutingConfig(policy="mixed", presets={"mixed": preset})
    router = build_router(config, random.Random(3))
    scorers = [(build_scorer(s, BuildContext(random.Random(0))), s.weight) for s in resolve(config).scorers]
    rng = random.Random(11)
    for _ in range(200):
        cands = candidates_at_random(rng, rng.randrange(1, 7))
        plan = router.plan_candidates(REQ, cands)
        pick = evaluate(plan.pick_request(), {c.id: c.in_flight for c in cands}, {})
        ratings = [s.score(REQ, cands) for s, _ in scorers]
        weights = [w for _, w in scorers]
        totals = [
            sum(w * min(max(r.values[i], 0.0), 1.0) for r, w in zip(ratings, weights, strict=True))
            for i in range(len(cands))
        ]
        assert totals[[c.id for c in cands].index(pick.backend_id)] == pytest.approx(max(totals))
        assert 0.0 - pick.score == pytest.approx(max(totals))


def test_in_flight_beyond_the_snapshot_moves_the_score_at_the_store() -> None:
    router = build_router(RoutingConfig(policy="least_queue"), random.Random(1))
    plan = router.plan_candidates(REQ, [Candidate("a", ttft_ewma_s=0.1), Candidate("b", in_flight=1, ttft_ewma_s=0.1)])
    assert evaluate(plan.pick_request(), {"a": 0, "b": 1}, {}).backend_id == "a"
    # other replicas reserved a three times since this replica's snapshot: the store sees it, b wins
    assert evaluate(plan.pick_request(), {"a": 3, "b": 1}, {}).backend_id == "b"


def test_a_rating_outside_zero_one_is_clamped_at_the_snapshot() -> None:
    router = build_router(
        RoutingConfig(policy="x", presets={"x": PresetConfig(scorers=[ScorerConfig(type="load")])}), random.Random(1)
    )
    cands = [Candidate("a"), Candidate("b"), Candidate("c", waiting=30)]  # mean 10: c's raw rating 1 - 30/22 < 0
    lines = {line.backend_id: line for line in router.plan_candidates(REQ, cands).pick_request().lines}
    assert lines["c"].base == 0.0
    assert lines["a"].base == -1.0


def test_round_robin_shows_the_store_every_candidate_with_the_turn_on_top() -> None:
    router = build_router(RoutingConfig(policy="round_robin"), random.Random(1))
    cands = [Candidate("a"), Candidate("b"), Candidate("c")]
    request = router.plan_candidates(REQ, cands).pick_request()
    assert sorted(line.backend_id for line in request.lines) == ["a", "b", "c"]  # admission counts all of them
    assert sorted(line.base for line in request.lines) == [0.0, 1.0, 1.0]


def test_ties_fall_at_random_but_the_same_seed_gives_the_same_picks() -> None:
    cands = [Candidate("a"), Candidate("b"), Candidate("c")]

    def picks(seed: int) -> list[str]:
        router = build_router(RoutingConfig(policy="least_queue"), random.Random(seed))
        return [evaluate(router.plan_candidates(REQ, cands).pick_request(), {}, {}).backend_id for _ in range(30)]

    assert picks(5) == picks(5)
    assert set(picks(5)) == {"a", "b", "c"}


def test_plugins_are_timed_on_one_call_in_sixteen_by_default() -> None:
    observed: list[str] = []
    router = build_router(
        RoutingConfig(policy="least_queue"), random.Random(1), lambda *p: lambda s: observed.append(p[1])
    )
    fleet = view(backend("a"))
    for _ in range(32):
        router.plan(REQ, router.filter(REQ, fleet, ()), fleet)
    assert sorted(observed) == sorted(["model", "healthy", "not_excluded", "least_queue", "max_score"] * 2)
