"""The evaluate stage: walk-forward forecasts of several models, and the leaderboard.

Persistence (tomorrow = today) and drift are always rows, and so is every model `stockpred
tune` tuned on these stocks and periods. A model named with input families
(``xgboost+vae``, ``lstm+minutes``) is the same model given the codes of those encoders
beside its features, so each such row is read against the model's own row. Every model
is walked forward at each of evaluation.horizons (the close h traded days ahead; rows and
predictions say their horizon when any is not 1), against persistence at the same horizon.
Writes
<data dir>/runs/evaluate/<run id>/predictions.parquet and metrics.json, and the leaderboard
<results dir>/leaderboard.{md,json} (stockpred.evaluation.leaderboard).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from stockpred.config import Config, quick_config
from stockpred.data.store import atomic_write_parquet
from stockpred.dataset import Periods, load_stocks, with_codes
from stockpred.errors import InputError
from stockpred.evaluation import distribution, leaderboard
from stockpred.evaluation.scoring import (VERSUS_COLUMNS, leaderboard_columns,
                                          observations_note, score, versus)
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.layout import Paths, new_run_folder
from stockpred.manifest import config_hash, package_versions, upstream
from stockpred.models.names import STOCK, check_models, model_class, split_model_name
from stockpred.models.registry import prototype
from stockpred.news.forecaster import with_news
from stockpred.tuning.spaces import tunable

ALWAYS = ["persistence", "drift"]


@dataclass
class EvaluationReport:
    rows: list[dict]
    run_id: str
    markdown: str

    def summary(self) -> list[str]:
        return self.markdown.strip().splitlines()


def run(config: Config, paths: Paths, ts_codes: list[str] | None = None,
        models: list[str] | None = None, quick: bool = False,
        progress: bool = True) -> EvaluationReport:
    if quick:
        config = quick_config(config)
    ev = config.evaluation
    protocol = WalkForward.from_config(config)
    names = list(dict.fromkeys(ALWAYS + check_models(models or ev.models)))
    families = {name: split_model_name(name)[1]
                + model_class(split_model_name(name)[0]).reads_codes for name in names}
    stocks, features = load_stocks(config, paths, ts_codes)
    if not any(Periods.from_config(config).in_test(s.dates).any() for s in stocks):
        raise InputError(f"no trading day between test start {ev.test_start} and test end "
                         f"{ev.test_end} in the stored features")
    models = {name: prototype(config, name) for name in names}
    models.update(leaderboard.tuned_models(
        config, {m: paths.tune_dir(m) for m in tunable(STOCK)},
        leaderboard.tuning_scope(config, stocks=sorted(s.ts_code for s in stocks))))
    if any(model.reads_news for model in models.values()):
        stocks = with_news(stocks, config, paths)
    # each combination of code families joined once onto the stocks read once
    inputs = {(): (stocks, [])}  # persistence and drift read no codes
    for extra in dict.fromkeys(families.values()):
        if extra:
            inputs[extra] = with_codes(stocks, paths, extra, ev.test_start)
    # a board of the next close alone keeps the rows and files it had before horizons
    tagged = ev.horizons != [1]
    rows, frames, sampled, against = [], [], {}, []
    for horizon in ev.horizons:
        tag = {"horizon": horizon} if tagged else {}
        forecasts = {}
        for name, model in models.items():
            data = [s.ahead(horizon) for s in inputs[families.get(name, ())][0]]
            on_refit = None
            # the sampled next-day distributions, scored with the next-day refits
            if model.samples_returns and horizon == 1:
                blocks = sampled.setdefault(name, [])
                on_refit = (lambda fitted, first, last, data=data, blocks=blocks:
                            blocks.append(distribution.block_scores(fitted, data, first, last,
                                                                    ev.seed)))
            forecasts[name] = walk_forward(model, data, protocol, progress, on_refit)
        rows += [{"model": name, **tag, **score(frame, forecasts["persistence"], horizon)}
                 for name, frame in forecasts.items()]
        frames += [frame.assign(model=name, **tag) for name, frame in forecasts.items()]
        against += [{"model": name, **tag, "reference": model.weighs_against,
                     **versus(forecasts[name], forecasts[model.weighs_against], horizon)}
                    for name, model in models.items()
                    if getattr(model, "weighs_against", None) in forecasts]
    tables = [leaderboard.table(rows, leaderboard_columns(rows))]
    if sampled:
        tables.append(leaderboard.table(
            distribution.distribution_rows({name: pd.concat(blocks, ignore_index=True)
                                            for name, blocks in sampled.items()}),
            distribution.COLUMNS, "Sampled next-day log returns: CRPS and band coverage"))
    if against:
        tables.append(leaderboard.table(
            against, ["model", "horizon", *VERSUS_COLUMNS[1:]] if tagged else VERSUS_COLUMNS,
            "Fusion weights against the fixed weight fit on validation"))
    what = ("next-day forecasts" if not tagged else
            f"forecasts {', '.join(map(str, ev.horizons))} traded days ahead")
    header = (f"# Leaderboard\n\nWalk-forward {what} of {len(stocks)} "
              f"stock(s) ({', '.join(s.ts_code for s in stocks[:5])}"
              f"{', ...' if len(stocks) > 5 else ''}), test period {ev.test_start}.."
              f"{ev.test_end}, refit every {ev.retrain_every} trading days on the trailing "
              f"{ev.train_window_days} days{' (quick sizes)' if quick else ''}. Persistence is "
              f"tomorrow = today; dm_* compares squared return errors with persistence's "
              f"(negative: the model is better): dm_*_vs_persistence is Diebold-Mariano with "
              f"the Harvey-Leybourne-Newbold correction over every forecast, dm_daily_nw_* "
              f"the same on the by-day mean differential with a Newey-West variance; "
              f"pt_pvalue is Pesaran-Timmermann's test of the direction; beats_persistence "
              f"needs dm < 0 at p < 0.05 (by day on several stocks, HLN on one)."
              + (" A row named <model>+vae or <model>+minutes is the model given, beside "
                 "its features, the VAE's latent codes of the stock or the minute-bar day "
                 "codes of the index; each encoder was fit once on days before "
                 f"{ev.validation_start} and stopped early on days before {ev.test_start}, "
                 "not refit per block." if any(families.values()) else "")
              + (" The second table scores the sampled next-day log return of each "
                 "generative model with the same refits: mean CRPS (smaller is better), the "
                 "share of actual returns inside the central 80% and 95% bands, and "
                 "Diebold-Mariano by day (Newey-West) on the CRPS differential against the "
                 "Gaussian random walk with each refit's training mean and volatility and, "
                 "for a conditioned WGAN, against the plain wgan; beats_* needs dm < 0 at "
                 "p < 0.05." if sampled else "")
              + (" The last table tests each fusion whose weight is not fit once on "
                 "validation (fusion+equal: 0.5; fusion+dqn: chosen block by block by a "
                 "DQN trained on each refit's validation rows) against fusion, the same "
                 "pair with its weight fit on the validation rows: the same DM tests, "
                 "fusion in persistence's place (negative: the row is better)."
                 if against else "")
              + (" A row of horizon h forecasts the close h traded days ahead, refit on the "
                 "rows whose such close is known at the block's first close (a gap of h "
                 "days); persistence is then the close h days ahead = today's, and both "
                 "DM tests allow for the h-1 days that consecutive forecasts share "
                 "(h-1 autocovariances in HLN, at least h-1 Newey-West lags); pt_pvalue "
                 "still counts each overlapping forecast as independent, so it overstates "
                 "the evidence beyond horizon 1." if tagged else ""))
    with new_run_folder(paths.evaluation_runs, quick) as run_folder:
        board = {"run_id": run_folder.run_id, "world": STOCK, "header": header,
                 "test_period": [ev.test_start, ev.test_end], "protocol": vars(protocol),
                 "quick": quick, "models": list(models),
                 **({"horizons": ev.horizons} if tagged else {}), "rows": rows,
                 "tables": tables,
                 "notes": [observations_note(rows)], "config_sha256": config_hash(config),
                 "versions": package_versions(), "upstream": upstream(paths),
                 "stocks": [s.ts_code for s in stocks], "features": features,
                 "code_inputs": {"+".join(extra): columns
                                 for extra, (_, columns) in inputs.items() if extra}}
        atomic_write_parquet(pd.concat(frames, ignore_index=True),
                             run_folder.writing / "predictions.parquet")
        leaderboard.write_metrics(board, run_folder.writing)
    return EvaluationReport(rows, run_folder.run_id, leaderboard.publish(paths, board))
