"""The body of GET /api/events, from a feed: ready, batches, keep-alive comments, the end."""

from __future__ import annotations

from domain.values import TaskEvent
from interfaces.http.live import KEEPALIVE_S, event_messages, task_message


class ScriptedFeed:
    """An EventFeed that answers the batches it is given, then ends for `reason`."""

    def __init__(self, batches: list[list[TaskEvent]], reason: str) -> None:
        self.batches = batches
        self.reason = reason
        self.ended: str | None = None
        self.timeouts: list[float] = []
        self.closed = 0

    async def next_batch(self, timeout_s: float) -> list[TaskEvent]:
        self.timeouts.append(timeout_s)
        if not self.batches:
            self.ended = self.reason
            return []
        return self.batches.pop(0)

    def close(self) -> None:
        self.closed += 1


def event(task_id: str, status: str = "waiting") -> TaskEvent:
    return TaskEvent(task_id, "default", "echo", status)


async def test_ready_then_each_batch_as_one_chunk_then_the_end_and_its_reason() -> None:
    feed = ScriptedFeed([[event("a"), event("a", "active")], [], [event("b")]], "lagged")

    chunks = [chunk async for chunk in event_messages(feed, task_message)]

    assert chunks == [
        b"event: ready\ndata: {}\n\n",
        b'event: task\ndata: {"id":"a","queue":"default","taskName":"echo","status":"waiting"}\n\n'
        b'event: task\ndata: {"id":"a","queue":"default","taskName":"echo","status":"active"}\n\n',
        b": keep-alive\n\n",  # nothing for KEEPALIVE_S: the client is written to all the same
        b'event: task\ndata: {"id":"b","queue":"default","taskName":"echo","status":"waiting"}\n\n',
        b'event: end\ndata: {"reason":"lagged"}\n\n',
    ]
    assert set(feed.timeouts) == {KEEPALIVE_S}
    assert feed.closed == 1


async def test_the_feed_is_closed_when_the_response_stops_early() -> None:
    feed = ScriptedFeed([[event("a")]] * 5, "lost")
    messages = event_messages(feed, task_message)
    assert await anext(messages) == b"event: ready\ndata: {}\n\n"

    await messages.aclose()  # the client went away

    assert feed.closed == 1
