"""The file tasks against a hostile base folder: symlinks swapped in mid-run, hard links,
FIFOs and sockets, and error messages that must not show the host's paths."""

from __future__ import annotations

import itertools
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from application.handlers import NonRetryableError, TaskContext
from application.running.failures import failure_from
from infrastructure.tasks.files import CreateFolder, PathChanged, WriteFile, file_tasks

Handler = Callable[[Any, TaskContext], Any]
BOUNDED_S = 5.0  # "quickly": a handler that blocks never returns at all
WRITES, WRITERS, RACE_S = 600, 4, 20.0


class SilentLog:
    def _ignore(self, event: str, **fields: Any) -> None:
        pass

    debug = info = warning = error = exception = _ignore


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
def ctx() -> TaskContext:
    return TaskContext(
        task_id="t1", queue="default", attempt=1, fence=1, log=SilentLog(), on_progress=print
    )


@pytest.fixture
def write(base: Path, ctx: TaskContext) -> Callable[[str], Any]:
    handler = next(t.handler for t in file_tasks(base) if t.name == "write_file")
    # model_construct: the run-time guard is under test, not the enqueue-time check.
    return lambda path: handler(WriteFile.model_construct(path=path, content="new"), ctx)


@pytest.fixture
def create(base: Path, ctx: TaskContext) -> Callable[[str], Any]:
    handler = next(t.handler for t in file_tasks(base) if t.name == "create_folder")
    return lambda path: handler(CreateFolder.model_construct(path=path), ctx)


def refusal(call: Callable[[str], Any], path: str) -> str:
    with pytest.raises(NonRetryableError) as caught:
        call(path)
    return str(caught.value)


# -- the race: a folder swapped for a symlink while writes run --------------------------


def move(src: Path, dst: Path, strays: Iterator[int]) -> None:
    for _ in range(100):
        try:
            src.rename(dst)
            return
        except OSError:
            # A writer made `dst` anew while it was missing: move that folder out of the way.
            with suppress(OSError):
                dst.rename(dst.with_name(f"stray{next(strays)}"))
    raise AssertionError(f"could not move {src.name} to {dst.name}")


def swap_until(stop: threading.Event, base: Path, outside: Path) -> None:
    """Swap `d` between a real folder and a symlink to `outside`, as fast as it goes."""
    folder, aside, link, strays = base / "d", base / "d.aside", base / "d.link", itertools.count()
    link.symlink_to(outside, target_is_directory=True)
    while not stop.is_set():
        move(folder, aside, strays)
        move(link, folder, strays)
        move(folder, link, strays)
        move(aside, folder, strays)


def attempt(write: Callable[[str], Any], i: int) -> str:
    try:
        assert write(f"/d/f{i}.txt") == {"path": f"/d/f{i}.txt", "bytes": 3}
    except NonRetryableError:  # `d` was a symlink when the walk reached it
        return "refused"
    # Retryable: `d` changed between two steps of the walk, or the folder being written
    # was a new `d` that the swapper has just replaced (ENOENT).
    except (PathChanged, FileNotFoundError):
        return "retryable"
    return "written"


def write_until_both_seen(write: Callable[[str], Any], first: int) -> Counter[str]:
    """Its share of the writes, then more until it saw both a write and a refusal: a
    swapper starved of the GIL for a while must not leave the race untested."""
    outcomes: Counter[str] = Counter()
    deadline = time.monotonic() + RACE_S
    for i in itertools.count(first, WRITERS):
        raced = outcomes["written"] > 0 and outcomes["refused"] > 0
        if i >= WRITES and (raced or time.monotonic() > deadline):
            return outcomes
        outcomes[attempt(write, i)] += 1
    raise AssertionError("unreachable")


def test_a_folder_swapped_for_a_symlink_mid_run_never_lets_a_write_out(
    base: Path, outside: Path, write: Callable[[str], Any]
) -> None:
    (base / "d").mkdir()
    stop = threading.Event()
    swapper = threading.Thread(target=swap_until, args=(stop, base, outside), daemon=True)
    swapper.start()
    try:
        # Several writers, as a worker runs several sync handlers at once.
        with ThreadPoolExecutor(WRITERS) as pool:
            found = pool.map(partial(write_until_both_seen, write), range(WRITERS))
            outcomes = sum(found, Counter[str]())
    finally:
        stop.set()
        swapper.join(timeout=BOUNDED_S)
    assert not swapper.is_alive()
    assert sorted(outside.iterdir()) == []
    # The race did run: some writes found the folder, some the symlink.
    assert outcomes["written"] > 0, outcomes
    assert outcomes["refused"] > 0, outcomes


# -- hard links, symlinks, FIFOs, sockets ----------------------------------------------


