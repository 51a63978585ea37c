from __future__ import annotations

import pytest

from loadtests.sim.tokenizer import PromptError, count_tokens, render_chat, tokenize, tokenize_chat

TEXTS = {
    "ascii": "You are a helpful assistant. Answer briefly and cite sources.",
    "unicode": "Grüße aus Köln — 東京の天気は晴れ 🌤️ and more text after it",
    "short": "ab",
    "empty": "",
}


@pytest.mark.parametrize("text", TEXTS.values(), ids=TEXTS.keys())
def test_deterministic_and_counted(text: str) -> None:
    assert tokenize(text) == tokenize(text)
    assert len(tokenize(text)) == count_tokens(text) == -(-len(text.encode()) // 4)


@pytest.mark.parametrize("text", [TEXTS["ascii"], TEXTS["unicode"]], ids=["ascii", "unicode"])
def test_prefix_stable(text: str) -> None:
    whole = tokenize(text)
    for cut in range(len(text) + 1):
        prefix = text[:cut]
        k = len(prefix.encode()) // 4
        assert tokenize(prefix)[:k] == whole[:k], cut


def test_different_text_different_tokens() -> None:
    assert tokenize("abcd") != tokenize("abce")


def test_shared_system_prompt_gives_shared_token_prefix() -> None:
    system = {"role": "system", "content": "You are the billing assistant of ACME. " * 20}
    a = tokenize_chat([system, {"role": "user", "content": "Where is my invoice?"}])
    b = tokenize_chat([system, {"role": "user", "content": "Cancel my plan, please."}])
    shared = len(render_chat([system], add_generation_prompt=False).encode()) // 4
    assert a[:shared] == b[:shared]
    assert a != b
    assert shared > 150


def test_chat_template_shape_and_content_parts() -> None:
    text = render_chat([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert text == render_chat([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    "messages",
    [[], [{"content": "no role"}], [{"role": "user", "content": [{"type": "image_url"}]}], ["text"]],
    ids=["empty", "no-role", "image-part", "not-an-object"],
)
def test_bad_messages(messages: list[object]) -> None:
    with pytest.raises(PromptError):
        render_chat(messages)
