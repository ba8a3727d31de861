"""Unfitted models with their settings from config.json (the names and their classes:
stockpred.models.names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stockpred.models.names import model_class, split_model_name

if TYPE_CHECKING:
    from stockpred.config import Config
    from stockpred.models.base import Model


def prototype(config: "Config", name: str, overrides: dict | None = None) -> "Model":
    """An unfitted model of ``name`` with its config settings (plus ``overrides``); for a
    name with input families (``xgboost+vae``), the model itself: the inputs are data."""
    cls = model_class(split_model_name(name)[0])
    return cls({**cls.settings_from(config), **(overrides or {})}, config.evaluation.seed)
