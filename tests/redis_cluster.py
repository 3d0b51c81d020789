"""A real Redis Cluster on loopback for the tests: N masters (no replicas), each a
redis-server of the test's own, kept and stopped by PID, logs and node files in a tmp dir.

    with RedisClusterServers(tmp_path, masters=3) as cluster:
        client = redis.RedisCluster.from_url(cluster.urls[0])
        ...

or `cluster.start()` / `cluster.stop()` around a test (stop in a `finally` or a fixture's
teardown). Slots can be moved from one master to another, all at once (`migrate_slot`:
clients then meet MOVED) or left half-way (`begin_migration`: the old owner answers ASK for
the keys it no longer holds) and finished later (`finish_migration`).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import redis
from redis.cluster import ClusterNode
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from infrastructure.embedded_redis import find_redis_server, redis_answers
from tests.e2e.conftest import free_port, wait_until

LOOPBACK = "127.0.0.1"
BUS_PORT_OFFSET = 10_000  # a node's cluster bus listens 10000 above its port
HIGHEST_PORT = 65_535 - BUS_PORT_OFFSET  # Redis refuses a port whose bus port would not fit
ADDSLOTS_CHUNK = 1_000  # slots per CLUSTER ADDSLOTS where ADDSLOTSRANGE is missing (6.2)
MIGRATE_BATCH = 100  # keys per CLUSTER GETKEYSINSLOT / MIGRATE ... KEYS
MIGRATE_TIMEOUT_MS = 5_000
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it

SlotMap = tuple[tuple[int, int, int], ...]  # (first slot, last slot, master's port), sorted


@dataclass(frozen=True)
class Migration:
    """A slot on its way from one master to another: MIGRATING on `source`, IMPORTING on
    `target`, until `RedisClusterServers.finish_migration` gives it to `target`."""

    slot: int
    source: int
    target: int


def slot_of(key: str) -> int:
    return key_slot(key.encode())


def queue_key(queue: str) -> str:
    """A key of Conveyor's queue `queue`: they all carry the hash tag `{queue}`."""
    return f"conveyor:{{{queue}}}:"


