"""Task lists and a task's page: search, CSV export, retry, and confirmation."""

from __future__ import annotations

import csv
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_KEY, enqueue
from tests.e2e.conftest import Cluster

HOUR_MS = 3_600_000


def show_tasks(page: Page, **filters: str) -> None:
    """Open the task list from the menu and apply `filters` through its form."""
    page.get_by_test_id("nav").get_by_role("link", name="Tasks", exact=True).click()
    form = page.get_by_test_id("filters")
    expect(form).to_be_visible()
    for name, value in filters.items():
        field = form.locator(f"[name={name}]")
        if name == "status":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_test_id("apply").click()


def test_a_task_is_found_by_a_word_of_its_payload(admin: Page, conveyor: Cluster) -> None:
    wanted = enqueue(conveyor, "b-search", "echo", payload={"note": "a crate of pomegranates"})
    enqueue(conveyor, "b-search", "echo", payload={"note": "a crate of apricots"})
    show_tasks(admin, search="pomegranates")
    rows = admin.get_by_test_id("task-row")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-id", wanted)
    assert "search=pomegranates" in admin.url  # the filter is in the hash: Back works

    rows.get_by_role("link", name=wanted).click()
    expect(admin.get_by_test_id("task-id")).to_have_text(wanted)
    expect(admin.get_by_test_id("task-payload")).to_contain_text("a crate of pomegranates")


def test_csv_export_downloads_the_filtered_list(
    admin: Page, conveyor: Cluster, tmp_path: Path
) -> None:
    done = [enqueue(conveyor, "b-export", "echo", payload={"n": n}) for n in range(3)]
    enqueue(conveyor, "b-export", "echo", payload={"n": "later"}, delayMs=HOUR_MS)
    for task_id in done:
        conveyor.wait_status(task_id, "completed")
    show_tasks(admin, queue="b-export", status="completed")
    expect(admin.get_by_test_id("task-row")).to_have_count(3)

    with admin.expect_download() as started:
        admin.get_by_test_id("export").click()
    download = started.value
    assert download.suggested_filename == "tasks.csv"
    saved = tmp_path / "tasks.csv"
    download.save_as(saved)
    with saved.open(newline="") as file:
        exported = list(csv.DictReader(file))
    assert sorted(line["id"] for line in exported) == sorted(done)
    assert {(line["queue"], line["status"]) for line in exported} == {("b-export", "completed")}


def test_a_failed_task_is_retried_from_its_page(
    admin: Page, conveyor: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "fail-while-here"
    marker.touch()
    task_id = enqueue(conveyor, "b-retry", "flaky", payload={"marker": str(marker)})
    # It fails while the overview is open: the recent failures list it, with a link.
    failures = admin.get_by_test_id("failure-table")
    failures.get_by_role("link", name=task_id).click()
    expect(admin.get_by_test_id("task-status")).to_have_text("failed")
    expect(admin.get_by_test_id("task-error")).to_contain_text("is still there")
    expect(admin.get_by_test_id("traceback")).to_contain_text("RuntimeError")

    marker.unlink()
    admin.get_by_test_id("action-retry").click()
    expect(admin.get_by_test_id("message")).to_contain_text("retry: the task is now")
    expect(admin.get_by_test_id("task-status")).to_have_text("completed")
    expect(admin.get_by_test_id("task-result")).to_contain_text("gone")
    expect(admin.get_by_test_id("execution")).to_have_count(2)
    expect(admin.get_by_test_id("audit-entry")).to_contain_text("retry")
    task = conveyor.task(task_id)
    assert task["status"] == "completed"
    # Each execution shows the fence token it ran under: the retry's is the newer one.
    fences = [str(entry["fence"]) for entry in task["history"]]
    assert fences[0] != fences[1]
    for row, fence in zip(admin.get_by_test_id("execution").all(), fences, strict=True):
        expect(row.get_by_test_id("fence")).to_have_text(fence)


def test_a_destructive_action_asks_first_and_keep_leaves_the_task(
    admin: Page, conveyor: Cluster
) -> None:
    task_id = enqueue(conveyor, "b-keep", "echo", payload={"keep": True}, delayMs=HOUR_MS)
    show_tasks(admin, queue="b-keep")
    admin.get_by_test_id("task-row").get_by_role("link", name=task_id).click()
    expect(admin.get_by_test_id("task-status")).to_have_text("delayed")

    admin.get_by_test_id("action-delete").click()
    dialog = admin.get_by_test_id("confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("cannot be undone")
    dialog.get_by_test_id("confirm-no").click()
    expect(dialog).to_have_count(0)
    expect(admin.get_by_test_id("message")).to_be_hidden()
    expect(admin.get_by_test_id("task-status")).to_have_text("delayed")
    assert conveyor.task(task_id)["status"] == "delayed"

    admin.get_by_test_id("action-cancel").click()
    admin.get_by_test_id("confirm").get_by_test_id("confirm-yes").click()
    expect(admin.get_by_test_id("task-status")).to_have_text("cancelled")
    assert conveyor.task(task_id)["status"] == "cancelled"


def test_an_older_page_keeps_its_rows_and_shows_their_new_status(
    admin: Page, conveyor: Cluster
) -> None:
    for n in range(25):
        enqueue(conveyor, "b-older", "echo", payload={"n": n}, delayMs=HOUR_MS)
    show_tasks(admin, queue="b-older")
    expect(admin.get_by_test_id("task-row")).to_have_count(20)
    admin.get_by_test_id("next-page").click()
    rows = admin.get_by_test_id("task-row")
    expect(rows).to_have_count(5)
    shown = [row.get_attribute("data-id") for row in rows.all()]

    cancelled = conveyor.http.post(
        f"/api/tasks/{shown[2]}/cancel", headers={"X-API-Key": ADMIN_KEY}
    )
    assert cancelled.status_code == 200, cancelled.text
    enqueue(conveyor, "b-older", "echo", payload={"n": "newest"}, delayMs=HOUR_MS)

    # The summary feed names the cancelled task: its row says so, in its place, and the
    # newest task (on the first page now) pushes nothing along on this one.
    expect(rows.nth(2).get_by_test_id("status")).to_have_text("cancelled")
    assert [row.get_attribute("data-id") for row in rows.all()] == shown
    expect(rows.nth(0).get_by_test_id("status")).to_have_text("delayed")
