"""What a new user reads: errors that name the real cause, suggestions for misspelled names,
verdicts that tell a loss from a tie."""

from __future__ import annotations

import pytest

from conftest import run_cli
from stockpred.evaluation.scoring import verdict


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_copy):
    return sample_copy("600036.SH", "20160101", tmp_path_factory.mktemp("messages") / "data")


def _row(stat: float, p: float, beats: bool = False) -> dict:
    return {"stocks": 1, "beats_persistence": beats, "dm_stat_vs_persistence": stat,
            "dm_pvalue_vs_persistence": p}


def test_a_significant_loss_is_not_called_a_tie():
    assert verdict(_row(-2.5, 0.01, beats=True)) == "beats persistence"
    assert verdict(_row(2.5, 0.01)) == "significantly worse than persistence"
    assert verdict(_row(2.5, 0.30)).startswith("does not beat, no significant difference")
    assert verdict(_row(-1.0, 0.30)).startswith("does not beat, no significant difference")


def test_a_stock_without_features_is_named_as_such(built, workdir):
    code, _, err = run_cli("train", "arima", "--ts-code", "600000.SH", "--data-dir", str(built))
    assert code == 5 and "600000.SH has no features" in err and err.count("\n") == 1
    assert "run `stockpred fetch --ts-code 600000.SH`, then `stockpred features" in err


def test_show_suggests_a_table_and_refuses_an_empty_answer(built, workdir):
    code, _, err = run_cli("show", "dayly", "--data-dir", str(built))
    assert code == 2 and "did you mean 'daily'" in err and err.count("\n") == 1
    code, _, err = run_cli("show", "qfq_daily", "--ts-code", "600000.SH", "--data-dir",
                           str(built))
    assert code == 2 and "no stored rows of qfq_daily for 600000.SH" in err
    code, out, err = run_cli("show", "qfq_daily", "--ts-code", "600036.SH", "--data-dir",
                             str(built))
    assert code == 0 and "600036.SH" in out, err


def test_a_market_fetch_without_a_token_says_it_loaded_the_sample(tmp_path, workdir):
    code, out, err = run_cli("fetch", "--universe", "top800", "--data-dir", str(tmp_path))
    assert code == 0, err
    assert "Loaded the shipped sample (no tushare token found)" in out
    assert "note: the sample holds the SSE 50 only, not universe top800's market" in out


def test_long_work_without_a_terminal_logs_every_tenth(caplog):
    from stockpred.runtime import progress

    with caplog.at_level("INFO", logger="stockpred"):
        assert list(progress(range(25), "walk-forward", "refit", shown=False)) == list(range(25))
    lines = [r.getMessage() for r in caplog.records if r.name == "stockpred.runtime"]
    assert len(lines) == 10
    assert lines[0] == "walk-forward: 10% (3 of 25 refits)"
    assert lines[-1] == "walk-forward: 100% (25 of 25 refits)"
