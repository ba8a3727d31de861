"""The rank average of other cross-sectional models: each member fit as it would be alone
(early-stopped on the same validation days), a row's score the mean over members of its
rank among the day's rows.

Why ranks and equal weights: the members' scores live on different scales (a regression on
the ranked label, an LSTM trained on correlation), and only a day's order is used; weights
fit on the validation days would be fit on the very days that stopped each member early,
so they would favour the member that overfit them most.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stockpred.models.cross_section import CrossSectionalModel
from stockpred.models.names import model_class


class RankEnsemble(CrossSectionalModel):
    """Settings: ``members``, each member's name and its own settings."""

    name = "ensemble"
    # every section a member may come from, beside the list of members
    sections = ("cross_section.ensemble", "cross_section.lightgbm", "cross_section.xgboost",
                "cross_section.mlp", "cross_section.sequence")
    uses_validation = True

    @classmethod
    def settings_from(cls, config):
        return {"members": {name: model_class(name).settings_from(config)
                            for name in config.cross_section.ensemble.members}}

    def _members(self) -> dict[str, CrossSectionalModel]:
        return {name: model_class(name)(settings, self.seed)
                for name, settings in self.settings["members"].items()}

    def fit(self, train, valid=None):
        self.members_ = {name: model.fit(train, valid if model.uses_validation else None)
                         for name, model in self._members().items()}
        return self

    def predict(self, panel):
        dates = panel.dates
        ranks = [pd.Series(model.predict(panel)).groupby(dates).rank(pct=True).to_numpy()
                 for model in self.members_.values()]
        return np.mean(ranks, axis=0)

    def save(self, folder):
        super().save(folder)
        for name, model in self.members_.items():
            model.save(Path(folder) / name)

    def _restore(self, state, folder):
        self.members_ = {name: CrossSectionalModel.load(folder / name)
                         for name in self.settings["members"]}
