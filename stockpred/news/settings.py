"""The `news` section of config.json (kept here so the news code owns its settings)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class BertServiceSettings(_Section):
    host: str = "localhost"
    port: int = Field(5555, gt=0)
    port_out: int = Field(5556, gt=0)
    timeout_ms: int = Field(30000, gt=0)


class NewsSettings(_Section):
    encoder: Literal["offline", "bert-service"] = "offline"
    dimensions: int = Field(64, gt=1)
    bert: BertServiceSettings = Field(default_factory=BertServiceSettings)
