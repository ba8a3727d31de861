"""The README's result blocks: the committed README shows what the committed result files
render, and `stockpred readme --check` notices when a result file changes."""

from __future__ import annotations

import json
import re
import shutil

from conftest import REPO, run_cli
from stockpred.config import Config
from stockpred.layout import Paths
from stockpred.stages import readme, table

COMMITTED = Paths(data_dir=REPO / "data", results_dir=REPO / "project_results")


def _outside_blocks(text: str) -> str:
    """The README's text with its result blocks cut out."""
    return re.sub(r"<!-- results:(\S+) -->.*?<!-- /results:\1 -->", "", text, flags=re.DOTALL)


def test_the_committed_readme_shows_what_the_committed_results_render():
    assert readme.stale_blocks(COMMITTED) == []


def test_the_readme_stage_reruns_when_a_block_s_result_file_changes():
    stage = table.stage("readme")
    read = {table.ARTEFACTS[key](COMMITTED, Config()) for key in stage.reads}
    assert {block.source(COMMITTED) for block in readme.BLOCKS.values()} <= read


def test_check_names_a_block_whose_result_changed_and_readme_rewrites_it(workdir):
    copy = Paths(data_dir=workdir / "data", results_dir=workdir / "project_results")
    shutil.copy(COMMITTED.readme, copy.readme)
    for block in readme.BLOCKS.values():
        block.source(copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(block.source(COMMITTED), block.source(copy))
    board = json.loads(copy.leaderboard_json.read_text())
    board["rows"][1]["rmse_price"] = 0.9876
    copy.leaderboard_json.write_text(json.dumps(board))
    flags = ("--results-dir", str(copy.results_dir), "--data-dir", str(copy.data_dir))

    code, _, err = run_cli("readme", "--check", *flags)
    assert code == 1
    assert err.splitlines() == [(f"{copy.readme}: block leaderboard differs from what "
                                 f"{copy.leaderboard_json} renders; run `stockpred readme`")]
    assert copy.readme.read_bytes() == COMMITTED.readme.read_bytes()

    code, out, err = run_cli("readme", *flags)
    assert code == 0, err
    assert "rewrote block(s) leaderboard" in out
    rewritten = copy.readme.read_text()
    assert "| 0.9876 |" in rewritten and "| 0.9876 |" not in COMMITTED.readme.read_text()
    assert _outside_blocks(rewritten) == _outside_blocks(COMMITTED.readme.read_text())
    assert run_cli("readme", "--check", *flags)[0] == 0


def test_a_results_folder_without_a_readme_beside_it_has_nothing_to_render(tmp_path):
    paths = Paths(data_dir=tmp_path / "data", results_dir=tmp_path / "project_results")
    assert readme.run(paths) == [f"readme: no {paths.readme}, nothing to render"]
