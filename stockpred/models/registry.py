"""Unfitted models with their settings from config.json (the names and their classes:
stockpred.models.names)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stockpred.models.names import cross_sectional_class, forecaster_class, split_model_name

if TYPE_CHECKING:
    from stockpred.config import Config
    from stockpred.models.base import Forecaster


def cross_sectional_prototype(config: "Config", name: str):
    cls = cross_sectional_class(name)
    return cls(cls.settings_from(config), config.evaluation.seed)


def model_settings(config: "Config", name: str) -> dict:
    """The settings of model ``name`` as config.json gives them (apply the quick overlay
    to the config first for tiny sizes)."""
    return forecaster_class(name).settings_from(config)


def prototype(config: "Config", name: str, overrides: dict | None = None) -> "Forecaster":
    """An unfitted model of ``name`` with its config settings (plus ``overrides``); for a
    name with input families (``xgboost+vae``), the model itself: the inputs are data."""
    cls = forecaster_class(split_model_name(name)[0])
    return cls({**cls.settings_from(config), **(overrides or {})}, config.evaluation.seed)
