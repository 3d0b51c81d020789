"""The file tasks through real `conveyor` processes, in a base folder with traps in it."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import Cluster


def test_a_fifo_at_the_target_fails_the_task_and_frees_the_worker_slot(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.api()  # creates the base folder
    base = tmp_path / "files"
    os.mkfifo(base / "fifo")  # inside the base: the enqueue-time check lets it pass
    trap = cluster.enqueue(taskName="write_file", payload={"path": "/fifo", "content": "x"})
    after = cluster.enqueue(taskName="echo", payload={"n": 1})
    # One slot: a handler blocked in open() would hold it for good, and `echo` never run.
    cluster.worker("--concurrency", "1")
    failed = cluster.wait_status(trap["id"], "failed")
    assert failed["attempts"] == 1  # refused for good, not retried
    assert failed["error"]["message"] == "/fifo: /fifo is a FIFO, not a file"
    assert str(tmp_path) not in failed["error"]["message"] + failed["error"]["traceback"]
    assert cluster.wait_status(after["id"], "completed")["result"] == {"n": 1}


def test_writing_a_hard_linked_name_leaves_the_outside_file_alone(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.api()
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    os.link(outside, tmp_path / "files" / "linked.txt")
    task = cluster.enqueue(taskName="write_file", payload={"path": "linked.txt", "content": "x"})
    cluster.worker()
    done = cluster.wait_status(task["id"], "completed", "failed")
    assert done["status"] == "completed"
    assert done["result"] == {"path": "/linked.txt", "bytes": 1}
    assert outside.read_text() == "secret"
    assert (tmp_path / "files" / "linked.txt").read_text() == "x"
