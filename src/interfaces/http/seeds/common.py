"""The base of the seeds' own shapes: unknown fields refused, built from an entity's attributes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SeedModel(BaseModel):
    model_config = ConfigDict(extra="forbid", from_attributes=True, populate_by_name=True)
