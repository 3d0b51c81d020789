"""The schedule routes against a real Redis: manage schedules, see their next fire times,
and watch the API process's own scheduler fire their slots."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

Client = AsyncTestClient[Any]

ECHO = {"taskName": "echo", "payload": {"hello": "world"}}


def millis(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def create(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/schedules", json={"name": "nightly", "task": ECHO} | body)
    assert response.status_code == 201, response.text
    return response.json()


async def tasks_of(client: Client, name: str) -> list[dict[str, Any]]:
    response = await client.get("/api/tasks", params={"search": f"schedule:{name}:", "limit": 100})
    assert response.status_code == 200, response.text
    return [task for task in response.json()["items"] if task["id"].startswith(f"schedule:{name}:")]


async def wait_for(predicate: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_an_interval_schedule_first_fires_one_interval_after_creation(client: Client) -> None:
    before = now_ms()
    schedule = await create(client, everyMs=60_000)
    created = millis(schedule["createdAt"])
    assert before <= created <= now_ms()
    assert millis(schedule["nextRunAt"]) == created + 60_000
    assert [millis(at) for at in schedule["upcoming"]] == [
        created + k * 60_000 for k in range(1, 6)
    ]
    assert schedule["status"] == "active"
    assert schedule["task"]["taskName"] == "echo"
    assert schedule["missedPolicy"] == "once"
    assert schedule["overlapPolicy"] == "allow"
    assert (schedule["fired"], schedule["lastRunAt"], schedule["lastTaskId"]) == (0, None, None)


async def test_a_cron_schedule_counts_in_its_time_zone(client: Client) -> None:
    schedule = await create(client, cron="0 9 * * *", timezone="Asia/Kolkata")  # UTC+05:30
    times = [datetime.fromisoformat(at) for at in schedule["upcoming"]]
    assert [(t.hour, t.minute) for t in times] == [(3, 30)] * 5
    assert all((b - a).total_seconds() == 86_400 for a, b in itertools.pairwise(times))


async def test_the_scheduler_fires_each_slot_as_a_task_named_for_it(client: Client) -> None:
    schedule = await create(client, name="often", everyMs=200)
    created = millis(schedule["createdAt"])

    async def three() -> list[dict[str, Any]]:
        found = await tasks_of(client, "often")
        return found if len(found) >= 3 else []

    fired = await wait_for(three)
    slots = sorted(int(task["id"].rsplit(":", 1)[1]) for task in fired)
    assert all((slot - created) % 200 == 0 and slot > created for slot in slots)
    assert len(slots) == len(set(slots))
    assert all(task["payload"] == {"hello": "world"} for task in fired)
    shown = (await client.get("/api/schedules/often")).json()
    assert shown["fired"] >= 3
    assert shown["lastTaskId"].startswith("schedule:often:")
    assert millis(shown["nextRunAt"]) > millis(shown["lastRunAt"])


async def test_list_get_update_pause_resume_delete(client: Client) -> None:
    await create(client, name="a", everyMs=60_000)
    await create(client, name="b", cron="*/5 * * * *")
    listing = (await client.get("/api/schedules")).json()
    assert [s["name"] for s in listing["schedules"]] == ["a", "b"]

    changed = await client.put(
        "/api/schedules/a", json={"cron": "0 0 1 1 *", "task": {"taskName": "echo"}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["cron"] == "0 0 1 1 *"
    assert changed.json()["everyMs"] is None
    assert datetime.fromisoformat(changed.json()["nextRunAt"]).strftime("%m-%d %H:%M") == (
        "01-01 00:00"
    )

    paused = await client.post("/api/schedules/a/pause")
    assert paused.status_code == 200
    assert (paused.json()["status"], paused.json()["nextRunAt"], paused.json()["upcoming"]) == (
        "paused",
        None,
        [],
    )
    resumed = await client.post("/api/schedules/a/resume")
    assert resumed.json()["status"] == "active"
    assert resumed.json()["nextRunAt"] is not None

    assert (await client.delete("/api/schedules/a")).status_code == 204
    assert (await client.get("/api/schedules/a")).status_code == 404
    assert (await client.delete("/api/schedules/a")).status_code == 404
    listing = (await client.get("/api/schedules")).json()
    assert [s["name"] for s in listing["schedules"]] == ["b"]


async def test_trigger_enqueues_now_and_leaves_the_slots(client: Client) -> None:
    schedule = await create(client, everyMs=3_600_000)
    response = await client.post("/api/schedules/nightly/trigger")
    assert response.status_code == 202, response.text
    task = response.json()
    assert task["id"].startswith("schedule:nightly:now-")
    assert task["taskName"] == "echo"
    shown = (await client.get("/api/schedules/nightly")).json()
    assert shown["nextRunAt"] == schedule["nextRunAt"]
    assert (await client.post("/api/schedules/missing/trigger")).status_code == 404


async def test_a_name_is_taken_once(client: Client) -> None:
    await create(client, everyMs=1_000)
    again = await client.post(
        "/api/schedules", json={"name": "nightly", "everyMs": 5_000, "task": ECHO}
    )
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * * * *", "everyMs": 1000}, "body"),
        ({}, "body"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "* * * * *", "timezone": "../../etc/passwd"}, "timezone"),
        ({"everyMs": 10}, "everyMs"),
        ({"everyMs": True}, "everyMs"),
        ({"everyMs": 1000, "name": "a b"}, "name"),
        ({"everyMs": 1000, "name": "x" * 65}, "name"),
        ({"everyMs": 1000, "missedPolicy": "sometimes"}, "missedPolicy"),
        ({"everyMs": 1000, "overlapPolicy": "replace"}, "overlapPolicy"),
        ({"everyMs": 1000, "catchUpLimit": 0}, "catchUpLimit"),
        ({"everyMs": 1000, "task": {"taskName": "nope"}}, "task.taskName"),
        ({"everyMs": 1000, "task": {"taskName": "sleep", "payload": {"ms": "x"}}}, "task.payload"),
        ({"everyMs": 1000, "task": {"taskName": "echo", "queue": "elsewhere"}}, "task.queue"),
        ({"everyMs": 1000, "task": {"taskName": "echo", "priority": 10**9}}, "task.priority"),
    ],
)
async def test_bad_definitions_are_422_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    response = await client.post("/api/schedules", json={"name": "bad", "task": ECHO} | body)
    assert response.status_code == 422, response.text
    fields = response.json().get("fields") or {}
    assert any(name == field or name.startswith(f"{field}.") for name in fields), fields
    assert (await client.get("/api/schedules/bad")).status_code == 404


async def test_unknown_schedules_are_404(client: Client) -> None:
    for method, path in [
        ("GET", "/api/schedules/none"),
        ("POST", "/api/schedules/none/pause"),
        ("POST", "/api/schedules/none/resume"),
        ("DELETE", "/api/schedules/none"),
    ]:
        response = await client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"
    update = await client.put("/api/schedules/none", json={"everyMs": 1000, "task": ECHO})
    assert update.status_code == 404


async def test_every_change_is_audited(client: Client) -> None:
    await create(client, everyMs=60_000)
    await client.post("/api/schedules/nightly/pause")
    await client.post("/api/schedules/nightly/resume")
    await client.post("/api/schedules/nightly/trigger")
    await client.delete("/api/schedules/nightly")
    entries = (await client.get("/api/audit")).json()["items"]
    actions = [entry["action"] for entry in entries if entry["target"] == "nightly"]
    assert actions == [
        "schedule.delete",
        "schedule.trigger",
        "schedule.resume",
        "schedule.pause",
        "schedule.create",
    ]
