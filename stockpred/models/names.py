"""The model names -> classes: the one list `train`, `evaluate`, `tune` and the config check
read, and how a name such as ``xgboost+vae`` parses.

Classes are named as "module:Class" and imported on use, so that config.py validates names
without importing a model and a baseline never imports TensorFlow. Adding a model is one
class and one line here; the conformance suite (stockpred.testing.conformance) then tests
it. Unfitted models with their config settings: stockpred.models.registry.
"""

from __future__ import annotations

import difflib
import importlib

from stockpred.errors import InputError

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


def unknown_model(name: str, known, what: str = "model") -> InputError:
    """The one-line error for a misspelled name, with the closest known ones."""
    close = difflib.get_close_matches(name.lower(), list(known), n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return InputError(f"unknown {what} {name!r}; {hint}{what}s are {', '.join(known)}")


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


def _import(path: str):
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def cross_sectional_class(name: str):
    if name not in CROSS_SECTIONAL:
        raise unknown_model(name, CROSS_SECTIONAL, "cross-sectional model")
    return _import(CROSS_SECTIONAL[name])


def forecaster_class(name: str) -> type:
    if name not in REGISTRY:
        raise unknown_model(name, REGISTRY)
    return _import(REGISTRY[name])
