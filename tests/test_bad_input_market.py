"""Bad input to the market-wide commands: one line, exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli, tree_digest

TOO_MANY = "top99999999999999999999999"


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Two stocks of the shipped sample, fetched: what every stage checks before it reads."""
    data = tmp_path_factory.mktemp("bad") / "data"
    code, _, err = run_cli("fetch", "--source", "sample", "--ts-code", "600000.SH,600036.SH",
                           "--data-dir", str(data))
    assert code == 0, err
    return data


@pytest.mark.parametrize("args, phrase", [
    (["features", "--universe", "nosuch"], "unknown universe 'nosuch'"),
    (["universe", "top0"], "unknown universe 'top0'"),
    (["features", "--universe", "top0"], "unknown universe 'top0'"),
    (["universe", TOO_MANY], f"unknown universe '{TOO_MANY}'"),
    (["universe", "top" + "9" * 5000], "with N a whole number from 1 to 10000"),
    (["universe", "top10001"], "with N a whole number from 1 to 10000"),
    (["tune", "--model", "lightgbm", "--universe", "nosuch"], "unknown universe 'nosuch'"),
    (["evaluate", "--cross-section", "--universe", "nosuch"], "unknown universe 'nosuch'"),
    (["export", "factors", "--universe", "nosuch", "--out", "x.parquet"],
     "unknown universe 'nosuch'"),
    (["backtest", "--run", "../../etc"], "--run '../../etc' is not a run id"),
    (["backtest", "--run", ".."], "--run '..' is not a run id"),
    (["backtest", "--run", "/etc"], "--run '/etc' is not a run id"),
])
def test_one_line_exit_2_and_nothing_written(args, phrase, stored, workdir):
    before = tree_digest(stored)
    code, out, err = run_cli(*args, "--data-dir", str(stored))
    assert code == 2, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and phrase in err, err
    assert "unexpected" not in err and "run `stockpred universe" not in err, err
    assert tree_digest(stored) == before
    assert not any((stored / folder).exists() for folder in ("universe", "factors", "runs"))


def test_a_valid_universe_not_built_yet_names_the_stage_that_builds_it(stored, workdir):
    code, _, err = run_cli("evaluate", "--cross-section", "--universe", "top5",
                           "--data-dir", str(stored))
    assert code == 5 and "run `stockpred universe top5` first" in err, err


def test_a_configured_top_liquid_universe_is_bounded_too(stored, workdir):
    (workdir / "config.json").write_text(json.dumps(
        {"universes": {"huge": {"kind": "top_liquid", "n": 10001}}}))
    code, _, err = run_cli("universe", "huge", "--data-dir", str(stored))
    assert code == 2 and "universes.huge" in err and err.count("\n") == 1, err
