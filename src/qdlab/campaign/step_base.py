"""Base models of campaign steps (shared by :mod:`qdlab.campaign.spec` and :mod:`qdlab.campaign.steps_extra`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Step(_Model):
    name: str | None = Field(None, description="step name (default: the workflow name)")
    after: str | None = Field(None, description="the step whose output this one takes (default: the previous)")