def test_writing_a_name_hard_linked_to_an_outside_file_leaves_that_file_alone(
    base: Path, outside: Path, write: Callable[[str], Any]
) -> None:
    secret = outside / "secret.txt"
    secret.write_text("secret")
    os.link(secret, base / "linked.txt")
    assert write("/linked.txt") == {"path": "/linked.txt", "bytes": 3}
    assert secret.read_text() == "secret"
    assert (base / "linked.txt").read_text() == "new"
    assert secret.stat().st_nlink == 1  # the name was replaced, not written through


@pytest.mark.parametrize("path", ["/final", "final"])
def test_a_symlink_at_the_target_is_refused(
    base: Path, outside: Path, write: Callable[[str], Any], create: Callable[[str], Any], path: str
) -> None:
    (base / "final").symlink_to(outside / "target")
    assert "/final is a symbolic link" in refusal(write, path)
    assert "/final is a symbolic link" in refusal(create, path)
    assert (base / "final").is_symlink()
    assert sorted(outside.iterdir()) == []


def test_a_symlink_on_the_way_is_refused(
    base: Path, outside: Path, write: Callable[[str], Any], create: Callable[[str], Any]
) -> None:
    (base / "a").mkdir()
    (base / "a" / "mid").symlink_to(outside, target_is_directory=True)
    assert "/a/mid is a symbolic link" in refusal(write, "/a/mid/b/file.txt")
    assert "/a/mid is a symbolic link" in refusal(create, "/a/mid/b")
    assert sorted(outside.iterdir()) == []


def test_even_a_symlink_staying_inside_the_base_is_refused_at_run_time(
    base: Path, write: Callable[[str], Any]
) -> None:
    (base / "real").mkdir()
    (base / "alias").symlink_to(base / "real", target_is_directory=True)
    assert "/alias is a symbolic link" in refusal(write, "alias/file.txt")
    assert sorted((base / "real").iterdir()) == []


def bounded(call: Callable[[], Any], fifo: Path) -> BaseException | None:
    """What `call` raised, or None; fails the test if it has not returned in BOUNDED_S."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            raised.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUNDED_S)
    if thread.is_alive():
        # Open the reading end, so that the blocked writer's open() returns and its thread ends.
        with suppress(OSError):
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        pytest.fail(f"the handler still blocks after {BOUNDED_S} s")
    return raised[0]


@pytest.mark.parametrize("path", ["/fifo", "/fifo/below/file.txt"])
def test_a_fifo_at_the_target_or_on_the_way_fails_at_once(
    base: Path, write: Callable[[str], Any], create: Callable[[str], Any], path: str
) -> None:
    fifo = base / "fifo"
    os.mkfifo(fifo)
    for handler in (write, create):
        raised = bounded(partial(handler, path), fifo)
        assert isinstance(raised, NonRetryableError), raised
        assert "/fifo is a FIFO" in str(raised)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_socket_at_the_target_is_refused(base: Path, write: Callable[[str], Any]) -> None:
    try:
        os.mknod(base / "sock", 0o600 | stat.S_IFSOCK)
    except OSError:
        pytest.skip("this system does not let an unprivileged user make a socket node")
    assert "/sock is a socket, not a file" in refusal(write, "/sock")


# -- no host path reaches the task's error ----------------------------------------------


def plant(base: Path, outside: Path) -> None:
    (base / "file.txt").write_text("x")
    (base / "link").symlink_to(outside, target_is_directory=True)
    os.mkfifo(base / "fifo")
    (base / "folder").mkdir()


@pytest.mark.parametrize(
    ("handler", "path"),
    [
        ("write", "/link/a.txt"),
        ("write", "/link"),
        ("write", "/fifo"),
        ("write", "/folder"),
        ("write", "/file.txt/a.txt"),
        ("write", "/../escape.txt"),
        ("create", "/file.txt"),
        ("create", "/link/a"),
        ("create", "/fifo/a"),
    ],
)
def test_error_messages_and_tracebacks_name_no_host_path(
    request: pytest.FixtureRequest, base: Path, outside: Path, handler: str, path: str
) -> None:
    plant(base, outside)
    call = request.getfixturevalue(handler)
    with pytest.raises(NonRetryableError) as caught:
        call(path)
    error = failure_from(caught.value).error
    assert error.message.startswith(f"{path}: ")
    for host_path in (str(base), str(outside), str(base.resolve())):
        assert host_path not in error.message
        assert host_path not in error.traceback


def test_an_unusable_base_folder_is_not_named_either(tmp_path: Path, ctx: TaskContext) -> None:
    taken = tmp_path / "taken"
    taken.write_text("a file where the base folder should be")
    handler = next(t.handler for t in file_tasks(taken / "base") if t.name == "write_file")
    with pytest.raises(NonRetryableError) as caught:
        handler(WriteFile.model_construct(path="/a.txt", content="x"), ctx)
    error = failure_from(caught.value).error
    assert "base folder" in error.message
    assert str(tmp_path) not in error.message
    assert str(tmp_path) not in error.traceback
