"""Bad input: one line on stderr, a non-zero exit, nothing stored lost, the token never shown."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import TOKEN, run_cli, tree_digest, write_config
from stockpred.data.replay import ReplayServer


@pytest.fixture
def stored(workdir):
    """A data directory already holding the shipped sample."""
    write_config(workdir, source="sample", interfaces=["daily", "index_daily", "stock_basic"])
    assert run_cli("fetch")[0] == 0
    return tree_digest(workdir / "data")


def assert_one_line_error(code, out, err, expected_code, *phrases):
    assert code == expected_code, (code, out, err)
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert "Traceback" not in out + err
    for phrase in phrases:
        assert phrase in err


@pytest.mark.parametrize("args, phrases", [
    (["--ts-code", "600999.SH", "--source", "sample"], ["unknown ts_code 600999.SH"]),
    (["--ts-code", "60036.SH"], ["--ts-code", "'60036.SH' is not a ts_code"]),
    (["--start", "20181201", "--end", "20180101"], ["start 20181201 is after end 20180101"]),
    (["--start", "20180231"], ["--start '20180231' is not a calendar day"]),
    (["--only", "daily,dayly"], ["--only: unknown interface dayly"]),
    (["--source", "tushare"], ["no tushare token", "TUSHARE_TOKEN"]),
    (["--frobnicate"], ["No such option"]),
])
def test_bad_flags(args, phrases, stored, workdir):
    assert_one_line_error(*run_cli("fetch", *args), 2, *phrases)
    assert tree_digest(workdir / "data") == stored


@pytest.mark.parametrize("text, phrases", [
    ('{"fetch": {"start_date": "2018-01-01"', ["not valid JSON", "line 1"]),
    ('{"fetch": {"start_dat": "20180101"}}', ["fetch.start_dat: unknown key"]),
    ('{"fetch": {"start_date": "2018-01-01"}}', ["fetch.start_date:", "YYYYMMDD"]),
    ('{"tushare": {"max_retries": -1}}', ["tushare.max_retries:"]),
    ('{"fetch": {"groups": ["stock", "astrology"]}}', ["fetch.groups", "astrology"]),
    ('[1, 2]', ["top level must be a JSON object"]),
    ('{"evaluation": {"validation_start": "20150101", "test_start": "20160101"}}',
     ["importance.train_end 20161231 must come before evaluation.test_start 20160101"]),
])
def test_malformed_config(text, phrases, stored, workdir):
    (workdir / "config.json").write_text(text, encoding="utf-8")
    assert_one_line_error(*run_cli("fetch"), 2, "config.json", *phrases)
    assert tree_digest(workdir / "data") == stored


def test_unwritable_data_dir(workdir):
    blocker = workdir / "a-file"
    blocker.write_text("not a folder")
    assert_one_line_error(*run_cli("fetch", "--data-dir", str(blocker / "data")), 2,
                          "cannot write to the data directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_read_only_data_dir(workdir):
    folder = workdir / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    assert_one_line_error(*run_cli("fetch", "--data-dir", str(folder / "data")), 2,
                          "cannot write to the data directory")


def test_show_names_the_missing_stage(workdir):
    assert_one_line_error(*run_cli("show", "daily"), 5, "run `stockpred fetch` first")


def all_output_and_files(workdir: Path, *outputs: str) -> bytes:
    blob = "".join(outputs).encode("utf-8")
    for path in workdir.rglob("*"):
        if path.is_file():
            blob += path.read_bytes()
    return blob


def test_wrong_token_is_refused_and_never_shown(server_tables, tushare_env, stored, workdir,
                                                monkeypatch):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        monkeypatch.setenv("TUSHARE_TOKEN", "0123456789abcdef0123456789abcdef0123456789abcdef0123")
        write_config(workdir, interfaces=["daily"])
        code, out, err = run_cli("fetch")
        assert_one_line_error(code, out, err, 2, "tushare rejected the token")
        secret = os.environ["TUSHARE_TOKEN"].encode()
        assert secret not in all_output_and_files(workdir, out, err)
        assert tree_digest(workdir / "data") == stored


def test_token_never_written_anywhere(server_tables, tushare_env, workdir):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        write_config(workdir, interfaces=["daily", "moneyflow"])
        server.inject("minute_limit", times=1)
        server.inject("no_permission", times=10, api="moneyflow")
        outputs = run_cli("fetch")
        assert outputs[0] == 0
        outputs += run_cli("refresh")
        outputs += run_cli("fetch", "--ts-code", "600999.SH")  # an error path too
        assert outputs[-3] == 2
        text = [o for o in outputs if isinstance(o, str)]
        assert list((workdir / "data" / "logs").glob("*.log"))
        assert TOKEN.encode() not in all_output_and_files(workdir, *text)


def test_token_from_user_config_outside_the_repo(server_tables, tushare_env, workdir,
                                                 monkeypatch):
    with ReplayServer(server_tables, TOKEN) as server:
        tushare_env(server)
        monkeypatch.delenv("TUSHARE_TOKEN")
        user_config = workdir / "home" / "stockpred.json"
        user_config.parent.mkdir()
        user_config.write_text(json.dumps({"tushare_token": TOKEN}))
        monkeypatch.setenv("STOCKPRED_USER_CONFIG", str(user_config))
        write_config(workdir, interfaces=["daily"], end_date="20170110")
        code, out, err = run_cli("fetch")
        assert code == 0, err
        assert server.calls["daily"] == 3
        user_config.write_text("{not json")
        assert_one_line_error(*run_cli("fetch"), 2, "cannot read tushare_token")


def test_a_command_in_a_subfolder_uses_the_projects_config_and_data(workdir, monkeypatch):
    """Run from a folder inside the project (its package folder, say), a command finds the
    project's config.json upwards and writes under the project's data folder."""
    (workdir / "config.json").write_text('{"data_dir": "store"}', encoding="utf-8")
    inner = workdir / "stockpred" / "deeper"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    code, _, err = run_cli("fetch", "--source", "sample", "--ts-code", "600036.SH",
                           "--start", "20180101")
    assert code == 0, err
    assert (workdir / "store" / "raw").is_dir()
    assert not (inner / "data").exists() and not (inner / ".stockpred.lock").exists()
