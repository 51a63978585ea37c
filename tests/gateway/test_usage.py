import json

import pytest

from gateway.errors import BadRequest
from gateway.usage import UsageTap, usage_of, with_usage

USAGE = (
    b'data: {"id":"x","choices":[],"usage":{"prompt_tokens":90,"completion_tokens":3,'
    b'"prompt_tokens_details":{"cached_tokens":64}}}\n\n'
)
TOKEN = b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    ("body", "added"),
    [
        pytest.param(b'{"model": "m", "stream": true}', True, id="none"),
        pytest.param(b'{"model": "m", "stream_options": {"include_usage": true}}', False, id="client-asked"),
        pytest.param(b'{"model": "m", "stream_options": {"continuous_usage_stats": true}}', True, id="other-options"),
    ],
)
def test_with_usage_always_asks_upstream(body: bytes, added: bool) -> None:
    sent, strip = with_usage(body)
    assert strip is added
    parsed = json.loads(sent)
    assert parsed["stream_options"]["include_usage"] is True
    assert parsed["model"] == "m"
    if b"continuous" in body:
        assert parsed["stream_options"]["continuous_usage_stats"] is True


def test_with_usage_rejects_non_object_options() -> None:
    with pytest.raises(BadRequest):
        with_usage(b'{"model": "m", "stream_options": "yes"}')


def test_tap_strips_the_usage_event_it_added_and_keeps_the_numbers() -> None:
    tap = UsageTap(strip=True)
    out = tap.feed(TOKEN + TOKEN) + tap.feed(USAGE + DONE) + tap.flush()
    assert out == TOKEN + TOKEN + DONE
    assert tap.usage is not None
    assert (tap.usage.prompt_tokens, tap.usage.cached_tokens) == (90, 64)
    assert tap.events == 4


def test_tap_keeps_usage_the_client_asked_for() -> None:
    tap = UsageTap(strip=False)
    stream = TOKEN + USAGE + DONE
    assert tap.feed(stream) == stream
    assert tap.usage is not None
    assert tap.usage.completion_tokens == 3


def test_tap_reassembles_events_split_across_reads() -> None:
    tap = UsageTap(strip=True)
    stream = TOKEN + USAGE + DONE
    out = b"".join(tap.feed(stream[i : i + 7]) for i in range(0, len(stream), 7)) + tap.flush()
    assert out == TOKEN + DONE
    assert tap.usage is not None


def test_usage_of_a_whole_answer() -> None:
    usage = usage_of(b'{"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}')
    assert usage is not None
    assert usage.cached_tokens is None
    assert usage_of(b"not json") is None
