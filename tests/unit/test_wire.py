"""The hot routes' task JSON is TaskOut's, for any task the domain can hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from domain.task import Attempt, Backoff, Task, TaskError, TaskStatus
from interfaces.http.schemas import TaskOut, _from_millis, _iso, time_text
from interfaces.http.wire import task_wire

MS = st.integers(min_value=-(10**15), max_value=10**15)  # the years 1-9999 and beyond
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
ATTEMPTS = st.builds(
    Attempt,
    st.text(max_size=10),
    MS,
    MS,
    st.sampled_from(["completed", "retry"]),
    st.integers(0, 10**9),
)
TASKS = st.builds(
    Task,
    id=st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    name=st.text(min_size=1, max_size=10),
    payload=st.dictionaries(st.text(max_size=5), JSON, max_size=3),
    created_at=MS,
    run_at=MS,
    status=st.sampled_from(TaskStatus),
    attempts=st.integers(0, 9),
    backoff=st.builds(
        Backoff,
        st.integers(0, 10**6),
        st.sampled_from([1, 1.0, 2.5]),
        st.integers(0, 10**7),
        st.booleans(),
    ),
    started_at=st.none() | MS,
    finished_at=st.none() | MS,
    result=JSON,
    error=st.none() | st.builds(TaskError, st.text(max_size=8), st.text(max_size=8)),
    progress=JSON,
    worker_id=st.none() | st.text(max_size=8),
    fence=st.integers(0, 10**9),
    history=st.lists(ATTEMPTS, max_size=3).map(tuple),
    created_by=st.none() | st.text(max_size=8),
)


@given(TASKS)
def test_task_wire_is_what_task_out_dumps(task: Task) -> None:
    expected = TaskOut.model_validate(task).model_dump(mode="json", by_alias=True)
    assert task_wire(task) == expected


@given(MS)
def test_a_time_s_text_is_the_timestamp_field_s(value: int) -> None:
    assert time_text(value) == _iso(_from_millis(value))


def test_a_history_entry_s_fence_is_null_when_not_recorded() -> None:
    old, new = Attempt("w1", 0, 1, "completed"), Attempt("w1", 0, 1, "completed", 12)
    task = Task(id="t1", name="echo", payload={}, created_at=0, run_at=0, history=(old, new))

    assert [entry["fence"] for entry in task_wire(task)["history"]] == [None, 12]
