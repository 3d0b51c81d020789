"""Where a Lane connects and what it sends first, from its URL."""

from __future__ import annotations

import pytest

from infrastructure.redis.lane import Endpoint, Script


def test_a_plain_url() -> None:
    endpoint = Endpoint.parse("redis://10.0.0.5:6380/4")
    assert (endpoint.host, endpoint.port, endpoint.db, endpoint.tls) == ("10.0.0.5", 6380, 4, False)
    assert endpoint.handshake() == [("SELECT", 4)]


def test_defaults() -> None:
    endpoint = Endpoint.parse("redis://")
    assert (endpoint.host, endpoint.port, endpoint.db) == ("localhost", 6379, 0)
    assert endpoint.handshake() == []


def test_a_password_alone_and_a_user_with_a_password() -> None:
    assert Endpoint.parse("redis://:p%40ss@h:1/0").handshake() == [("AUTH", "p@ss")]
    assert Endpoint.parse("rediss://bob:pw@h:1/2").handshake() == [
        ("AUTH", "bob", "pw"),
        ("SELECT", 2),
    ]
    assert Endpoint.parse("rediss://h").tls


def test_a_unix_socket_with_a_database() -> None:
    endpoint = Endpoint.parse("unix:///run/redis/redis.sock?db=3")
    assert (endpoint.path, endpoint.db) == ("/run/redis/redis.sock", 3)
    assert str(endpoint) == "/run/redis/redis.sock"


@pytest.mark.parametrize("url", ["http://h:1/0", "h:6379", "redis://h/x"])
def test_what_is_not_a_redis_url(url: str) -> None:
    with pytest.raises(ValueError, match=r"scheme|invalid literal"):
        Endpoint.parse(url)


def test_a_script_is_known_by_the_sha1_of_its_source() -> None:
    assert Script("return 1").sha == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
