"""No API key reaches the log of a real API process, even from a 500's traceback."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Cluster, wait_until

pytestmark = pytest.mark.slow

KEY = "k3y-Sup3rSecret-0123456789"
MODULES = "infrastructure.tasks.demo,tests.e2e.faulty_tasks"


def test_a_500_logs_its_traceback_but_no_key(cluster: Cluster) -> None:
    cluster.env.update(API_KEYS=f"ops:{KEY}:admin", CONVEYOR_TASK_MODULES=MODULES)
    api = cluster.api()
    [started] = [line for line in api.lines() if line.get("event") == "api.auth_enabled"]
    assert started["keys"] == {"ops": "admin"}  # names and roles, never keys
    headers = {"Authorization": f"Bearer {KEY}", "X-API-Key": KEY, "Cookie": f"session={KEY}"}
    # The payload makes the unexpected exception quote the key in its own message.
    body = {"taskName": "faulty", "payload": {"note": f"Bearer {KEY} {KEY}"}}
    response = cluster.http.post("/api/tasks", json=body, headers=headers)
    assert response.status_code == 500
    assert response.json() == {"error": "internal", "detail": "unexpected error"}

    def logged_500() -> list[dict[str, object]]:
        return [line for line in api.lines() if line.get("event") == "http.unexpected_error"]

    [line] = wait_until(logged_500, what="the 500 to be logged")
    [stack] = line["exception"]  # type: ignore[misc]
    assert stack["exc_type"] == "RuntimeError"
    assert any(frame["name"] == "explode" for frame in stack["frames"])
    assert all("locals" not in frame for frame in stack["frames"])
    assert KEY not in api.log.read_text()
