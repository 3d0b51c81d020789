"""A real Redis Cluster of three masters on loopback, with the API and workers as processes
(REDIS_CLUSTER_URLS): tasks on queues that live on different masters complete once, what
spans queues (listing, search, export, stats, events, /metrics, the CLI) asks every
master, the seeds' routes work, and a queue's slot moved between masters under load is
followed without losing or repeating a task."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import CONVEYOR, Cluster, Proc, free_port, wait_until
from tests.redis_cluster import RedisClusterServers, queue_key, slot_of

pytestmark = pytest.mark.slow

MODULES = "infrastructure.tasks.demo,tests.e2e.probe_tasks"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    with RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"), masters=3) as started:
        yield started


@pytest.fixture
def queues(shards: RedisClusterServers) -> list[str]:
    """Three queues, each on a master of its own."""
    return shards.queues_on_distinct_shards(3, prefix="jobs")


@pytest.fixture
def group(cluster: Cluster, shards: RedisClusterServers, queues: list[str]) -> Iterator[Cluster]:
    """The processes' group on the Redis Cluster (REDIS_URL names a Redis that is not
    there: nothing may use it); the probes record in the test Redis."""
    client = shards.cluster_client()
    client.flushall()
    names = ",".join([*queues, "default"])  # default: the demo task types' own
    cluster.env.update(
        REDIS_URL="redis://127.0.0.1:1/0",
        REDIS_CLUSTER_URLS=shards.cluster_urls,
        PROBE_REDIS_URL=TEST_REDIS_URL,
        QUEUES=names,
        WORKER_QUEUES=names,
        CONVEYOR_TASK_MODULES=MODULES,
    )
    try:
        yield cluster
    finally:
        client.flushall()
        client.close()


def probes(records: redis.Redis, key: str) -> tuple[int, int]:
    return records.llen(f"probe:{key}:starts"), records.llen(f"probe:{key}:ends")


def completed(group: Cluster, count: int) -> bool:
    return int(group.http.get("/api/stats").json()["completed"]) >= count


def unexpected_errors(proc: Proc) -> list[dict[str, Any]]:
    return [line for line in proc.lines() if line.get("level") in ("error", "critical")]


def test_tasks_on_queues_of_three_masters_each_complete_once(
    group: Cluster, shards: RedisClusterServers, queues: list[str], records: redis.Redis
) -> None:
    masters = {shards.node_of(queue_key(queue)) for queue in queues}
    assert len(masters) == 3, "the queues must live on three masters"
    api = group.api()
    workers = [group.worker(), group.worker()]
    ids = []
    for queue in queues:
        for n in range(20):
            task_id = f"{queue}-{n}"
            group.enqueue(
                taskName="probe", payload={"key": task_id, "ms": 5}, queue=queue,
                customJobId=task_id,
            )  # fmt: skip
            ids.append(task_id)
    bulk = group.http.post(
        "/api/tasks/bulk",
        json={
            "tasks": [
                {"taskName": "probe", "payload": {"key": f"bulk-{q}"}, "queue": q,
                 "customJobId": f"bulk-{q}"}
                for q in queues
            ]
        },
    )  # fmt: skip
    assert bulk.status_code == 202, bulk.text
    ids += [f"bulk-{queue}" for queue in queues]

    wait_until(lambda: completed(group, len(ids)), 60, "every task to complete")

    for task_id in ids:
        assert probes(records, task_id) == (1, 1), task_id
        task = group.task(task_id)
        assert task["status"] == "completed"
        assert task["attempts"] == 1
        # The task's hash is on the master that serves its queue.
        home = shards.node_of(queue_key(task["queue"]))
        assert shards.client(home).exists(f"{queue_key(task['queue'])}task:{task_id}"), task_id
    # Both workers took a share, from every master.
    ran_by = Counter(group.task(task_id)["workerId"] for task_id in ids)
    assert len(ran_by) == 2, ran_by
    for proc in (api, *workers):
        assert unexpected_errors(proc) == []


def test_a_running_task_holds_its_lock_in_a_slot_of_its_own_through_pottery(
    group: Cluster, shards: RedisClusterServers, queues: list[str], records: redis.Redis
) -> None:
    group.api()
    group.worker()
    queue = queues[0]
    group.enqueue(
        taskName="probe", payload={"key": "held", "ms": 1_500}, queue=queue, customJobId="held"
    )
    lock = "lock:task:held"
    client = shards.cluster_client()
    value = wait_until(lambda: client.get(lock), 15, "the task's lock")
    assert slot_of(lock) != slot_of(queue_key(queue))
    assert group.task("held")["status"] == "active"
    group.wait_status("held", "completed")
    assert client.get(lock) is None  # released at the settle, by pottery
    assert value
    assert probes(records, "held") == (1, 1)
    client.close()


def test_listing_search_export_stats_events_metrics_and_the_cli_span_every_master(
    group: Cluster, queues: list[str]
) -> None:
    group.api()
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    reader = threading.Thread(target=follow_events, args=(group.url, seen, stop), daemon=True)
    reader.start()
    wait_until(lambda: seen and seen[0] == {"ready": True}, 10, "the event stream")
    group.worker()
    for n, queue in enumerate(queues):
        group.enqueue(
            taskName="echo", payload={"word": f"marigold{n}"}, queue=queue, customJobId=f"e{n}"
        )
    wait_until(lambda: completed(group, 3), 30, "the echoes")
    ids = {f"e{n}" for n in range(3)}

    listed = group.http.get("/api/tasks", params={"limit": 100}).json()
    assert {item["id"] for item in listed["items"]} == ids
    assert listed["total"] == 3
    one = group.http.get("/api/tasks", params={"queue": queues[1]}).json()["items"]
    assert [item["id"] for item in one] == ["e1"]
    found = group.http.get("/api/tasks", params={"search": "marigold2"}).json()["items"]
    assert [item["id"] for item in found] == ["e2"]
    page = group.http.get("/api/tasks", params={"limit": 2}).json()
    rest = group.http.get("/api/tasks", params={"limit": 2, "cursor": page["nextCursor"]}).json()
    assert {item["id"] for item in page["items"] + rest["items"]} == ids
    export = group.http.get("/api/tasks/export")
    assert export.status_code == 200
    assert {line.split(",")[0] for line in export.text.splitlines()[1:]} == ids
    stats = group.http.get("/api/stats").json()
    assert {queue: stats["queues"][queue]["completed"] for queue in queues} == dict.fromkeys(
        queues, 1
    )
    metrics = group.http.get("/metrics").text
    for queue in queues:
        assert f'queue="{queue}"' in metrics

    wait_until(lambda: len(finished_in(seen)) == 3, 10, "every completion as an event")
    assert finished_in(seen) == set(queues)
    stop.set()

    listed_by_cli = cli(group, "tasks", "list", "--queue", queues[2], "--json")
    assert [item["id"] for item in listed_by_cli["items"]] == ["e2"]
    assert cli(group, "stats", "--json")["completed"] == 3


def test_the_seed_routes_and_operator_actions_work_on_a_cluster(
    group: Cluster, queues: list[str]
) -> None:
    group.api()
    http = group.http
    # The seeds' routes take no queue: their tasks go to the type's (default); the native
    # route puts one in each of the test's queues.
    seed000 = http.post("/tasks", json={"taskName": "echo", "payload": {"n": 0}})
    assert seed000.status_code == 200, seed000.text
    assert http.get(f"/api/tasks/{seed000.json()['id']}").json()["queue"] == "default"
    for n, queue in enumerate(queues):
        group.enqueue(taskName="echo", payload={"n": n}, queue=queue, customJobId=f"s{n}")
    jobs = http.get("/api/jobs", params={"status": "pending"})
    assert jobs.status_code == 200, jobs.text
    assert {job["id"] for job in jobs.json()["jobs"]} >= {"s0", "s1", "s2"}
    assert http.get("/api/jobs/export").status_code == 200
    stats = http.get("/jobs/stats").json()
    assert stats["waiting"] == 4
    assert http.get("/jobs/s1").json()["id"] == "s1"
    assert http.post("/jobs/s1/kill").status_code == 200
    assert http.get("/api/tasks/s1").json()["status"] == "failed"
    assert http.post("/api/retry/s1").status_code == 200
    assert http.post("/api/cancel/s2").status_code == 200
    assert http.get("/api/tasks/s2").json()["status"] == "cancelled"

    # A removed task's id stays reserved in its queue, and the id index knows it.
    assert http.delete("/api/tasks/s2").status_code == 204
    again = http.post(
        "/api/tasks",
        json={"taskName": "echo", "payload": {"n": 2}, "queue": queues[2], "customJobId": "s2"},
    )
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "removed"
    elsewhere = http.post(
        "/api/tasks",
        json={"taskName": "echo", "payload": {"n": 2}, "queue": queues[0], "customJobId": "s2"},
    )
    assert elsewhere.status_code == 409, elsewhere.text
    # An id held by one queue is a conflict in another: one id names one task.
    taken = http.post(
        "/api/tasks",
        json={"taskName": "echo", "payload": {"n": 0}, "queue": queues[1], "customJobId": "s0"},
    )
    assert taken.status_code == 409, taken.text

    group.worker()
    group.wait_status("s0", "completed")
    group.wait_status("s1", "completed")


def test_schedules_templates_limits_and_the_audit_log_work_on_a_cluster(
    group: Cluster, queues: list[str]
) -> None:
    """The parts kept in slots of their own (schedules, templates, workers, the audit log)
    and a queue's flow limits, with two API processes firing one schedule."""
    group.api()
    group.start("api", "--port", str(free_port()))  # a second process firing the schedule
    group.worker()
    http = group.http
    tick = {"taskName": "echo", "payload": {"tick": True}, "queue": queues[1]}
    schedule = {"name": "every-second", "everyMs": 1_000, "task": tick}
    assert http.post("/api/schedules", json=schedule).status_code == 201
    wait_until(lambda: completed(group, 3), 20, "three slots fired and run")
    fired = http.get("/api/tasks", params={"queue": queues[1], "limit": 100}).json()["items"]
    slots = Counter(item["id"] for item in fired)
    assert all(item["id"].startswith("schedule:every-second:") for item in fired)
    assert max(slots.values()) == 1  # each slot once, with two processes firing
    assert http.delete("/api/schedules/every-second").status_code == 204

    template = {"name": "hello", "task": {"type": "echo", "data": {"hi": 1}}}
    made = http.post("/api/templates", json=template)
    assert made.status_code == 201, made.text
    used = http.post(f"/api/templates/{made.json()['id']}/use", json={})
    assert used.status_code in (200, 201, 202), used.text

    rate = {"rate": {"max": 2, "windowMs": 60_000}}
    limited = http.put(f"/api/queues/{queues[0]}/limits", json=rate)
    assert limited.status_code == 200, limited.text
    ids = [group.enqueue(taskName="echo", payload={"n": n}, queue=queues[0])["id"]
           for n in range(4)]  # fmt: skip
    wait_until(lambda: sum(group.task(i)["status"] == "completed" for i in ids) == 2, 15, "two")
    assert [group.task(i)["status"] for i in ids].count("waiting") == 2  # held by the rate

    audit = http.get("/api/audit").json()["items"]
    assert {entry["action"] for entry in audit} >= {"schedule.create", "schedule.delete"}
    assert http.get("/api/workers").json()["workers"]


