"""Task template routes in seed 001's shape: `{name, task: {type, data}}`, snake_case."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from application.templates import CreateTemplate, DeleteTemplate, ListTemplates, UseTemplate
from domain.templates import Template
from interfaces.http.auth import Principal
from interfaces.http.errors import BODY, QUERY, documented
from interfaces.http.schemas import TaskOut, Timestamp
from interfaces.http.values import DueTime, Payload

TemplateName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]


class TemplateModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateTask(TemplateModel):
    type: str = Field(min_length=1, max_length=200)
    data: Payload = Field(default_factory=dict)


class TemplateBody(TemplateModel):
    name: TemplateName
    task: TemplateTask


class UseTemplateBody(TemplateModel):
    """When to run the task: an ISO 8601 moment (UTC if it names no zone); past or none: now."""

    scheduled_at: DueTime | None = None

    def run_at(self) -> int | None:
        moment = self.scheduled_at  # DueTime gave it a zone
        return None if moment is None else int(moment.timestamp() * 1000)


class TemplateOut(TemplateModel):
    id: str
    name: str
    task: TemplateTask
    created_at: Timestamp

    @classmethod
    def of(cls, template: Template) -> TemplateOut:
        task = TemplateTask(type=template.task_type, data=template.data)
        return cls(id=template.id, name=template.name, task=task, created_at=template.created_at)


class TemplateController(Controller):
    path = "/api/templates"
    tags = ["templates"]  # noqa: RUF012 - litestar reads it as a class attribute

    @get("/", summary="List templates, newest first", responses=documented())
    async def list_all(self, list_templates: NamedDependency[ListTemplates]) -> list[TemplateOut]:
        return [TemplateOut.of(template) for template in await list_templates.execute()]

    @post(
        "/",
        status_code=201,
        summary="Save a task definition as a template",
        responses=documented(*BODY),
    )
    async def create(
        self, data: JSONBody[TemplateBody], create_template: NamedDependency[CreateTemplate]
    ) -> TemplateOut:
        task = data.task
        return TemplateOut.of(await create_template.execute(data.name, task.type, task.data))

    @delete(
        "/{template_id:str}",
        status_code=204,
        summary="Delete a template",
        responses=documented(*QUERY, 404),
    )
    async def remove(
        self, template_id: FromPath[str], delete_template: NamedDependency[DeleteTemplate]
    ) -> None:
        await delete_template.execute(template_id)

    @post(
        "/{template_id:str}/use",
        status_code=202,
        summary="Enqueue a task from a template",
        responses=documented(*BODY, 404, 409, enqueues=True),
    )
    async def use(
        self,
        template_id: FromPath[str],
        use_template: NamedDependency[UseTemplate],
        principal: NamedDependency[Principal],
        data: JSONBody[UseTemplateBody | None] = None,
    ) -> TaskOut:
        run_at = data.run_at() if data else None
        enqueued = await use_template.execute(template_id, run_at, created_by=principal.name)
        return TaskOut.model_validate(enqueued.task)
