"""Only the admin key opens the dashboard, and the page keeps and sends it as it should."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import ADMIN_KEY, PRODUCER_KEY, enqueue, log_in
from tests.e2e.conftest import Cluster

SECRET = "marmalade"  # a word of a stored task's payload, which no one without a key may see


def storage(page: Page) -> dict[str, dict[str, str]]:
    return page.evaluate(  # type: ignore[no-any-return]
        "() => ({local: {...localStorage}, session: {...sessionStorage}})"
    )


def test_without_a_key_the_page_shows_only_a_password_input(page: Page, conveyor: Cluster) -> None:
    task_id = enqueue(conveyor, "b-auth", "echo", payload={"note": SECRET})
    served = httpx.get(f"{conveyor.url}/admin/queues")
    assert served.status_code == 200
    assert SECRET not in served.text
    assert task_id not in served.text

    with page.expect_response(lambda response: "/api/stats" in response.url) as probe:
        page.goto("/admin/queues")
    assert probe.value.status == 401  # the page asked without a key, and got nothing
    expect(page.get_by_test_id("key")).to_be_visible()
    expect(page.locator("input")).to_have_count(1)
    expect(page.locator("input")).to_have_attribute("type", "password")
    expect(page.locator("select, textarea, table, nav")).to_have_count(0)
    expect(page.get_by_test_id("login-error")).to_be_hidden()
    html = page.content()
    assert SECRET not in html
    assert task_id not in html


def test_a_wrong_key_is_refused(page: Page) -> None:
    log_in(page, "not-a-key-of-this-api")
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong key.")
    expect(page.get_by_test_id("key")).to_be_visible()
    expect(page.get_by_test_id("key")).to_have_value("")
    expect(page.get_by_test_id("overview")).to_have_count(0)
    assert storage(page) == {"local": {}, "session": {}}


def test_a_producer_key_is_refused_as_not_an_admin_key(page: Page) -> None:
    log_in(page, PRODUCER_KEY)
    expect(page.get_by_test_id("login-error")).to_contain_text("not an admin key")
    expect(page.get_by_test_id("key")).to_be_visible()
    expect(page.get_by_test_id("overview")).to_have_count(0)
    assert storage(page) == {"local": {}, "session": {}}


def test_the_admin_key_stays_in_the_tab_and_goes_with_every_call(
    page: Page, conveyor: Cluster, requests_seen: list[Request]
) -> None:
    task_id = enqueue(conveyor, "b-auth", "echo", payload={"note": "seen by the admin"})
    page.goto("/admin/queues")
    expect(page.get_by_test_id("key")).to_be_visible()
    requests_seen.clear()  # the key-less probe the page made on load is not a call with it
    page.get_by_test_id("key").fill(ADMIN_KEY)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("overview")).to_be_visible()
    expect(page.get_by_test_id("live")).to_have_text("live")  # the event stream is up
    page.get_by_test_id("nav").get_by_role("link", name="Tasks", exact=True).click()
    expect(page.locator(f"[data-testid=task-row][data-id='{task_id}']")).to_be_visible()
    page.get_by_role("link", name=task_id).click()
    expect(page.get_by_test_id("task-status")).to_have_text("completed")

    assert ADMIN_KEY not in page.url
    stored = storage(page)
    assert stored["local"] == {}
    assert ADMIN_KEY in stored["session"].values()
    calls = [request for request in requests_seen if "/api/" in request.url]
    paths = {httpx.URL(request.url).path for request in calls}
    assert {"/api/stats", "/api/events", "/api/tasks", f"/api/tasks/{task_id}"} <= paths
    for request in requests_seen:
        assert ADMIN_KEY not in request.url
    for request in calls:
        assert request.headers.get("x-api-key") == ADMIN_KEY, request.url
