"""Users' own task modules, loaded by the API and the workers from CONVEYOR_TASK_MODULES."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import Cluster

USER_MODULE = """
from pydantic import BaseModel

from application.handlers import TaskContext
from application.registry import TaskType


class Greet(BaseModel):
    name: str


async def greet(payload: Greet, ctx: TaskContext) -> dict[str, object]:
    ctx.report_progress({"percent": 100})
    return {"greeting": f"hello {payload.name}", "fence": ctx.fence, "attempt": ctx.attempt}


def shout(payload: Greet, ctx: TaskContext) -> str:
    ctx.raise_if_cancelled()
    return payload.name.upper()


TASKS = [
    TaskType("greet", Greet, greet, attempts=2),
    TaskType("shout", Greet, shout),
]
"""


def test_a_user_module_adds_task_types_to_api_and_workers(cluster: Cluster, tmp_path: Path) -> None:
    package = tmp_path / "usertasks"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "greetings.py").write_text(USER_MODULE)
    cluster.env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    cluster.env["CONVEYOR_TASK_MODULES"] = "infrastructure.tasks.demo,usertasks.greetings"
    cluster.api()
    cluster.worker()

    greeted = cluster.enqueue(taskName="greet", payload={"name": "ada"})
    assert greeted["maxAttempts"] == 2
    done = cluster.wait_status(greeted["id"], "completed")
    assert done["result"] == {"greeting": "hello ada", "fence": done["fence"], "attempt": 1}
    assert done["progress"] == {"percent": 100}

    shouted = cluster.enqueue(taskName="shout", payload={"name": "ada"})
    assert cluster.wait_status(shouted["id"], "completed")["result"] == "ADA"

    rejected = cluster.http.post("/api/tasks", json={"taskName": "greet", "payload": {}})
    assert rejected.status_code == 422
    assert "payload.name" in rejected.json()["fields"]


def test_a_sync_handler_past_its_timeout_stops_at_its_next_check(cluster: Cluster) -> None:
    cluster.api()
    cluster.worker()
    task = cluster.enqueue(taskName="sleep_sync", payload={"ms": 5_000}, timeoutMs=300, attempts=1)
    failed = cluster.wait_status(task["id"], "failed", timeout_s=10)
    assert failed["error"]["type"] == "TaskTimeout"
    entry = failed["history"][0]
    assert entry["outcome"] == "failed"
