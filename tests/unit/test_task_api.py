"""The task author's API: one public module, and the older import paths still serving it."""

from __future__ import annotations

import application.handlers
import application.registry
import application.tasks


def test_one_module_offers_all_a_task_module_needs() -> None:
    for name in ("TaskContext", "TaskType", "NonRetryableError", "RetryAfter", "Backoff"):
        assert name in application.tasks.__all__
        assert getattr(application.tasks, name) is not None


def test_the_older_import_paths_name_the_very_same_objects() -> None:
    for name in ("TaskContext", "NonRetryableError", "RetryAfter", "TaskCancelled", "Logger"):
        assert getattr(application.handlers, name) is getattr(application.tasks, name)
    for name in ("TaskType", "Handler"):
        assert getattr(application.registry, name) is getattr(application.tasks, name)
