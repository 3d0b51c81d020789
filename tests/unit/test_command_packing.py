"""The clients pack commands with hiredis: the very bytes redis-py's own packer makes, and
redis-py's packer (and its errors) for what hiredis refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hiredis import pack_command as hiredis_pack_command
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from infrastructure.redis import client as client_module
from infrastructure.redis.client import create_redis

ARGUMENT = st.one_of(
    st.text(),
    st.binary(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
)


def packers() -> tuple[Any, Connection]:
    ours = create_redis("redis://127.0.0.1:6379/0").connection_pool.make_connection()
    return ours, Connection()


@given(name=st.sampled_from(["SET", "EVALSHA", "ZADD", "HSET"]), args=st.lists(ARGUMENT))
def test_the_bytes_are_redis_py_s(name: str, args: list[Any]) -> None:
    ours, reference = packers()
    assert b"".join(ours.pack_command(name, *args)) == b"".join(reference.pack_command(name, *args))


def test_a_command_of_two_words_is_split_as_redis_py_does() -> None:
    ours, reference = packers()
    for command in (("CLIENT ID",), ("CONFIG GET", "maxmemory"), ("SCRIPT LOAD", "return 1")):
        assert b"".join(ours.pack_command(*command)) == b"".join(reference.pack_command(*command))
        assert b"".join(ours.pack_command(*command)).startswith(b"*%d\r\n" % (len(command) + 1))


@pytest.mark.parametrize("value", [None, True, ["a"], {"a": 1}])
def test_a_value_of_another_type_is_redis_py_s_error(value: Any) -> None:
    ours, _ = packers()
    with pytest.raises(DataError, match="Invalid input of type"):
        ours.pack_command("SET", "key", value)


def test_the_clients_connections_pack_with_hiredis(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def counting(args: tuple[Any, ...]) -> bytes:
        calls.append(args)
        return hiredis_pack_command(args)

    monkeypatch.setattr(client_module, "hiredis_pack_command", counting)
    ours, _ = packers()
    ours.pack_command("GET", "key")
    assert calls == [("GET", "key")]
