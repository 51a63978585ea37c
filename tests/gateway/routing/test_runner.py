"""The runner contract exchange.py codes against: prepare, filter, plan, decide, receipt, timing."""

import random

import pytest

from coordination.scoring import evaluate
from gateway.config import RoutingConfig
from gateway.fleet.backends import Backend, BackendSpec
from gateway.fleet.view import FleetView
from gateway.routing.runner import RouteDecision, build_router
from gateway.routing.types import RequestFeatures

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


def test_runner_reports_plugin_time_to_the_timer() -> None:
    calls: list[tuple[str, str, str, float]] = []
    router = build_router(RoutingConfig(policy="least_queue"), random.Random(1), lambda *call: calls.append(call))
    fleet = view(backend("a"))
    router.plan(RequestFeatures("m", False), fleet.backends, fleet)
    assert [c[:3] for c in calls] == [("scorer", "least_queue", "least_queue")]
    assert calls[0][3] >= 0.0
