"""The overview follows the tasks live, and pauses and resumes a queue."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import enqueue, queue_row
from tests.e2e.conftest import Cluster

RUN_MS = 2_000  # long enough for the page to show the task active


def test_the_overview_counts_change_as_tasks_run(admin: Page, conveyor: Cluster) -> None:
    row = queue_row(admin, "b-overview")
    expect(row.get_by_test_id("count-completed")).to_have_text("0")
    admin.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads

    enqueue(conveyor, "b-overview", "sleep", payload={"ms": RUN_MS})
    expect(row.get_by_test_id("count-active")).to_have_text("1")
    for number in range(2):
        enqueue(conveyor, "b-overview", "echo", payload={"number": number})
    expect(row.get_by_test_id("count-completed")).to_have_text("3")
    expect(row.get_by_test_id("count-active")).to_have_text("0")
    expect(row.get_by_test_id("count-waiting")).to_have_text("0")
    expect(admin.get_by_test_id("type-sleep")).to_be_visible()
    # The last hour's chart has a bar for this minute, drawn from `perMinute`.
    bars = admin.get_by_test_id("chart").locator("rect.bar-done:not([height='0'])")
    expect(bars).not_to_have_count(0)
    assert admin.evaluate("() => window.sameDocument") is True


def test_a_paused_queue_starts_nothing_until_resumed(admin: Page, conveyor: Cluster) -> None:
    row = queue_row(admin, "b-pause")
    row.get_by_test_id("pause").click()
    expect(admin.get_by_test_id("message")).to_have_text("Queue b-pause paused.")
    expect(row.get_by_test_id("paused")).to_have_text("paused")

    held = enqueue(conveyor, "b-pause", "echo", payload={"held": True})
    # The worker looks at all its queues in each claim: once it has run a task enqueued
    # after `held`, it has passed `held` over.
    enqueue(conveyor, "b-pause-probe", "echo", payload={"probe": True})
    expect(queue_row(admin, "b-pause-probe").get_by_test_id("count-completed")).to_have_text("1")
    expect(row.get_by_test_id("count-waiting")).to_have_text("1")
    expect(row.get_by_test_id("count-active")).to_have_text("0")
    expect(row.get_by_test_id("count-completed")).to_have_text("0")
    assert conveyor.task(held)["status"] == "waiting"

    row.get_by_test_id("resume").click()
    expect(admin.get_by_test_id("message")).to_have_text("Queue b-pause resumed.")
    expect(row.get_by_test_id("paused")).to_have_text("running")
    expect(row.get_by_test_id("count-completed")).to_have_text("1")
    expect(row.get_by_test_id("count-waiting")).to_have_text("0")
    assert conveyor.task(held)["status"] == "completed"
