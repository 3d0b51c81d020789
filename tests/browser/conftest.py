"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against a real
`conveyor api` (with an admin key and a producer key) and a real `conveyor worker`.

One API and one worker serve the whole package, and one browser; each test gets a fresh
browser context (its own sessionStorage) and works in queues of its own, so tests do not
see each other's tasks. Playwright's own browser download cannot work here: the browser is
the `chromium` package (`apt-get install chromium`, which `.ci/run` does when it is missing).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Error, Locator, Page, Request, expect, sync_playwright

from tests.conftest import TEST_REDIS_URL
from tests.e2e.conftest import Cluster

CHROMIUM = Path("/usr/bin/chromium")
ADMIN_KEY = "dash-admin-7Kq2xVb9Lm4Rt8Wz"
PRODUCER_KEY = "dash-producer-3Hn6Yp1Fs5Dc0Jg"
# One queue (or two) per test; the worker serves them all, by turns.
QUEUES = [
    "default",
    "b-auth",
    "b-overview",
    "b-search",
    "b-retry",
    "b-pause",
    "b-pause-probe",
    "b-export",
    "b-keep",
    "b-older",
]
MODULES = "infrastructure.tasks.demo,tests.browser.tasks"
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="package")
def conveyor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An API with keys and a worker; `conveyor.http` calls it as the producer."""
    flush = redis.Redis.from_url(TEST_REDIS_URL)
    flush.flushdb()
    cluster = Cluster(tmp_path_factory.mktemp("browser"))
    cluster.env.update(
        API_KEYS=f"ops:{ADMIN_KEY}:admin,shop:{PRODUCER_KEY}:producer",
        HOST="127.0.0.1",  # keys make the API listen on every interface unless told
        QUEUES=",".join(QUEUES),
        CONVEYOR_TASK_MODULES=MODULES,
    )
    cluster.http.headers["X-API-Key"] = PRODUCER_KEY
    try:
        cluster.api()
        cluster.worker("--concurrency", "4", "--queues", ",".join(f"{q}=1" for q in QUEUES))
        yield cluster
    finally:
        cluster.close()
        flush.flushdb()
        flush.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
            "Install it with `apt-get install chromium` (`.ci/run` does), "
            "never with `playwright install`."
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, conveyor: Cluster) -> Iterator[Page]:
    """A fresh tab in a fresh context: no key in its storage, nothing left by another test.
    An exception the page's scripts leave uncaught fails the test."""
    context = browser.new_context(base_url=conveyor.url, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    uncaught: list[str] = []

    def record(error: Error) -> None:
        uncaught.append(f"{error.name}: {error.message}\n{error.stack}")

    opened.on("pageerror", record)
    try:
        yield opened
    finally:
        context.close()
    assert not uncaught, "the page threw:\n" + "\n".join(uncaught)


def log_in(page: Page, key: str) -> None:
    """Open the dashboard and give it `key`; the caller checks what the page said."""
    page.goto("/admin/queues")
    page.get_by_test_id("key").fill(key)
    page.get_by_test_id("login-submit").click()


@pytest.fixture
def admin(page: Page) -> Page:
    """The dashboard logged in with the admin key, on its overview."""
    log_in(page, ADMIN_KEY)
    expect(page.get_by_test_id("overview")).to_be_visible()
    expect(page.get_by_test_id("live")).to_have_text("live")
    return page


@pytest.fixture
def requests_seen(page: Page) -> list[Request]:
    """Every request the page sends from now on."""
    seen: list[Request] = []

    def record(request: Request) -> None:  # a bound builtin like `seen.append` cannot be one
        seen.append(request)

    page.on("request", record)
    return seen


def enqueue(conveyor: Cluster, queue: str, task_name: str, **body: Any) -> str:
    """Enqueue through the HTTP API as the producer; the task's id."""
    task = conveyor.enqueue(taskName=task_name, queue=queue, **body)
    return str(task["id"])


def queue_row(page: Page, queue: str) -> Locator:
    """The overview's row of `queue`."""
    return page.get_by_test_id(f"queue-{queue}")