class RedisClusterServers:
    """`masters` redis-server processes joined into one cluster covering every slot."""

    def __init__(
        self,
        tmp_path: Path,
        masters: int = 3,
        *,
        binary: str | None = None,
        node_timeout_ms: int = 2_000,
        timeout_s: float = 30.0,
    ) -> None:
        if masters < 1:
            raise ValueError(f"a cluster needs at least one master, not {masters}")
        self.tmp_path = tmp_path
        self.masters = masters
        self.binary = binary or find_redis_server()
        self.node_timeout_ms = node_timeout_ms
        self.timeout_s = timeout_s
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, BinaryIO] = {}
        self._ports: list[int] = []
        self._ids: dict[int, str] = {}

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> RedisClusterServers:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> RedisClusterServers:
        """Start the masters, join them and wait until every one serves the whole slot map;
        on any failure every process started so far is stopped before the error propagates."""
        try:
            for _ in range(self.masters):
                self._ports.append(self._start_node())
            self._ids = {port: self._myid(port) for port in self._ports}
            cli = self.redis_cli()
            if self.masters >= 3 and cli is not None:
                self._create_with_redis_cli(cli)
            else:
                self._create_by_hand()
            self.wait_until_stable()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Kill every server still running, by PID, and wait for each."""
        for port in list(self.processes):
            self.kill(port)

    def kill(self, port: int) -> None:
        """Stop one master (SIGKILL: no goodbye to the others, as in a crash)."""
        process = self.processes.pop(port)
        try:
            process.kill()
            process.wait(timeout=10)
        finally:
            self.logs.pop(port).close()

    # -- what tests use ---------------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        """Every master's port, in the order they were started (killed ones included)."""
        return list(self._ports)

    @property
    def urls(self) -> list[str]:
        return [f"redis://{LOOPBACK}:{port}/0" for port in self._ports]

    @property
    def cluster_urls(self) -> str:
        """The value for REDIS_CLUSTER_URLS: every master as a seed node."""
        return ",".join(self.urls)

    def node_id(self, port: int) -> str:
        return self._ids[port]

    def client(self, port: int, **options: Any) -> redis.Redis:
        """A plain (non-cluster) client of one node: it sees MOVED and ASK as errors."""
        return redis.Redis(host=LOOPBACK, port=port, decode_responses=True, **options)

    def cluster_client(self, **options: Any) -> redis.RedisCluster:
        """A cluster client seeded with every live master."""
        nodes = [ClusterNode(LOOPBACK, port) for port in self.processes]  # type: ignore[no-untyped-call]
        return redis.RedisCluster(startup_nodes=nodes, decode_responses=True, **options)

    def slot_map(self, port: int | None = None) -> SlotMap:
        """The slot ranges and their masters, as the node on `port` (else a live one) has them."""
        with contextlib.closing(self.client(port or self._any_live())) as client:
            return _slot_map(client)

    def node_of(self, key: str) -> int:
        """The port of the master that serves `key`'s slot."""
        return self.owner_of_slot(slot_of(key))

    def owner_of_slot(self, slot: int) -> int:
        for first, last, port in self.slot_map():
            if first <= slot <= last:
                return port
        raise LookupError(f"no master serves slot {slot}")

    def queues_on_distinct_shards(self, count: int, prefix: str = "q") -> list[str]:
        """`count` queue names whose keys (`conveyor:{<name>}:...`) each land on another
        master: `<prefix>0`, `<prefix>1`, ... taking the first name found for each master."""
        if count > self.masters:
            raise ValueError(f"{count} queues cannot land on distinct shards of {self.masters}")
        slots = self.slot_map()
        found: dict[int, str] = {}
        n = 0
        while len(found) < count:
            name = f"{prefix}{n}"
            slot = slot_of(queue_key(name))
            port = next(port for first, last, port in slots if first <= slot <= last)
            found.setdefault(port, name)
            n += 1
        return list(found.values())

    def migrate_slot(self, slot: int, to_port: int) -> Migration:
        """Move `slot` and every key in it to the master on `to_port`; once this returns
        every node agrees the slot is there, and its old owner answers MOVED for it."""
        migration = self.begin_migration(slot, to_port)
        self.finish_migration(migration)
        return migration

    def begin_migration(
        self, slot: int, to_port: int, keys: Iterable[str] | None = None
    ) -> Migration:
        """Mark `slot` IMPORTING on `to_port` and MIGRATING on its owner, then move `keys`
        (by default every key the slot holds now; `()` moves none). The old owner still
        serves the keys it holds and answers ASK for the others, until `finish_migration`."""
        source = self.owner_of_slot(slot)
        if source == to_port:
            raise ValueError(f"slot {slot} is on {to_port} already")
        if to_port not in self.processes:
            raise ValueError(f"no master runs on {to_port}")
        migration = Migration(slot, source, to_port)
        with self._two(migration) as (old, new):
            new.cluster("SETSLOT", slot, "IMPORTING", self._ids[source])
            old.cluster("SETSLOT", slot, "MIGRATING", self._ids[to_port])
        self.move_keys(migration, keys)
        return migration

    def move_keys(self, migration: Migration, keys: Iterable[str] | None = None) -> int:
        """MIGRATE `keys` (default: all the old owner still holds in the slot) to the new
        owner; returns how many keys were sent."""
        moved = 0
        with self._two(migration) as (old, _):
            if keys is not None:
                wanted = list(keys)
                for at in range(0, len(wanted), MIGRATE_BATCH):
                    moved += self._migrate(old, migration, wanted[at : at + MIGRATE_BATCH])
                return moved
            while batch := old.cluster("GETKEYSINSLOT", migration.slot, MIGRATE_BATCH):
                moved += self._migrate(old, migration, list(batch))
        return moved

    def finish_migration(self, migration: Migration) -> None:
        """Move what keys remain, give the slot to the new owner (it first, then the old
        one, then every other master) and wait until all nodes agree on the slot map."""
        self.move_keys(migration)
        target = self._ids[migration.target]
        order = [migration.target, migration.source]
        order += [port for port in self.processes if port not in order]
        for port in order:
            if port in self.processes:
                with contextlib.closing(self.client(port)) as client:
                    client.cluster("SETSLOT", migration.slot, "NODE", target)
        self.wait_until_stable()

    def wait_until_stable(self, timeout_s: float | None = None) -> SlotMap:
        """Wait until every live node says cluster_state:ok, knows every other live node
        and holds the same map, covering all slots; returns that map."""
        found: list[SlotMap] = []

        def agreed() -> bool:
            found[:] = []
            try:
                for port in self.processes:
                    with contextlib.closing(self.client(port)) as client:
                        info = _cluster_info(client)
                        if info.get("cluster_state") != "ok":
                            return False
                        if int(info.get("cluster_known_nodes", 0)) < len(self.processes):
                            return False
                        found.append(_slot_map(client))
            except redis.RedisError:
                return False
            return len(set(found)) == 1 and _covers_every_slot(found[0])

        wait_until(agreed, timeout_s or self.timeout_s, "the cluster to agree on its slot map")
        return found[0]

    # -- starting ---------------------------------------------------------------------------

    def redis_cli(self) -> str | None:
        """redis-cli beside the redis-server in use, else on PATH."""
        beside = Path(self.binary).parent / "redis-cli"
        return str(beside) if beside.exists() else shutil.which("redis-cli")

    def _start_node(self) -> int:
        for attempt in range(START_ATTEMPTS):
            port = cluster_port()
            log = self.logs[port] = (self.tmp_path / f"redis-{port}.log").open("wb")
            argv = [
                self.binary,
                "--port", str(port),
                "--bind", LOOPBACK,
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.tmp_path / f"nodes-{port}.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.tmp_path),
            ]  # fmt: skip
            process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            self.processes[port] = process
            _wait_for_start(process, port, self.timeout_s)
            if process.poll() is None:
                return port
            self.kill(port)  # its port was taken meanwhile: another one
            if attempt == START_ATTEMPTS - 1:
                log_text = (self.tmp_path / f"redis-{port}.log").read_text(errors="replace")
                raise RuntimeError(f"redis-server on {port} exited:\n{log_text[-2000:]}")
        raise AssertionError("unreachable")

    def _myid(self, port: int) -> str:
        with contextlib.closing(self.client(port)) as client:
            return str(client.cluster("MYID"))

    def _create_with_redis_cli(self, cli: str) -> None:
        nodes = [f"{LOOPBACK}:{port}" for port in self._ports]
        argv = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        log = self.tmp_path / "cluster-create.log"
        with log.open("wb") as out:
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, timeout=self.timeout_s, check=False
            )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{log.read_text()[-2000:]}")

    def _create_by_hand(self) -> None:
        """What `redis-cli --cluster create` does, for fewer than three masters (which it
        refuses) or without redis-cli: an even share of the slots and a distinct config
        epoch for each master, then every one MEETs the first."""
        share, extra = divmod(REDIS_CLUSTER_HASH_SLOTS, self.masters)
        first = 0
        for n, port in enumerate(self._ports):
            last = first + share + (n < extra) - 1
            with contextlib.closing(self.client(port)) as client:
                _add_slots(client, first, last)
                client.cluster("SET-CONFIG-EPOCH", n + 1)
                if n:
                    client.cluster("MEET", LOOPBACK, self._ports[0])
            first = last + 1

    # -- migrating --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _two(self, migration: Migration) -> Iterator[tuple[redis.Redis, redis.Redis]]:
        with (
            contextlib.closing(self.client(migration.source)) as old,
            contextlib.closing(self.client(migration.target)) as new,
        ):
            yield old, new

    def _migrate(self, old: redis.Redis, migration: Migration, keys: list[str]) -> int:
        if not keys:
            return 0
        old.migrate(LOOPBACK, migration.target, keys, 0, MIGRATE_TIMEOUT_MS)
        return len(keys)

    def _any_live(self) -> int:
        if not self.processes:
            raise RuntimeError("no master of the cluster runs")
        return next(iter(self.processes))


