import pytest

from gateway.errors import BadRequest
from gateway.openai_request import chat_features, completion_features


def test_chat_system_prompt_is_the_leading_system_and_developer_messages() -> None:
    body = (
        b'{"model": "m", "stream": true, "temperature": 0.2, "messages": ['
        b'{"role": "system", "content": "A"}, {"role": "developer", "content": [{"type": "text", "text": "B"}]},'
        b'{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}]}'
    )
    features = chat_features(body)
    assert (features.model, features.stream, features.system_prompt) == ("m", True, "A\nB")
    assert features.prompt_chars == len("ABhilate")


def test_chat_without_system_prompt() -> None:
    features = chat_features(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": null}')
    assert features.system_prompt is None
    assert features.stream is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param(b"", None, id="empty"),
        pytest.param(b"{not json", None, id="malformed"),
        pytest.param(b'{"messages": []}', None, id="no-model"),
        pytest.param(b'{"model": 7, "messages": []}', "model", id="model-not-string"),
        pytest.param(b'{"model": "m", "messages": [{"content": "x"}]}', "messages[0]", id="message-without-role"),
        pytest.param(b'{"model": "m", "messages": []}', "messages", id="no-messages"),
        pytest.param(b'{"model": "m", "messages": [], "stream": "yes"}', "stream", id="stream-not-bool"),
    ],
)
def test_bad_chat_bodies_are_400_naming_the_field(body: bytes, param: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        chat_features(body)
    assert info.value.status == 400
    assert info.value.param == param


@pytest.mark.parametrize(
    ("prompt", "text"),
    [
        pytest.param(b'"hello"', "hello", id="string"),
        pytest.param(b'["ab", "cde"]', "ab", id="batch-routes-by-first"),
        pytest.param(b"[1, 2, 3]", "1 2 3", id="token-ids"),
    ],
)
def test_completion_prompt_forms(prompt: bytes, text: str) -> None:
    features = completion_features(b'{"model": "m", "cache_salt": "s", "prompt": ' + prompt + b"}")
    assert features.prompt_text == text
    assert features.cache_salt == "s"


def test_chat_canonical_text_is_role_aware() -> None:
    messages = b'[{"role": "system", "content": "S"}, {"role": "user", "name": "u1", "content": "Q"}]'
    body = b'{"model": "m", "messages": ' + messages + b"}"
    assert chat_features(body).prompt_text == "<|system|>\nS\n<|user:u1|>\nQ\n"


@pytest.mark.parametrize("prompt", [b"7", b"[]", b"null", b'[1, "x"]'])
def test_bad_completion_prompt(prompt: bytes) -> None:
    with pytest.raises(BadRequest):
        completion_features(b'{"model": "m", "prompt": ' + prompt + b"}")
