"""Model names -> classes: the one list `train`, `evaluate`, `tune` and the config check read.

Classes are named as "module:Class" and imported on use, so that a baseline never
imports TensorFlow. Adding a model is one class and one line here; the conformance
suite (stockpred.testing.conformance) then tests it.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from stockpred.errors import InputError

if TYPE_CHECKING:
    from stockpred.config import Config
    from stockpred.models.base import Forecaster

REGISTRY = {
    "persistence": "stockpred.models.baselines:Persistence",
    "drift": "stockpred.models.baselines:Drift",
    "arima": "stockpred.models.baselines:Arima",
    "svr": "stockpred.models.learned:SupportVectorForecaster",
    "xgboost": "stockpred.models.learned:XGBoostForecaster",
    "lstm": "stockpred.models.neural:LSTMForecaster",
    "gru": "stockpred.models.neural:GRUForecaster",
    "tcn": "stockpred.models.neural:TCNForecaster",
    "wgan": "stockpred.generative.wgan:WGANForecaster",
    "fusion": "stockpred.models.fusion:FusionForecaster",
    "news": "stockpred.news.forecaster:NewsForecaster",
    "fusion+news": "stockpred.models.fusion:NewsFusionForecaster",
}


# extra input families a model can read beside its features: `xgboost+vae` is xgboost with
# the VAE's latent codes, `lstm+minutes` the LSTM with the minute-bar day codes, and
# `lstm+vae+minutes` both (stockpred.dataset.CODE_FAMILIES says where each comes from)
INPUT_FAMILIES = ("vae", "minutes")


# the market-wide models: one score per (day, stock) of a universe
CROSS_SECTIONAL = {
    "last_return": "stockpred.models.cross_section:LastReturn",
    "random": "stockpred.models.cross_section:RandomScore",
    "lightgbm": "stockpred.models.cross_section:LightGBMModel",
    "xgboost": "stockpred.models.cross_section:XGBoostModel",
    "mlp": "stockpred.models.cross_section:MLPModel",
}


def _import(path: str):
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def unknown_model(name: str, known, what: str = "model") -> InputError:
    """The one-line error for a misspelled name, with the closest known ones."""
    close = difflib.get_close_matches(name.lower(), list(known), n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return InputError(f"unknown {what} {name!r}; {hint}{what}s are {', '.join(known)}")


def cross_sectional_class(name: str):
    if name not in CROSS_SECTIONAL:
        raise unknown_model(name, CROSS_SECTIONAL, "cross-sectional model")
    return _import(CROSS_SECTIONAL[name])


def cross_sectional_prototype(config: "Config", name: str):
    cls = cross_sectional_class(name)
    return cls(cls.settings_from(config), config.evaluation.seed)


def forecaster_class(name: str) -> type["Forecaster"]:
    if name not in REGISTRY:
        raise unknown_model(name, REGISTRY)
    return _import(REGISTRY[name])


def split_model_name(name: str) -> tuple[str, tuple[str, ...]]:
    """(registered model, extra input families) of a name such as ``xgboost+vae``. A name
    in the registry is a model of its own, whatever it is spelled with."""
    if name in REGISTRY:
        return name, ()
    base, *families = name.split("+")
    if base in REGISTRY and families and all(f in INPUT_FAMILIES for f in families) \
            and len(set(families)) == len(families):
        return base, tuple(families)
    raise unknown_model(name, REGISTRY)


def is_model_name(name: str) -> bool:
    try:
        split_model_name(name)
    except InputError:
        return False
    return True


def model_names_hint() -> str:
    return (f"models are {', '.join(REGISTRY)}, each optionally with "
            f"{' / '.join('+' + f for f in INPUT_FAMILIES)}")


def check_models(names: list[str]) -> list[str]:
    unknown = [n for n in names if not is_model_name(n)]
    if unknown or not names:
        raise InputError(f"unknown model {', '.join(unknown) or '(none given)'}; "
                         f"{model_names_hint()}")
    return names


def model_settings(config: "Config", name: str) -> dict:
    """The settings of model ``name`` as config.json gives them (apply the quick overlay
    to the config first for tiny sizes)."""
    return forecaster_class(name).settings_from(config)


def prototype(config: "Config", name: str, overrides: dict | None = None) -> "Forecaster":
    """An unfitted model of ``name`` with its config settings (plus ``overrides``); for a
    name with input families (``xgboost+vae``), the model itself: the inputs are data."""
    cls = forecaster_class(split_model_name(name)[0])
    return cls({**cls.settings_from(config), **(overrides or {})}, config.evaluation.seed)