def cluster_port() -> int:
    """A free port whose cluster bus port (10000 above) fits and is free as well."""
    while True:
        port = free_port()
        if port <= HIGHEST_PORT and _bindable(port + BUS_PORT_OFFSET):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _wait_for_start(process: subprocess.Popen[bytes], port: int, timeout_s: float) -> None:
    """Until the server answers PING or has exited (a bare socket: a client's retries
    would wait seconds on a port nobody listens to)."""
    url = f"redis://{LOOPBACK}:{port}"
    wait_until(
        lambda: process.poll() is not None or redis_answers(url),
        timeout_s,
        f"redis-server on {port}",
    )


def _add_slots(client: redis.Redis, first: int, last: int) -> None:
    try:
        client.cluster("ADDSLOTSRANGE", first, last)
    except redis.ResponseError:  # Redis 6.2: no ADDSLOTSRANGE
        for start in range(first, last + 1, ADDSLOTS_CHUNK):
            chunk = range(start, min(start + ADDSLOTS_CHUNK, last + 1))
            client.cluster("ADDSLOTS", *chunk)


def _cluster_info(client: redis.Redis) -> dict[str, str]:
    """CLUSTER INFO as a dict, whether or not redis-py parsed it already."""
    info = client.cluster("INFO")
    if isinstance(info, dict):
        return {str(name): str(value) for name, value in info.items()}
    pairs = (line.partition(":") for line in str(info).splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, _, value in pairs}


def _slot_map(client: redis.Redis) -> SlotMap:
    """CLUSTER SLOTS as sorted (first, last, master's port) ranges, adjacent ranges of the
    same master merged (nodes may split a master's slots differently)."""
    ranges = sorted(
        (int(entry[0]), int(entry[1]), int(entry[2][1])) for entry in client.cluster("SLOTS")
    )
    merged: list[tuple[int, int, int]] = []
    for first, last, port in ranges:
        if merged and merged[-1][2] == port and merged[-1][1] + 1 == first:
            merged[-1] = (merged[-1][0], last, port)
        else:
            merged.append((first, last, port))
    return tuple(merged)


def _covers_every_slot(slots: SlotMap) -> bool:
    expected = 0
    for first, last, _ in slots:
        if first != expected:
            return False
        expected = last + 1
    return expected == REDIS_CLUSTER_HASH_SLOTS
