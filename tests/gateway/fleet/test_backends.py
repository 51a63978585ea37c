import pytest

from gateway.config import DnsDiscoveryConfig, HealthConfig
from gateway.fleet.backends import BackendSpec, Fleet
from gateway.fleet.discovery import dns_backends
from gateway.fleet.vllm_metrics import EngineStats

STATS = EngineStats(1, 0, 0.1, 0, 0, 16, 100, frozenset({"m"}))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fleet_of(n: int, clock: Clock, **health: float) -> Fleet:
    fleet = Fleet(HealthConfig(**health), clock)  # type: ignore[arg-type]
    fleet.set_members(BackendSpec(f"b{i}", f"http://b{i}", frozenset({"m"})) for i in range(n))
    return fleet


def test_backend_is_not_routable_before_a_good_scrape() -> None:
    fleet = fleet_of(1, Clock())
    assert fleet.routable("m") == []
    fleet.record_scrape("b0", STATS)
    assert [b.id for b in fleet.routable("m")] == ["b0"]


def test_failed_scrapes_mark_unhealthy_and_good_ones_bring_back() -> None:
    fleet = fleet_of(1, Clock(), unhealthy_threshold=2, healthy_threshold=2)
    fleet.record_scrape("b0", STATS)
    fleet.record_scrape("b0", STATS)
    fleet.record_scrape("b0", None)
    assert fleet.ready()  # one failure is a blip
    fleet.record_scrape("b0", None)
    assert not fleet.ready()
    fleet.record_scrape("b0", STATS)
    assert not fleet.ready()
    fleet.record_scrape("b0", STATS)
    assert fleet.ready()


def test_consecutive_errors_eject_until_time_and_probes() -> None:
    clock = Clock()
    fleet = fleet_of(4, clock, consecutive_errors=2, base_ejection_s=5, healthy_threshold=1)
    for i in range(4):
        fleet.record_scrape(f"b{i}", STATS)
    assert not fleet.record_failure("b0")
    fleet.record_success("b0")  # a success resets the run
    assert not fleet.record_failure("b0")
    assert fleet.record_failure("b0")
    assert "b0" not in fleet.routable_ids()
    clock.now += 4.9
    fleet.record_scrape("b0", STATS)
    assert "b0" not in fleet.routable_ids()  # still ejected
    clock.now += 0.2
    assert "b0" in fleet.routable_ids()


def test_ejection_respects_max_percent() -> None:
    fleet = fleet_of(4, Clock(), consecutive_errors=1, max_ejection_percent=50)
    for i in range(4):
        fleet.record_scrape(f"b{i}", STATS)
    assert [fleet.record_failure(f"b{i}") for i in range(4)] == [True, True, False, False]


def test_unknown_model_vs_unlearned_backend() -> None:
    fleet = fleet_of(1, Clock())
    assert fleet.knows_model("m")
    assert not fleet.knows_model("other")
    fleet.set_members([BackendSpec("x", "http://x")])  # models not configured nor learned yet
    assert fleet.knows_model("other")
    fleet.record_scrape("x", STATS)
    assert not fleet.knows_model("other")
    assert fleet.served_models() == ["m"]


def test_membership_change_keeps_state_of_stayers() -> None:
    fleet = fleet_of(2, Clock())
    fleet.record_scrape("b0", STATS)
    fleet.set_members([BackendSpec("b0", "http://b0", frozenset({"m"})), BackendSpec("b9", "http://b9")])
    assert set(fleet.backends) == {"b0", "b9"}
    assert fleet.backends["b0"].healthy


@pytest.mark.parametrize(
    ("addresses", "ids", "urls"),
    [
        pytest.param(["10.0.0.1"], ["10.0.0.1:8000"], ["http://10.0.0.1:8000"], id="ipv4"),
        pytest.param(["fd00::1"], ["[fd00::1]:8000"], ["http://[fd00::1]:8000"], id="ipv6"),
        pytest.param([], [], [], id="none"),
    ],
)
def test_dns_records_become_backends(addresses: list[str], ids: list[str], urls: list[str]) -> None:
    specs = dns_backends(DnsDiscoveryConfig(name="vllm.default.svc", models=["m"]), addresses)
    assert [s.id for s in specs] == ids
    assert [s.url for s in specs] == urls


async def test_dns_watch_resolves_a_real_name_and_keeps_the_list_on_failure() -> None:
    import asyncio

    from gateway.fleet.discovery import resolve_addresses, watch_dns

    seen: list[list[str]] = []
    calls = 0
    published_twice = asyncio.Event()

    async def flaky(name: str, port: int) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("DNS blip")
        return await resolve_addresses(name, port)

    def publish(specs: list[BackendSpec]) -> None:
        seen.append([s.url for s in specs])
        if len(seen) == 2:
            published_twice.set()

    config = DnsDiscoveryConfig(name="localhost", port=8000, models=["m"], refresh_s=0.01)
    task = asyncio.create_task(watch_dns(config, publish, flaky))
    await asyncio.wait_for(published_twice.wait(), 5)
    task.cancel()
    assert "http://127.0.0.1:8000" in seen[0]
    assert calls == 3  # the failed lookup in between published nothing: the list stayed as it was
    assert seen[0] == seen[1]
