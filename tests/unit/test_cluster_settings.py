"""REDIS_CLUSTER_URLS: read, or refused at start naming the bad value; what it turns off."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infrastructure.redis.client import ClusterSeeds
from infrastructure.settings import Settings

SEEDS = "redis://10.0.0.1:7000, redis://10.0.0.2:7001/0,"


def test_the_seeds_are_host_port_pairs_with_the_first_url_s_credentials() -> None:
    seeds = ClusterSeeds.parse("rediss://app:s%40cret@10.0.0.1:7000,redis://[::1]:7001")
    assert seeds == ClusterSeeds(
        (("10.0.0.1", 7000), ("::1", 7001)), tls=True, username="app", password="s@cret"
    )
    assert seeds.url_of(("::1", 7001)) == "rediss://app:s%40cret@[::1]:7001/0"
    assert ClusterSeeds.parse(" , ") is None


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("10.0.0.1:7000", "is not redis://host:port"),
        ("http://10.0.0.1:7000", "is not redis://host:port"),
        ("redis://10.0.0.1", "is not redis://host:port"),
        ("redis://10.0.0.1:port", "is not redis://host:port"),
        ("redis://10.0.0.1:7000/3", "database 0 only"),
    ],
)
def test_a_seed_that_is_not_a_cluster_node_url_is_refused(spec: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        Settings(redis_cluster_urls=f"redis://10.0.0.9:7000,{spec}")


def test_a_cluster_takes_precedence_and_keeps_every_script_in_one_slot() -> None:
    settings = Settings(redis_url="redis://10.0.0.3:6379/0", redis_cluster_urls=SEEDS)
    assert settings.cluster == ClusterSeeds((("10.0.0.1", 7000), ("10.0.0.2", 7001)))
    # lock:task:<id> is in a slot of its own: the lock goes through pottery, never a
    # queue's script.
    assert not settings.locks_with_tasks
    assert Settings(redis_cluster_urls="").cluster is None
    assert Settings().locks_with_tasks


def test_a_cluster_with_sentinels_or_enqueue_replicas_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="set one"):
        Settings(redis_cluster_urls=SEEDS, redis_sentinels="10.0.0.1:26379")
    with pytest.raises(ValidationError, match="ENQUEUE_REPLICAS is not supported on a Cluster"):
        Settings(redis_cluster_urls=SEEDS, enqueue_replicas=1)
