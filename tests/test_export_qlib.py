"""`stockpred export qlib` on the shipped sample: what the files hold, the incremental update
(byte for byte a full export, a re-based stock included), refresh with qlib.dir, bad input,
and, where qlib is installed (the `[peer]` environment), qlib's own data API reading it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from stockpred.data.catalogue import CATALOGUE
from stockpred.data.qlib_provider import FIELDS, qlib_code
from stockpred.data.store import RawStore

STOCKS = "600000.SH,600016.SH,600036.SH,600519.SH,601318.SH,601988.SH"
START, CUT = "20160101", "20180629"
UNIVERSE = "top3"
# a dividend after CUT: the bars fetched up to CUT were forward-adjusted on another basis,
# higher by this, rounded as the vendor does (tests/test_rebasing.py)
REBASED, FACTOR = "601988.SH", 1 / 0.8828
PRICES = ["open", "high", "low", "close", "pre_close", "change"]


def _cli(folder: Path, *args: str) -> str:
    code, out, err = run_cli(*args, "--data-dir", str(folder / "data"), "--results-dir",
                             str(folder / "results"))
    assert code == 0, err
    return out


def _export(folder: Path, out: Path, end: str | None = None,
            rebase: float | None = None) -> str:
    """Fetch the sample's bars up to ``end`` (the last day: None), REBASED's history
    re-based by ``rebase`` (its shipped basis: None), then the membership and the export."""
    _cli(folder, "fetch", "--source", "sample", "--ts-code", STOCKS, "--start", START,
         *(["--end", end] if end else []))
    store = RawStore(folder / "data" / "raw")
    bars = store.read("qfq_daily", subjects=[REBASED])
    if rebase is not None:
        bars[PRICES] = (bars[PRICES] * rebase).round(4)
        store.upsert(CATALOGUE["qfq_daily"], bars)
    _cli(folder, "universe", UNIVERSE)
    return _cli(folder, "export", "qlib", "--universe", UNIVERSE, "--out", str(out))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The provider exported up to CUT with REBASED on the earlier basis, then updated after
    the rest of the bars came (REBASED's history re-based), and a new export of the same."""
    folder = tmp_path_factory.mktemp("qlib")
    first = _export(folder, folder / "provider", CUT, rebase=FACTOR)
    close = folder / "provider" / "features" / qlib_code(REBASED).lower() / "close.day.bin"
    rebased = _decode(close)[1][0]
    update = _export(folder, folder / "provider")
    shipped = RawStore(folder / "data" / "raw").read("qfq_daily", subjects=[REBASED])
    assert rebased == np.float32(round(shipped["close"].iloc[0] * FACTOR, 4))
    whole = _cli(folder, "export", "qlib", "--universe", UNIVERSE, "--out",
                 str(folder / "whole"))
    return {"folder": folder, "first": first, "update": update, "whole": whole}


def _decode(path: Path) -> tuple[int, np.ndarray]:
    raw = np.fromfile(path, dtype="<f4")
    return int(raw[0]), raw[1:]


