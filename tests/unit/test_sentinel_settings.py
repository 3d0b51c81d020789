"""REDIS_SENTINELS and ENQUEUE_REPLICAS: read, or refused at start naming the bad value."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infrastructure.redis.client import Sentinels
from infrastructure.settings import Settings


def test_sentinels_are_host_port_pairs_with_the_master_s_name() -> None:
    settings = Settings(redis_sentinels="10.0.0.1:26379, [::1]:26380,", redis_master_name="q")
    assert settings.sentinels == Sentinels((("10.0.0.1", 26379), ("::1", 26380)), "q")
    assert Settings().sentinels is None


@pytest.mark.parametrize("spec", ["10.0.0.1", "10.0.0.1:", ":26379", "host:port", "h:70000"])
def test_a_sentinel_that_is_not_host_port_is_refused(spec: str) -> None:
    with pytest.raises(ValidationError, match="is not host:port"):
        Settings(redis_sentinels=spec)


def test_enqueue_replicas_must_answer_within_the_redis_timeout() -> None:
    assert Settings(enqueue_replicas=1, enqueue_replicas_timeout_ms=500).enqueue_replicas == 1
    with pytest.raises(ValidationError, match="under REDIS_TIMEOUT_MS"):
        Settings(redis_timeout_ms=1_000, enqueue_replicas_timeout_ms=1_000)