def test_a_queue_s_slot_moved_to_another_master_under_load_loses_and_repeats_nothing(
    group: Cluster, shards: RedisClusterServers, queues: list[str], records: redis.Redis
) -> None:
    api = group.api()
    worker = group.worker()
    moving = queues[0]
    slot = slot_of(queue_key(moving))
    source = shards.owner_of_slot(slot)
    target = next(port for port in shards.ports if port != source)
    sent: list[str] = []
    answers: Counter[int] = Counter()

    def send(count: int, prefix: str) -> None:
        for n in range(count):
            task_id = f"{prefix}-{n}"
            body = {"taskName": "probe", "payload": {"key": task_id, "ms": 2}, "queue": moving,
                    "customJobId": task_id}  # fmt: skip
            for _ in range(50):  # a 503 is sent again, with the same id
                response = group.http.post("/api/tasks", json=body)
                answers[response.status_code] += 1
                if response.status_code != 503:
                    break
            assert response.status_code in (200, 202), response.text
            sent.append(task_id)

    send(100, "before")
    trickle = threading.Thread(target=send, args=(150, "during"))
    trickle.start()
    moving_since = time.monotonic()
    # Ten keys at a time, as `redis-cli --cluster reshard` moves them: meanwhile the
    # queue's keys are split between the two masters (ASK for a key moved, TRYAGAIN for a
    # script whose keys are on both, until the last one has moved).
    wait_until(lambda: len(sent) > 110, 30, "enqueues under way")
    migration = shards.begin_migration(slot, target, keys=())
    with contextlib.closing(shards.client(source)) as old:
        while batch := old.cluster("GETKEYSINSLOT", slot, 10):
            shards.move_keys(migration, batch)
    shards.finish_migration(migration)
    moved_in_s = time.monotonic() - moving_since
    trickle.join(60)
    assert not trickle.is_alive()
    assert shards.owner_of_slot(slot) == target
    send(50, "after")

    wait_until(lambda: completed(group, len(sent)), 90, "every task to complete")
    for task_id in sent:
        assert probes(records, task_id) == (1, 1), task_id
    assert answers[500] == 0, answers
    print(f"slot {slot} moved {source} -> {target} in {moved_in_s:.2f} s under enqueues; "
          f"{len(sent)} tasks, answers {dict(answers)}")  # fmt: skip
    for proc in (api, worker):
        assert unexpected_errors(proc) == []
        # The move was met (MOVED, ASK or TRYAGAIN) and followed, not avoided.
        assert any(line["event"] == "redis.cluster_slots_moved" for line in proc.lines())
    # The queue's keys are on the new master now, the ones written before the move too.
    assert shards.node_of(queue_key(moving)) == target
    assert shards.client(target).exists(f"{queue_key(moving)}task:before-0") == 1


