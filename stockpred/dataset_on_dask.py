"""A universe's FactorPanel whose factors stay on the Dask workers.

``build_factor_panel`` reads the whole factor panel into this process and normalises it
here. ``factor_panel_on_dask`` gives the same FactorPanel with ``x`` a dask array persisted
on the workers, one chunk per year file: each worker reads its year file and normalises
that year's member rows, day by day (a day never spans two year files, so a chunk needs no
other), with the same ``normalised_matrix``. This process holds the keys, labels and the
day each label becomes known (a few columns per row, against 173 factors), the models and
the scores; ``FactorPanel.rows`` selects rows of the dask array lazily, the learners
(``LightGBMModel``/``XGBoostModel`` with ``on_dask``) fit on the chunks where they live and
prediction runs chunk by chunk on the workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from stockpred.dataset import FactorPanel, labelled_panel, stock_labels
from stockpred.features.cross_section import KEYS


def factor_panel_on_dask(client, files: list[Path], members: pd.DataFrame, bars: pd.DataFrame,
                         label: str = "ret_2", method: str = "zscore",
                         mad_k: float | None = 3.0) -> FactorPanel:
    """What ``build_factor_panel`` gives for the factors stored in ``files`` (one per year),
    with ``x`` normalised on the workers and held there (persisted), equal to its ``x``."""
    import dask
    import dask.array as da

    keys = list(KEYS)
    features = [c for c in pq.read_schema(files[0]).names if c not in keys]
    # the stored keys alone, the file and row each sits at: 2 of the 175 columns
    stored = pd.concat([pq.read_table(f, columns=keys).to_pandas()
                        .assign(file=i, factor_row=lambda t: np.arange(len(t)))
                        for i, f in enumerate(files)], ignore_index=True)
    rows = (members[keys].merge(stored, on=keys, how="inner")
            .merge(stock_labels(bars, label), on=keys, how="left")
            .sort_values(keys, kind="stable").reset_index(drop=True))
    del stored
    file_of = rows["file"].to_numpy()
    # rows are in day order, so each file's rows are one run of them
    if len(file_of) and (np.diff(file_of) < 0).any():
        raise ValueError("the factor files must each hold whole days, in day order")
    chunks = []
    for i, path in enumerate(files):
        at = rows["factor_row"].to_numpy()[file_of == i]
        if len(at):
            part = dask.delayed(_normalised_file, pure=True)(str(path), features, at, method,
                                                            mad_k)
            chunks.append(da.from_delayed(part, (len(at), len(features)), dtype=np.float32))
    x = (da.concatenate(chunks) if chunks else da.zeros((0, len(features)), np.float32,
                                                         chunks=(1, len(features))))
    return labelled_panel(rows, client.persist(x), features, label, bars)


def _normalised_file(path: str, features: list[str], rows: np.ndarray, method: str,
                     mad_k: float | None) -> np.ndarray:
    """On a worker: the ``rows`` of one stored year file, normalised day by day."""
    from stockpred.features.cross_section import normalised_matrix

    frame = pd.read_parquet(path)
    return normalised_matrix(frame, features, method, mad_k, rows)
