"""tests/redis_cluster.py: real Redis Clusters on loopback come up whole, place queues on
distinct masters, and move slots so that clients meet MOVED and ASK."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.exceptions import AskError, MovedError

from infrastructure.embedded_redis import redis_answers
from tests.redis_cluster import RedisClusterServers, queue_key, slot_of


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One 3-master cluster for the module (each takes Redis two seconds to call itself
    ok): the tests below move slots but never stop a master, and use keys of their own."""
    with RedisClusterServers(tmp_path_factory.mktemp("cluster"), masters=3) as started:
        yield started


@pytest.fixture
def cluster_client(cluster: RedisClusterServers) -> Iterator[redis.RedisCluster]:
    with contextlib.closing(cluster.cluster_client()) as client:
        yield client


def test_three_masters_come_up_ok_with_every_slot_covered(cluster: RedisClusterServers) -> None:
    assert len(cluster.ports) == len(set(cluster.ports)) == 3
    assert cluster.urls == [f"redis://127.0.0.1:{port}/0" for port in cluster.ports]
    assert cluster.cluster_urls == ",".join(cluster.urls)
    for port in cluster.ports:
        with contextlib.closing(cluster.client(port)) as client:
            info = client.cluster("INFO")
            assert info["cluster_state"] == "ok", (port, info)
            assert int(info["cluster_slots_assigned"]) == 16384
            assert int(info["cluster_known_nodes"]) == 3
        slots = cluster.slot_map(port)
        assert slots == cluster.slot_map(cluster.ports[0])  # every node agrees
        assert {owner for _, _, owner in slots} == set(cluster.ports)


def test_queues_on_distinct_shards_land_on_distinct_masters(
    cluster: RedisClusterServers, cluster_client: redis.RedisCluster
) -> None:
    names = cluster.queues_on_distinct_shards(3)
    assert len(set(names)) == 3
    owners = [cluster.node_of(queue_key(name)) for name in names]
    assert sorted(owners) == sorted(cluster.ports)
    for name, owner in zip(names, owners, strict=True):
        key = f"{queue_key(name)}pending"
        cluster_client.set(key, name)  # through the cluster: stored where node_of says
        with contextlib.closing(cluster.client(owner)) as client:
            assert client.get(key) == name
    with pytest.raises(ValueError, match="distinct shards"):
        cluster.queues_on_distinct_shards(4)


def test_a_key_set_through_a_cluster_client_is_readable(
    cluster: RedisClusterServers, cluster_client: redis.RedisCluster
) -> None:
    for n in range(50):
        cluster_client.set(f"key-{n}", n)
    assert [cluster_client.get(f"key-{n}") for n in range(50)] == [str(n) for n in range(50)]
    assert len({cluster.node_of(f"key-{n}") for n in range(50)}) == 3


def test_migrate_slot_moves_the_keys_and_clients_follow(
    cluster: RedisClusterServers, cluster_client: redis.RedisCluster
) -> None:
    key, neighbour = "{moving}a", "{moving}b"
    cluster_client.set(key, "one")
    cluster_client.set(neighbour, "two")
    old = cluster.node_of(key)
    new = next(port for port in cluster.ports if port != old)

    migration = cluster.migrate_slot(slot_of(key), new)

    assert (migration.source, migration.target) == (old, new)
    assert cluster.node_of(key) == new
    for port in cluster.ports:
        assert cluster.slot_map(port) == cluster.slot_map()
    assert cluster_client.get(key) == "one"  # its cached map said `old`: MOVED, followed
    assert cluster_client.get(neighbour) == "two"
    with contextlib.closing(cluster.client(new)) as client:
        assert client.get(key) == "one"
    with contextlib.closing(cluster.client(old)) as client, pytest.raises(MovedError):
        client.get(key)


def test_a_half_done_migration_answers_ask_for_the_keys_already_moved(
    cluster: RedisClusterServers, cluster_client: redis.RedisCluster
) -> None:
    moved, stayed = "{half}moved", "{half}stayed"
    cluster_client.set(moved, "there")
    cluster_client.set(stayed, "here")
    old = cluster.node_of(moved)
    new = next(port for port in cluster.ports if port != old)

    migration = cluster.begin_migration(slot_of(moved), new, keys=[moved])

    with contextlib.closing(cluster.client(old)) as client:
        with pytest.raises(AskError) as asked:
            client.get(moved)
        assert not isinstance(asked.value, MovedError)
        assert asked.value.node_addr == ("127.0.0.1", new)
        assert client.get(stayed) == "here"  # not moved yet: still served by the old owner
    assert cluster.node_of(moved) == old  # the slot is not given away before the finish
    assert cluster_client.get(moved) == "there"  # a cluster client follows the ASK

    cluster.finish_migration(migration)
    assert cluster.node_of(moved) == new
    with contextlib.closing(cluster.client(new)) as client:
        assert client.mget(moved, stayed) == ["there", "here"]


@pytest.mark.parametrize("masters", [1, 2])
def test_one_or_two_masters_come_up_ok_and_stop_one_by_one(tmp_path: Path, masters: int) -> None:
    with RedisClusterServers(tmp_path, masters) as cluster:
        assert len(cluster.ports) == masters
        assert {owner for _, _, owner in cluster.slot_map()} == set(cluster.ports)
        for port in cluster.ports:
            with contextlib.closing(cluster.client(port)) as client:
                assert client.cluster("INFO")["cluster_state"] == "ok"
        assert len(cluster.queues_on_distinct_shards(masters)) == masters
        keys = [f"key-{n}" for n in range(20)]
        with contextlib.closing(cluster.cluster_client()) as client:
            for n, key in enumerate(keys):
                client.set(key, n)
            assert client.mget_nonatomic(keys) == [str(n) for n in range(20)]

        killed, *others = cluster.ports
        process = cluster.processes[killed]
        cluster.kill(killed)
        assert process.poll() is not None
        assert not redis_answers(cluster.urls[0])
        assert sorted(cluster.processes) == sorted(others)
        assert all(redis_answers(url) for url in cluster.urls[1:])
    assert not cluster.processes  # the context stopped the rest
    assert not any(redis_answers(url) for url in cluster.urls)


def test_a_start_that_fails_leaves_no_process_behind(tmp_path: Path) -> None:
    cluster = RedisClusterServers(tmp_path, binary="/bin/false", timeout_s=5)
    with pytest.raises(RuntimeError, match="exited"):
        cluster.start()
    assert not cluster.processes
    assert not cluster.logs