def follow_events(url: str, seen: list[dict[str, Any]], stop: threading.Event) -> None:
    """The event stream's task events into `seen`, until `stop` (or the API stops)."""
    with contextlib.suppress(httpx.HTTPError):
        _follow(url, seen, stop)


def _follow(url: str, seen: list[dict[str, Any]], stop: threading.Event) -> None:
    with (
        httpx.Client(base_url=url, timeout=httpx.Timeout(5, read=None)) as client,
        client.stream("GET", "/api/events") as stream,
    ):
        event = ""
        for line in stream.iter_lines():
            if stop.is_set():
                return
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
                if event == "ready":
                    seen.append({"ready": True})
            elif line.startswith("data: ") and event == "task":
                seen.append(json.loads(line.removeprefix("data: ")))


def finished_in(seen: list[dict[str, Any]]) -> set[str]:
    return {event["queue"] for event in seen if event.get("status") == "completed"}


def cli(group: Cluster, *args: str) -> Any:
    done = subprocess.run(
        [*CONVEYOR, *args, "--url", group.url],
        env=group.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_lost_master_is_a_503_not_a_failed_task_and_the_others_serve_until_the_cluster_fails(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A master killed outright (no replica takes its slots): its queue's calls answer 503
    within the timeout, never 500; /ready says so; the cluster then marks the slots down
    (cluster-require-full-coverage, Redis's default) and every call is a 503, until an
    operator brings the master back."""
    (tmp_path / "redis").mkdir()
    with RedisClusterServers(tmp_path / "redis", masters=3) as own:
        queues = own.queues_on_distinct_shards(3, prefix="lost")
        names = ",".join(queues)
        cluster.env.update(
            REDIS_URL="redis://127.0.0.1:1/0",
            REDIS_CLUSTER_URLS=own.cluster_urls,
            REDIS_TIMEOUT_MS="1000",
            QUEUES=names,
            WORKER_QUEUES=names,
        )
        api = cluster.api()
        worker = cluster.worker()
        for queue in queues:
            cluster.enqueue(taskName="echo", payload={}, queue=queue, customJobId=f"ok-{queue}")
        wait_until(lambda: completed(cluster, 3), 20, "the first tasks")

        own.kill(own.node_of(queue_key(queues[0])))
        wait_until(lambda: cluster.http.get("/ready").status_code == 503, 10, "/ready 503")
        for queue in queues:
            body = {"taskName": "echo", "payload": {}, "queue": queue}
            response = cluster.http.post("/api/tasks", json=body)
            assert response.status_code in (202, 503), response.text
        lost = cluster.http.post("/api/tasks", json={"taskName": "echo", "queue": queues[0],
                                                     "payload": {}})  # fmt: skip
        assert lost.status_code == 503, lost.text
        assert lost.json()["error"] == "unavailable"
        assert cluster.http.get("/api/tasks").status_code == 503
        assert cluster.http.get("/api/stats").status_code == 503
        assert worker.process.poll() is None  # the worker waits it out
        assert not any(line.get("event") == "http.unexpected_error" for line in api.lines())
