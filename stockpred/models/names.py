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

# the worlds a model lives in (each class's ``world`` trait): one stock's next close, one
# score per (day, stock) of a universe, or an encoder whose codes other models read
STOCK, CROSS_SECTION, ENCODER = "stock", "cross_section", "encoder"

# name -> (world, class). The world repeats the class's trait so that config.py checks a name
# without importing its model (tests/test_stages.py holds the two equal); names are unique
# across worlds, so a saved model's name alone says what to load.
MODELS = {
    "persistence": (STOCK, "stockpred.models.baselines:Persistence"),
    "drift": (STOCK, "stockpred.models.baselines:Drift"),
    "arima": (STOCK, "stockpred.models.baselines:Arima"),
    "svr": (STOCK, "stockpred.models.learned:SupportVectorForecaster"),
    "xgboost": (STOCK, "stockpred.models.learned:XGBoostForecaster"),
    "lstm": (STOCK, "stockpred.models.neural:LSTMForecaster"),
    "gru": (STOCK, "stockpred.models.neural:GRUForecaster"),
    "tcn": (STOCK, "stockpred.models.neural:TCNForecaster"),
    "wgan": (STOCK, "stockpred.generative.wgan:WGANForecaster"),
    "wgan+minutes": (STOCK, "stockpred.generative.conditioned:MinuteWGAN"),
    "wgan+news": (STOCK, "stockpred.generative.conditioned:NewsWGAN"),
    "fusion": (STOCK, "stockpred.models.fusion:FusionForecaster"),
    "news": (STOCK, "stockpred.news.forecaster:NewsForecaster"),
    "fusion+news": (STOCK, "stockpred.models.fusion:NewsFusionForecaster"),
    "fusion+equal": (STOCK, "stockpred.models.fusion:EqualFusionForecaster"),
    "fusion+dqn": (STOCK, "stockpred.models.fusion_dqn:DQNFusionForecaster"),
    "last_return": (CROSS_SECTION, "stockpred.models.cross_section:LastReturn"),
    "random": (CROSS_SECTION, "stockpred.models.cross_section:RandomScore"),
    "lightgbm": (CROSS_SECTION, "stockpred.models.cross_section:LightGBMModel"),
    "xgboost_cs": (CROSS_SECTION, "stockpred.models.cross_section:XGBoostModel"),
    "mlp": (CROSS_SECTION, "stockpred.models.cross_section:MLPModel"),
    "lstm_cs": (CROSS_SECTION, "stockpred.models.sequence:SequenceModel"),
    "ensemble": (CROSS_SECTION, "stockpred.models.ensemble:RankEnsemble"),
    "vae": (ENCODER, "stockpred.generative.vae:WindowVAE"),
    "minute_encoder": (ENCODER, "stockpred.generative.minutes:MinuteDayEncoder"),
    "news_seq2seq": (ENCODER, "stockpred.news.seq2seq:NewsSeq2Seq"),
}
WORLD_NAMES = {STOCK: "model", CROSS_SECTION: "cross-sectional model", ENCODER: "encoder"}


def names_in(world: str) -> list[str]:
    return [name for name, (in_world, _) in MODELS.items() if in_world == world]


# extra input families a single-stock model can read beside its features: `xgboost+vae` is
# xgboost with the VAE's latent codes, `lstm+minutes` the LSTM with the minute-bar day codes,
# and `lstm+vae+minutes` both (stockpred.dataset.CODE_FAMILIES says where each comes from)
INPUT_FAMILIES = ("vae", "minutes")


def unknown_model(name: str, known, what: str = "model") -> InputError:
    """The one-line error for a misspelled name, with the closest known ones."""
    close = difflib.get_close_matches(name.lower(), list(known), n=2, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return InputError(f"unknown {what} {name!r}; {hint}{what}s are {', '.join(known)}")


def split_model_name(name: str) -> tuple[str, tuple[str, ...]]:
    """(registered model, extra input families) of a name such as ``xgboost+vae``. A name
    in the registry is a model of its own, whatever it is spelled with."""
    if name in MODELS:
        return name, ()
    base, *families = name.split("+")
    if base in names_in(STOCK) and families and all(f in INPUT_FAMILIES for f in families) \
            and len(set(families)) == len(families):
        return base, tuple(families)
    raise unknown_model(name, MODELS)


def is_model_name(name: str, world: str = STOCK) -> bool:
    try:
        return MODELS[split_model_name(name)[0]][0] == world
    except InputError:
        return False


def model_names_hint(world: str = STOCK) -> str:
    hint = f"{WORLD_NAMES[world]}s are {', '.join(names_in(world))}"
    if world == STOCK:
        hint += f", each optionally with {' / '.join('+' + f for f in INPUT_FAMILIES)}"
    return hint


def check_models(names: list[str], world: str = STOCK) -> list[str]:
    unknown = [n for n in names if not is_model_name(n, world)]
    if unknown or not names:
        raise InputError(f"unknown {WORLD_NAMES[world]} {', '.join(unknown) or '(none given)'}"
                         f"; {model_names_hint(world)}")
    return names


def _import(path: str):
    module, cls = path.split(":")
    return getattr(importlib.import_module(module), cls)


def model_class(name: str, world: str | None = None) -> type:
    """The class of model ``name``; with ``world``, only a model of that world."""
    known = MODELS if world is None else names_in(world)
    if name not in known:
        raise unknown_model(name, known, WORLD_NAMES.get(world, "model"))
    return _import(MODELS[name][1])
