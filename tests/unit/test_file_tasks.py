"""create_folder and write_file: chroot-like confinement at enqueue and at run time."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from application.handlers import NonRetryableError, TaskCancelled, TaskContext
from application.registry import TaskRegistry, TaskType
from domain.errors import InvalidTask
from infrastructure.tasks.files import CreateFolder, WriteFile, file_tasks


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    debug = info = warning = error = exception = _record


@pytest.fixture
def base(tmp_path: Path) -> Path:
    folder = tmp_path / "base"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.fixture
def registry(base: Path) -> TaskRegistry:
    registry = TaskRegistry(context={"files_base_dir": base})
    registry.add(*file_tasks(base))
    return registry


@pytest.fixture
def tasks(base: Path) -> dict[str, TaskType]:
    return {task_type.name: task_type for task_type in file_tasks(base)}


@pytest.fixture
def ctx() -> TaskContext:
    return TaskContext(
        task_id="t1", queue="default", attempt=1, fence=7, log=RecordingLog(), on_progress=print
    )


def valid(model: type[BaseModel], base: Path, **fields: Any) -> Any:
    return model.model_validate(fields, context={"files_base_dir": base})


def parse(registry: TaskRegistry, name: str, payload: Any) -> Any:
    return registry.parse(registry.get(name), payload)


def rejected_field(registry: TaskRegistry, name: str, payload: Any) -> str:
    with pytest.raises(InvalidTask) as caught:
        parse(registry, name, payload)
    return caught.value.field


@pytest.mark.parametrize("path", ["/a/b", "a/b", "./a//b/", "a/c/../b", "/"])
def test_create_folder_accepts_paths_inside_the_base(registry: TaskRegistry, path: str) -> None:
    assert parse(registry, "create_folder", {"path": path}).path == path


@pytest.mark.parametrize("path", ["..", "../base/a", "/../a", "a/../../x", "a/b/../../../x"])
def test_a_path_climbing_above_the_base_is_rejected(registry: TaskRegistry, path: str) -> None:
    assert rejected_field(registry, "create_folder", {"path": path}) == "payload.path"
    payload = {"path": path, "content": "x"}
    assert rejected_field(registry, "write_file", payload) == "payload.path"


def test_a_symlink_leading_outside_is_rejected(
    registry: TaskRegistry, base: Path, outside: Path
) -> None:
    (base / "link").symlink_to(outside)
    for path in ["link", "/link/a", "link/../a"]:
        assert rejected_field(registry, "create_folder", {"path": path}) == "payload.path"
    payload = {"path": "link/file.txt", "content": "x"}
    assert rejected_field(registry, "write_file", payload) == "payload.path"


def test_a_dangling_symlink_leading_outside_is_rejected(
    registry: TaskRegistry, base: Path, outside: Path
) -> None:
    (base / "file.txt").symlink_to(outside / "missing.txt")
    payload = {"path": "/file.txt", "content": "x"}
    assert rejected_field(registry, "write_file", payload) == "payload.path"


def test_a_symlink_loop_is_rejected_not_crashed_on(registry: TaskRegistry, base: Path) -> None:
    (base / "loop").symlink_to(base / "loop")
    assert rejected_field(registry, "create_folder", {"path": "loop/a"}) == "payload.path"


def test_a_symlink_staying_inside_is_accepted(registry: TaskRegistry, base: Path) -> None:
    (base / "real").mkdir()
    (base / "alias").symlink_to(base / "real")
    assert parse(registry, "create_folder", {"path": "alias/a"}).path == "alias/a"


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("create_folder", {}, "payload.path"),
        ("create_folder", {"path": ""}, "payload.path"),
        ("create_folder", {"path": "a\0b"}, "payload.path"),
        ("create_folder", {"path": "a", "mode": 7}, "payload.mode"),
        ("write_file", {"path": "/", "content": "x"}, "payload.path"),
        ("write_file", {"path": "a/..", "content": "x"}, "payload.path"),
        ("write_file", {"path": "a.txt"}, "payload.content"),
        ("write_file", {"path": "a.txt", "content": 5}, "payload.content"),
    ],
)
def test_malformed_payloads_name_their_field(
    registry: TaskRegistry, name: str, payload: dict[str, Any], field: str
) -> None:
    assert rejected_field(registry, name, payload) == field


def test_without_a_base_folder_in_the_context_file_tasks_fail_closed(base: Path) -> None:
    registry = TaskRegistry()
    registry.add(*file_tasks(base))
    assert rejected_field(registry, "create_folder", {"path": "a"}) == "payload.path"


def test_the_payload_is_stored_as_given(registry: TaskRegistry) -> None:
    task_type = registry.get("write_file")
    payload = {"path": "/notes/a.txt", "content": "hi"}
    assert registry.normalize(task_type, payload) == payload


def test_file_tasks_are_sync_and_default_to_the_default_queue(
    tasks: dict[str, TaskType],
) -> None:
    assert sorted(tasks) == ["create_folder", "write_file"]
    assert all(t.queue == "default" and not t.is_async for t in tasks.values())


def test_create_folder_makes_parents_and_tolerates_an_existing_folder(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    create = tasks["create_folder"].handler
    assert create(valid(CreateFolder, base, path="/a/b/c"), ctx) == {
        "path": "/a/b/c",
        "created": True,
    }
    assert (base / "a" / "b" / "c").is_dir()
    assert create(valid(CreateFolder, base, path="a/b/c"), ctx) == {
        "path": "/a/b/c",
        "created": False,
    }
    assert create(valid(CreateFolder, base, path="/"), ctx) == {"path": "/", "created": False}


def test_the_handlers_create_a_missing_base_folder(tmp_path: Path, ctx: TaskContext) -> None:
    base = tmp_path / "not" / "yet"
    tasks = {task_type.name: task_type for task_type in file_tasks(base)}
    tasks["create_folder"].handler(valid(CreateFolder, base, path="a"), ctx)
    assert (base / "a").is_dir()
    tasks["write_file"].handler(valid(WriteFile, base, path="b/c.txt", content="x"), ctx)
    assert (base / "b" / "c.txt").read_text() == "x"


def test_create_folder_over_a_file_fails_for_good(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    (base / "taken").write_text("x")
    with pytest.raises(NonRetryableError, match="taken"):
        tasks["create_folder"].handler(valid(CreateFolder, base, path="taken"), ctx)
    with pytest.raises(NonRetryableError):
        tasks["create_folder"].handler(valid(CreateFolder, base, path="taken/below"), ctx)


def test_write_file_creates_parents_and_counts_utf8_bytes(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    write = tasks["write_file"].handler
    result = write(valid(WriteFile, base, path="/docs/notes/a.txt", content="héllo"), ctx)
    assert result == {"path": "/docs/notes/a.txt", "bytes": 6}
    assert (base / "docs" / "notes" / "a.txt").read_text(encoding="utf-8") == "héllo"


def test_write_file_replaces_existing_content(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    (base / "a.txt").write_text("a much longer old content")
    tasks["write_file"].handler(valid(WriteFile, base, path="a.txt", content="new"), ctx)
    assert (base / "a.txt").read_text() == "new"


def test_write_file_onto_a_folder_fails_for_good(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    (base / "folder").mkdir()
    with pytest.raises(NonRetryableError, match="folder"):
        tasks["write_file"].handler(valid(WriteFile, base, path="folder", content="x"), ctx)


@pytest.mark.parametrize("path", ["../escape", "/a/../../escape"])
def test_the_handlers_refuse_an_escape_that_skipped_validation(
    tasks: dict[str, TaskType], tmp_path: Path, ctx: TaskContext, path: str
) -> None:
    with pytest.raises(NonRetryableError, match="base folder"):
        tasks["create_folder"].handler(CreateFolder.model_construct(path=path), ctx)
    with pytest.raises(NonRetryableError, match="base folder"):
        tasks["write_file"].handler(WriteFile.model_construct(path=path, content="x"), ctx)
    assert not (tmp_path / "escape").exists()


def test_the_handlers_refuse_a_symlink_planted_after_enqueue(
    registry: TaskRegistry, tasks: dict[str, TaskType], base: Path, outside: Path, ctx: TaskContext
) -> None:
    payload = parse(registry, "write_file", {"path": "late/file.txt", "content": "x"})
    (base / "late").symlink_to(outside)
    with pytest.raises(NonRetryableError, match="symbolic link"):
        tasks["write_file"].handler(payload, ctx)
    assert not (outside / "file.txt").exists()


def test_write_file_keeps_the_permissions_of_the_file_it_replaces(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    (base / "private.txt").write_text("old")
    (base / "private.txt").chmod(0o600)
    tasks["write_file"].handler(valid(WriteFile, base, path="private.txt", content="new"), ctx)
    assert stat.S_IMODE((base / "private.txt").stat().st_mode) == 0o600
    assert (base / "private.txt").read_text() == "new"


def test_write_file_leaves_no_temporary_file_behind(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    write = tasks["write_file"].handler
    write(valid(WriteFile, base, path="a.txt", content="one"), ctx)
    write(valid(WriteFile, base, path="a.txt", content="two"), ctx)
    assert sorted(p.name for p in base.iterdir()) == ["a.txt"]


def test_a_write_cancelled_before_its_rename_leaves_the_old_file(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext
) -> None:
    (base / "a.txt").write_text("old")
    ctx.cancel()
    with pytest.raises(TaskCancelled):
        tasks["write_file"].handler(valid(WriteFile, base, path="a.txt", content="new"), ctx)
    assert (base / "a.txt").read_text() == "old"
    assert sorted(p.name for p in base.iterdir()) == ["a.txt"]


@pytest.mark.parametrize("path", ["/a/./b/../c.txt", "a//c.txt"])
def test_the_handlers_apply_dot_and_dot_dot_by_name(
    tasks: dict[str, TaskType], base: Path, ctx: TaskContext, path: str
) -> None:
    result = tasks["write_file"].handler(valid(WriteFile, base, path=path, content="x"), ctx)
    assert result == {"path": "/a/c.txt", "bytes": 1}
    assert (base / "a" / "c.txt").read_text() == "x"
