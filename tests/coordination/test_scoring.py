"""The reference evaluation of a pick request (the Redis script is held to the same table)."""

import pytest

from coordination.scoring import PickRequest, ScoreLine, evaluate

A, B, C = "a", "b", "c"


@pytest.mark.parametrize(
    ("request_", "in_flight", "cached", "expected", "guarded"),
    [
        pytest.param(PickRequest((ScoreLine(A, 1.0), ScoreLine(B, 0.5))), {}, {}, B, False, id="lowest-base"),
        pytest.param(PickRequest((ScoreLine(A, 1.0), ScoreLine(B, 1.0))), {}, {}, A, False, id="tie-first-line"),
        pytest.param(
            PickRequest((ScoreLine(A, 0.0, per_in_flight=1.0), ScoreLine(B, 1.5, per_in_flight=1.0))),
            {A: 2},
            {},
            B,
            False,
            id="in-flight-counts",
        ),
        pytest.param(
            PickRequest((ScoreLine(A, 1.0, per_cached_block=0.1), ScoreLine(B, 0.5, per_cached_block=0.1))),
            {},
            {A: 6},
            A,
            False,
            id="cached-blocks-win",
        ),
        pytest.param(
            # a is far above the mean load: its affinity bonus is withheld, b wins on base
            PickRequest(
                (ScoreLine(A, 1.0, per_cached_block=0.1, queue=10), ScoreLine(B, 0.5, per_cached_block=0.1)),
                guard_eps=0.5,
            ),
            {},
            {A: 6},
            B,
            False,
            id="bounded-load-guard",
        ),
    ],
)
def test_evaluate(
    request_: PickRequest, in_flight: dict[str, int], cached: dict[str, int], expected: str, guarded: bool
) -> None:
    pick = evaluate(request_, in_flight, cached)
    assert pick.backend_id == expected
    assert pick.guarded is guarded
    assert pick.in_flight == in_flight.get(expected, 0)


def test_guard_flag_reported_when_the_guarded_backend_still_wins() -> None:
    pick = evaluate(PickRequest((ScoreLine(A, 0.0, per_cached_block=1.0, queue=9),), guard_eps=0.1), {}, {A: 3})
    assert (pick.backend_id, pick.guarded, pick.cached_blocks) == (A, False, 3)  # alone: mean is its own load


def test_empty_request_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        evaluate(PickRequest(()), {}, {})
