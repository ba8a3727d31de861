"""Tuning a cross-sectional model on a universe: validation Rank IC, before the test period.

A configuration is fit once, as walk-forward fits it before its first block: on the
trailing ``cross_section.train_days`` before evaluation.validation_start whose label is
known by then (the last ``validation_days`` of them stop it early). It then scores every
member of every day from validation_start on whose label is known before test_start, so
no close of the test period is read; skill is the mean daily Rank IC of the score with the
configured label. The best configuration enters `evaluate --cross-section` of the same
universe as ``<model> (tuned by <agent>)``.
"""

from __future__ import annotations

import numpy as np

from stockpred.config import Config
from stockpred.errors import InputError
from stockpred.evaluation import signal
from stockpred.evaluation.walkforward import WalkForward, walk_forward
from stockpred.layout import Paths
from stockpred.models.registry import prototype
from stockpred.stages.cross_section import universe_panel
from stockpred.tuning.objective import MemoisedObjective, TrialLog


class CrossSectionObjective(MemoisedObjective):
    def __init__(self, config: Config, paths: Paths, universe: str, model: str, agent: str,
                 log: TrialLog):
        super().__init__(agent, log)
        ev, cs = config.evaluation, config.cross_section
        self.prototype = prototype(config, model)
        # from the trailing window of validation_start on: tuning's first fit is on that
        # day or a later one, so the panel holds every day its fits read
        panel, _, _ = universe_panel(config, paths, universe, ev.validation_start,
                                     ev.test_start)
        # only rows whose label is known before the test period: what tuning may read
        self.panel = panel.rows(panel.known_on < ev.test_start)
        days = np.unique(self.panel.dates)
        validation_days = days[days >= ev.validation_start]
        if not len(validation_days):
            raise InputError(f"no member day of {universe} from {ev.validation_start} with "
                             f"a label known before {ev.test_start}: nothing to tune on")
        self.protocol = WalkForward(
            str(validation_days[0]), str(validation_days[-1]), len(validation_days),
            cs.train_days, cs.validation_days)
        self.label = cs.label

    def skill(self, params: dict) -> float:
        base = self.prototype
        model = type(base)({**base.settings, **params}, base.seed)
        scores = walk_forward(model, self.panel, self.protocol, progress=False)
        labels = self.panel.keys.assign(label=self.panel.returns[self.label].to_numpy())
        frame = labels.merge(scores[["trade_date", "ts_code", "score"]],
                             on=["trade_date", "ts_code"])
        rank_ic = signal.daily_ic(frame)["rank_ic"].mean()
        return float(rank_ic) if np.isfinite(rank_ic) else -1.0

