"""The official openai client talks to a simulated server directly."""

from __future__ import annotations

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.loadtests.sim.sim_helpers import tiny_fleet

MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a careful assistant. " * 30},
    {"role": "user", "content": "Say something."},
]


async def test_openai_client_chat_non_stream_and_stream() -> None:
    async with tiny_fleet(model=MODEL) as fleet:
        client = AsyncOpenAI(base_url=fleet.servers[0].url + "/v1", api_key="sim", max_retries=0)
        async with client:
            models = await client.models.list()
            first = await client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=6)
            stream = await client.chat.completions.create(
                model=MODEL,
                messages=MESSAGES,
                max_completion_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
    assert [m.id for m in models.data] == [MODEL]
    assert first.choices[0].message.content
    assert first.choices[0].finish_reason == "length"
    assert first.usage is not None
    assert first.usage.completion_tokens == 6
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) == 16
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 4
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == (usage.prompt_tokens - 1) // 32 * 32
