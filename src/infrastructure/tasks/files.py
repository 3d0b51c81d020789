"""The built-in file tasks, create_folder and write_file, confined to a base folder."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from application.tasks import NonRetryableError, TaskContext, TaskType

BASE_DIR_CONTEXT_KEY = "files_base_dir"
"""The registry's validation-context key holding the base folder (a `pathlib.Path`)."""

# Retrying cannot turn a file into a folder, grant a permission or shorten a name; other
# OS errors (a full disk, an I/O error) may pass, so they stay retryable.
_PERMANENT_ERRNOS = frozenset(
    {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG}
)
# O_NOFOLLOW: a symlink is refused, never followed. O_DIRECTORY: a FIFO or a device is
# refused before it is opened. O_NONBLOCK: should one be opened all the same, it cannot block.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
# O_EXCL: only a file made here and now is ever written, never what stands at a name.
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFREG: "a file",
    stat.S_IFDIR: "a folder",
}


def resolve_in_base(base_dir: Path, path: str) -> Path:
    """The real location of `path` read as if `base_dir` were `/`.

    Raises ValueError when the path climbs above the base or a symlink leads out of it.
    This is the enqueue-time check, for a clear 422; the filesystem may change before the
    task runs, so the handlers walk the path again by file descriptor, following no link.
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


class _Refused(Exception):
    """Something other than a folder on the way, or than a file at the target."""


class PathChanged(Exception):
    """A name changed while the path was walked: retryable, the next attempt may pass."""


def file_tasks(base_dir: Path) -> list[TaskType]:
    """`create_folder` and `write_file`, both working inside `base_dir`."""

    def create_folder(payload: CreateFolder, ctx: TaskContext) -> dict[str, Any]:
        parts = _run_time_parts(payload.path)
        with _reported(payload.path), _walked(base_dir, parts) as (_, created):
            return {"path": _shown(parts), "created": created}

    def write_file(payload: WriteFile, ctx: TaskContext) -> dict[str, Any]:
        names = _run_time_parts(payload.path)
        if not names:
            raise NonRetryableError(f"{payload.path}: path names the base folder itself")
        *folders, name = names
        data = payload.content.encode("utf-8")
        with _reported(payload.path), _walked(base_dir, folders) as (folder, _):
            _replace(folder, name, data, _shown([*folders, name]), ctx)
        return {"path": _shown([*folders, name]), "bytes": len(data)}

    # Sync handlers: the worker runs them in a thread and keeps the task's lock until
    # they return, so a retry never writes the same file concurrently.
    return [
        TaskType("create_folder", CreateFolder, create_folder),
        TaskType("write_file", WriteFile, write_file),
    ]


def _run_time_parts(path: str) -> list[str]:
    """The path's names below the base, `..` applied: no symlink is followed at run time,
    so a name's parent is the folder it was reached from."""
    try:
        parts = _parts(path)
    except ValueError as exc:
        raise NonRetryableError(f"{path}: {exc}") from None
    names: list[str] = []
    for part in parts:
        if part == "..":
            names.pop()  # never empty: `_parts` refuses a climb above the base
        else:
            names.append(part)
    return names


def _shown(names: list[str]) -> str:
    """A path as the task's author sees it: absolute inside the base, host path hidden."""
    return "/" + "/".join(names)


@contextmanager
def _walked(base_dir: Path, names: list[str]) -> Iterator[tuple[int, bool]]:
    """The folder at `names` below the base, made where missing, opened one name at a time
    from the base's descriptor: a folder swapped for a symlink mid-walk is refused, never
    followed. Yields its descriptor and whether its last name was made here."""
    fd, created = _open_base(base_dir), False
    try:
        for depth, name in enumerate(names, start=1):
            parent = fd
            fd, created = _enter(parent, name, _shown(names[:depth]))
            os.close(parent)
        yield fd, created
    finally:
        os.close(fd)


def _open_base(base_dir: Path) -> int:
    try:
        base_dir.mkdir(parents=True, exist_ok=True)
        # The base itself is the operator's, symlinks and all: only what lies below is walked.
        return os.open(base_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        # Without its filename: the host path must not reach the task's error.
        raise OSError(exc.errno, f"the base folder cannot be opened ({exc.strerror})") from None


def _enter(parent: int, name: str, shown: str) -> tuple[int, bool]:
    try:
        return _open_folder(parent, name, shown), False
    except FileNotFoundError:
        pass
    try:
        os.mkdir(name, dir_fd=parent)
    except FileExistsError:
        # Made meanwhile by a concurrent task (mkdir -p semantics), or swapped in by
        # someone: the open below judges what stands there now.
        return _open_folder(parent, name, shown), False
    return _open_folder(parent, name, shown), True


def _open_folder(parent: int, name: str, shown: str) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=parent)
    except OSError as exc:
        # Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW, macOS ELOOP.
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        mode = _mode(parent, name)
    if mode is None or stat.S_ISDIR(mode):
        raise PathChanged(f"{shown} changed while it was walked")
    raise _refusal(shown, mode, "a folder")


def _mode(parent: int, name: str) -> int | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


def _refusal(shown: str, mode: int, wanted: str) -> _Refused:
    kind = _KINDS.get(stat.S_IFMT(mode), "neither a file nor a folder")
    if stat.S_ISLNK(mode):
        return _Refused(f"{shown} is a symbolic link, and file tasks follow no links")
    return _Refused(f"{shown} is {kind}, not {wanted}")


def _replace(folder: int, name: str, data: bytes, shown: str, ctx: TaskContext) -> None:
    """Write a new file beside `name` and rename it over `name`: the rename replaces the
    name, never writes through it, so a hard link at `name` keeps its other file intact,
    and a reader never sees half a file."""
    mode = _kept_mode(folder, name, shown)
    temp = f".conveyor-{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, _NEW_FILE_FLAGS, 0o666, dir_fd=folder)
    try:
        _fill(fd, data, mode)
        ctx.raise_if_cancelled()  # an aborted task leaves the old file as it was
        os.rename(temp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp, dir_fd=folder)
        raise
    try:
        os.fsync(folder)  # the rename itself, durable
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # a filesystem that cannot sync a folder
            raise


def _kept_mode(folder: int, name: str, shown: str) -> int | None:
    """The permissions of the file being replaced, if one is; refuses anything else."""
    mode = _mode(folder, name)
    if mode is not None and not stat.S_ISREG(mode):
        # Only a message: were it swapped after this look, the rename would still replace
        # the name without opening what stands there.
        raise _refusal(shown, mode, "a file")
    # Without set-id bits: those would come from whoever could plant the old file.
    return None if mode is None else stat.S_IMODE(mode) & 0o777


def _fill(fd: int, data: bytes, mode: int | None) -> None:
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)  # before the rename: after a crash, the old content or the new whole
    finally:
        os.close(fd)


@contextmanager
def _reported(path: str) -> Iterator[None]:
    """Errors that name the payload's path, never the host's: they end up in the API. The
    cause is dropped (`from None`) as it would show in the task's traceback."""
    try:
        yield
    except _Refused as exc:
        raise NonRetryableError(f"{path}: {exc}") from None
    except PathChanged as exc:
        raise PathChanged(f"{path}: {exc}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in _PERMANENT_ERRNOS:
            raise NonRetryableError(f"{path}: {reason}") from None
        raise OSError(exc.errno, f"{path}: {reason}") from None
