"""An in-memory ITemplateStore with the Redis adapter's semantics, kept so by tests/contract."""

from __future__ import annotations

import copy
import itertools

from domain.errors import TemplateNotFound
from domain.task import JSONObject
from domain.templates import Template


class InMemoryTemplateStore:
    def __init__(self) -> None:
        self._templates: dict[str, Template] = {}
        self._ids = itertools.count(1)

    async def add(self, name: str, task_type: str, data: JSONObject, now: int) -> Template:
        # A copy, as the Redis store keeps a serialized one: later edits of `data` stay out.
        template = Template(str(next(self._ids)), name, task_type, copy.deepcopy(data), now)
        self._templates[template.id] = template
        return template

    async def list(self) -> list[Template]:
        return sorted(
            self._templates.values(), key=lambda t: (t.created_at, int(t.id)), reverse=True
        )

    async def get(self, template_id: str) -> Template:
        try:
            return self._templates[template_id]
        except KeyError:
            raise TemplateNotFound(template_id) from None

    async def remove(self, template_id: str) -> None:
        if self._templates.pop(template_id, None) is None:
            raise TemplateNotFound(template_id)
