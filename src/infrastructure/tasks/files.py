"""The built-in file tasks, create_folder and write_file, confined to a base folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from application.handlers import NonRetryableError, TaskContext
from application.registry import TaskType

BASE_DIR_CONTEXT_KEY = "files_base_dir"
"""The registry's validation-context key holding the base folder (a `pathlib.Path`)."""

# Retrying cannot turn a file into a folder or grant a permission; other OS errors
# (a full disk, an I/O error) may pass, so they stay retryable.
_PERMANENT_ERRORS = (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def resolve_in_base(base_dir: Path, path: str) -> Path:
    """The real location of `path` read as if `base_dir` were `/`.

    Raises ValueError when the path climbs above the base or a symlink leads out of it.
    """
    parts = _parts(path)
    base = _resolve(base_dir)
    # Resolving (not normalizing) the joined path follows symlinks before `..`, as the
    # kernel does, so `link/../x` is judged by where `link` really points.
    target = _resolve(base.joinpath(*parts))
    if not target.is_relative_to(base):
        raise ValueError("path leads outside the base folder")
    return target


def _parts(path: str) -> list[str]:
    if "\0" in path:
        raise ValueError("path contains a NUL character")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        # Never clamped, unlike a real chroot: `/../a` is a mistake, not `/a`.
        if depth < 0:
            raise ValueError("path climbs above the base folder")
    return parts


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        # The library's message names host paths, which must not reach the API.
        raise ValueError("path cannot be resolved (a symlink loop?)") from None


def _confined(path: str, info: ValidationInfo) -> str:
    base_dir = (info.context or {}).get(BASE_DIR_CONTEXT_KEY)
    # Fail closed: without a base folder there is nothing to confine the path to.
    if base_dir is None:
        raise ValueError("no base folder is configured for file tasks")
    resolve_in_base(Path(base_dir), path)
    return path


def _names_a_file(path: str) -> str:
    if sum(-1 if part == ".." else 1 for part in _parts(path)) == 0:
        raise ValueError("path names the base folder itself, not a file")
    return path


ConfinedPath = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_confined)]


class CreateFolder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: ConfinedPath


class WriteFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: Annotated[ConfinedPath, AfterValidator(_names_a_file)]
    content: str


def file_tasks(base_dir: Path) -> list[TaskType]:
    """`create_folder` and `write_file`, both working inside `base_dir`."""

    def create_folder(payload: CreateFolder, ctx: TaskContext) -> dict[str, Any]:
        target = _target(base_dir, payload.path)
        with _permanent_errors(payload.path):
            try:
                target.mkdir(parents=True)
            except FileExistsError:
                if not target.is_dir():
                    raise
                return {"path": _shown(base_dir, target), "created": False}
        return {"path": _shown(base_dir, target), "created": True}

    def write_file(payload: WriteFile, ctx: TaskContext) -> dict[str, Any]:
        target = _target(base_dir, payload.path)
        data = payload.content.encode("utf-8")
        with _permanent_errors(payload.path):
            target.parent.mkdir(parents=True, exist_ok=True)
            # A crash mid-write leaves a short file; the task then runs again (at least
            # once) and rewrites it whole, so no temp-file-and-rename dance is needed.
            target.write_bytes(data)
        return {"path": _shown(base_dir, target), "bytes": len(data)}

    # Sync handlers: the worker runs them in a thread and keeps the task's lock until
    # they return, so a retry never writes the same file concurrently.
    return [
        TaskType("create_folder", CreateFolder, create_folder),
        TaskType("write_file", WriteFile, write_file),
    ]


def _target(base_dir: Path, path: str) -> Path:
    # Checked again at run time: the filesystem may have changed since enqueue (a new
    # symlink), and the worker may hold another base folder than the API.
    try:
        return resolve_in_base(base_dir, path)
    except ValueError as exc:
        raise NonRetryableError(f"{path}: {exc}") from None


def _shown(base_dir: Path, target: Path) -> str:
    """The path as the task's author sees it: absolute inside the base, host path hidden."""
    return "/" + "/".join(target.relative_to(base_dir.resolve()).parts)


@contextmanager
def _permanent_errors(path: str) -> Iterator[None]:
    try:
        yield
    except _PERMANENT_ERRORS as exc:
        # The message names the payload's path, not the host's: it ends up in the API.
        raise NonRetryableError(f"{path}: {exc.strerror or type(exc).__name__}") from exc