def _dash(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_update_is_a_full_export_byte_for_byte(exported):
    assert "full, written whole" in exported["first"]
    assert "incremental" in exported["update"] and "full" in exported["whole"]
    rewrote, appended = (int(exported["update"].split(word)[1].split(" ")[0])
                         for word in ("rewrote ", "appended to "))
    assert rewrote >= 1 and appended > 0  # both paths ran: REBASED whole, others in place
    folder = exported["folder"]
    updated, whole = _tree(folder / "provider"), _tree(folder / "whole")
    assert list(updated) == list(whole)
    assert [name for name in whole if updated[name] != whole[name]] == []
    # REBASED was rewritten whole: the first export held its earlier basis (the fixture)
    close = f"features/{qlib_code(REBASED).lower()}/close.day.bin"
    bars = RawStore(folder / "data" / "raw").read("qfq_daily", subjects=[REBASED])
    assert _decode(folder / "provider" / close)[1][0] == np.float32(bars["close"].iloc[0])


def test_a_rerun_clears_what_a_stopped_run_left(exported, tmp_path):
    """A killed export leaves tails past the calendar and folders it had not renamed in
    yet; the next export gives the same bytes as a new one."""
    folder = exported["folder"]
    provider = shutil.copytree(folder / "whole", tmp_path / "provider")
    stock = next((provider / "features").iterdir())
    with open(stock / "close.day.bin", "ab") as f:
        f.write(np.arange(3, dtype="<f4").tobytes())
    (provider / "features" / f"{stock.name}.tmp-7").mkdir()
    (tmp_path / "provider.tmp-7").mkdir()
    out = _cli(folder, "export", "qlib", "--universe", UNIVERSE, "--out", str(provider))
    assert "appended to 1 " in out
    assert _tree(provider) == _tree(folder / "whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["provider"]


def test_bins_decode_to_the_stored_bars(exported):
    folder = exported["folder"]
    provider = folder / "whole"
    calendar = (provider / "calendars" / "day.txt").read_text().split()
    bars = RawStore(folder / "data" / "raw").read("qfq_daily")
    members = pd.read_parquet(folder / "data" / "universe" / f"{UNIVERSE}.parquet")
    exported_codes = sorted(members["ts_code"].unique())
    assert sorted(p.name for p in (provider / "features").iterdir()) == \
        [qlib_code(c).lower() for c in exported_codes]
    for code, own in bars[bars["ts_code"].isin(exported_codes)].groupby("ts_code"):
        own = own.sort_values("trade_date")
        days = [_dash(d) for d in own["trade_date"]]
        at = np.searchsorted(calendar, days)
        want = {"open": own["open"], "high": own["high"], "low": own["low"],
                "close": own["close"], "volume": own["vol"], "factor": np.ones(len(own)),
                "change": own["close"] / own["pre_close"] - 1}
        for field in FIELDS:
            first, values = _decode(provider / "features" / qlib_code(code).lower() /
                                    f"{field}.day.bin")
            assert first == at[0] and len(values) == at[-1] - at[0] + 1, (code, field)
            np.testing.assert_array_equal(values[at - first],
                                          np.asarray(want[field], dtype=np.float32))
            idle = np.ones(len(values), dtype=bool)
            idle[at - first] = False
            assert np.isnan(values[idle]).all(), (code, field)  # days it did not trade


def test_calendar_and_instruments_follow_the_store(exported):
    folder = exported["folder"]
    provider = folder / "whole"
    calendar = (provider / "calendars" / "day.txt").read_text().split()
    bars = RawStore(folder / "data" / "raw").read("qfq_daily")
    members = pd.read_parquet(folder / "data" / "universe" / f"{UNIVERSE}.parquet")
    days = sorted(d for d in bars["trade_date"].unique() if d <= members["trade_date"].max())
    assert calendar == [_dash(d) for d in days]
    spans = pd.read_csv(provider / "instruments" / f"{UNIVERSE}.txt", sep="\t",
                        names=["code", "start", "end"])
    listed = {(code, day) for code, start, end in spans.itertuples(index=False)
              for day in calendar if start <= day <= end}
    assert listed == {(qlib_code(c), _dash(d))
                      for c, d in zip(members["ts_code"], members["trade_date"])}
    assert len(spans) > spans["code"].nunique()  # members leave and come back
    span = pd.read_csv(provider / "instruments" / "all.txt", sep="\t",
                       names=["code", "start", "end"]).set_index("code")
    own = bars[bars["ts_code"].isin(members["ts_code"])]
    for code, dates in own.groupby("ts_code")["trade_date"]:
        assert tuple(span.loc[qlib_code(code)]) == (_dash(dates.min()), _dash(dates.max()))


def test_refresh_updates_the_configured_provider(exported, tmp_path, workdir):
    data = shutil.copytree(exported["folder"] / "data", tmp_path / "data")
    (tmp_path / "config.json").write_text(json.dumps({
        "fetch": {"source": "sample", "start_date": START,
                  "universe": {"index": None, "ts_codes": STOCKS.split(",")}},
        "refresh": {"stages": []}, "cross_section": {"universe": UNIVERSE},
        "qlib": {"dir": "qlib"}}))
    code, out, err = run_cli("refresh", "--data-dir", str(data), "--config",
                             str(tmp_path / "config.json"))
    assert code == 0, err
    assert f"qlib provider of {UNIVERSE}" in out
    assert _tree(tmp_path / "qlib") == _tree(exported["folder"] / "whole")


@pytest.mark.parametrize("args, code, phrase", [
    (["--universe", "top0", "--out", "{tmp}/q"], 2, "unknown universe 'top0'"),
    (["--universe", "top4", "--out", "{tmp}/q"], 5, "run `stockpred universe top4` first"),
    (["--universe", UNIVERSE, "--out", "{data}"], 2, "holds files but no stockpred qlib export"),
    (["--universe", UNIVERSE], 2, "give --out DIR"),
])
def test_bad_input_is_one_line(args, code, phrase, exported, tmp_path, workdir):
    data = exported["folder"] / "data"
    args = [a.format(tmp=tmp_path, data=data) for a in args]
    got, _, err = run_cli("export", "qlib", *args, "--data-dir", str(data))
    assert got == code and phrase in err and err.count("\n") == 1, err


def test_unadjusted_bars_are_refused(tmp_path, workdir):
    # the sample's unadjusted bars: one stock's
    _cli(tmp_path, "fetch", "--source", "sample", "--ts-code", "600036.SH", "--start", CUT,
         "--only", "daily")
    _cli(tmp_path, "universe", "top1")
    code, _, err = run_cli("export", "qlib", "--universe", "top1", "--out",
                           str(tmp_path / "q"), "--data-dir", str(tmp_path / "data"))
    assert code == 5 and "no adjusted bars" in err and err.count("\n") == 1, err
    assert not (tmp_path / "q").exists()


def test_qlib_reads_the_export(exported):
    qlib = pytest.importorskip("qlib", reason="qlib is not installed here: it runs in the "
                               "[peer] environment (doc/peer.md)")
    from qlib.data import D

    folder = exported["folder"]
    provider = folder / "provider"
    qlib.init(provider_uri=str(provider), region="cn")
    calendar = (provider / "calendars" / "day.txt").read_text().split()
    assert [d.strftime("%Y-%m-%d") for d in D.calendar()] == calendar
    frame = D.features(D.instruments(UNIVERSE), ["$close", "$volume"], start_time=calendar[0],
                       end_time=calendar[-1])
    bars = RawStore(folder / "data" / "raw").read("qfq_daily")
    members = pd.read_parquet(folder / "data" / "universe" / f"{UNIVERSE}.parquet")
    want = members.merge(bars, on=["trade_date", "ts_code"])
    got = frame.reset_index()
    got = pd.DataFrame({"ts_code": [f"{c[2:]}.{c[:2]}" for c in got["instrument"]],
                        "trade_date": got["datetime"].dt.strftime("%Y%m%d"),
                        "close": got["$close"], "volume": got["$volume"]})
    both = want.merge(got, on=["trade_date", "ts_code"], how="outer", indicator=True)
    assert (both["_merge"] == "both").all() and len(both) == len(members)
    np.testing.assert_array_equal(both["close_y"], both["close_x"].astype(np.float32))
    np.testing.assert_array_equal(both["volume"], both["vol"].astype(np.float32))
