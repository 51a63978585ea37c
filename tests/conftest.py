from collections.abc import Iterator

import pytest
import redis

from tests.redis_server import redis_url


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    with redis_url() as url:
        yield url


@pytest.fixture
def clean_redis_url(redis_server_url: str) -> str:
    """The session's Redis, emptied for this test."""
    with redis.Redis.from_url(redis_server_url) as client:
        client.flushall()
    return redis_server_url
