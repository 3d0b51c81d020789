"""The task registry of a process: built-in task types plus the configured modules."""

from __future__ import annotations

from application.registry import TaskRegistry
from infrastructure.settings import Settings
from infrastructure.tasks.email import SmtpConfig, email_tasks
from infrastructure.tasks.files import file_tasks


def build_registry(settings: Settings) -> TaskRegistry:
    base_dir = settings.files_base_dir.resolve()
    registry = TaskRegistry(context={"files_base_dir": base_dir})
    registry.add(*file_tasks(base_dir))
    registry.add(*email_tasks(smtp_config(settings)))
    registry.load(settings.task_module_list)
    return registry


def configured_queues(settings: Settings, registry: TaskRegistry) -> list[str]:
    """QUEUES when set; otherwise `default` and every queue a loaded task type names."""
    return settings.queue_list or sorted({"default", *registry.queues})


def smtp_config(settings: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password,
        tls=settings.smtp_tls,
        sender=settings.smtp_from,
        timeout_s=settings.smtp_timeout_s,
    )
