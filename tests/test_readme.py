"""The README's result blocks and figures: the committed README shows what the committed
result files render and figures drawn from full runs, and `stockpred readme --check`
notices when a result file changes or a figure loses its provenance."""

from __future__ import annotations

import json
import re
import shutil

import matplotlib.pyplot as plt

from conftest import REPO, run_cli
from stockpred.config import Config
from stockpred.layout import Paths
from stockpred.plots import Provenance, read_provenance, save_figure, sidecar
from stockpred.stages import readme, table

COMMITTED = Paths(data_dir=REPO / "data", results_dir=REPO / "project_results")


def _outside_blocks(text: str) -> str:
    """The README's text with its result blocks cut out."""
    return re.sub(r"<!-- results:(\S+) -->.*?<!-- /results:\1 -->", "", text, flags=re.DOTALL)


def test_the_committed_readme_shows_what_the_committed_results_render():
    assert readme.check(COMMITTED) == []


def _copy_of_the_committed_readme(workdir) -> Paths:
    """The README, its blocks' result files and its figures with their provenance."""
    copy = Paths(data_dir=workdir / "data", results_dir=workdir / "project_results")
    shutil.copy(COMMITTED.readme, copy.readme)
    for block in readme.BLOCKS.values():
        block.source(copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(block.source(COMMITTED), block.source(copy))
    for figure in readme.figures(COMMITTED):
        copied = copy.readme.parent / figure.relative_to(COMMITTED.readme.parent)
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(figure, copied)
        shutil.copy(sidecar(figure), sidecar(copied))
    return copy


def _draw(path, drawn: Provenance):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 0.5])
    return save_figure(fig, path, drawn)


def test_the_readme_stage_reruns_when_a_block_s_result_file_changes():
    stage = table.stage("readme")
    read = {table.ARTEFACTS[key](COMMITTED, Config()) for key in stage.reads}
    assert {block.source(COMMITTED) for block in readme.BLOCKS.values()} <= read


def test_check_names_a_block_whose_result_changed_and_readme_rewrites_it(workdir):
    copy = _copy_of_the_committed_readme(workdir)
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


def test_check_names_a_figure_from_a_quick_run_a_stale_one_and_one_without_provenance(
        workdir):
    copy = _copy_of_the_committed_readme(workdir)
    flags = ("--results-dir", str(copy.results_dir), "--data-dir", str(copy.data_dir))
    assert run_cli("readme", "--check", *flags)[0] == 0
    # the VAE's loss figure redrawn from a smoke run
    loss = copy.figures_dir("generative") / "vae_loss.png"
    full = read_provenance(loss)
    quick = Provenance(**{**{k: v for k, v in full.items() if k != "png_sha256"},
                          "run_id": "20991231-000000-quick", "quick": True})
    _draw(loss, quick)
    code, _, err = run_cli("readme", "--check", *flags)
    assert code == 1
    assert err.splitlines() == [
        f"{copy.readme}: figure project_results/generative/vae_loss.png was drawn from a quick "
        f"run ({full['source']}); redraw it with `stockpred plot generative` from a full run"]
    # a figure whose provenance is lost, and one copied over another by hand
    shutil.copy(sidecar(COMMITTED.figures_dir("generative") / "vae_loss.png"), sidecar(loss))
    sidecar(copy.figures_dir("news") / "news_vectors.png").unlink()
    shutil.copy(copy.figures_dir("lstm") / "full_window.png",
                copy.figures_dir("lstm") / "point_by_point.png")
    code, _, err = run_cli("readme", "--check", *flags)
    assert code == 1
    assert [line.split(": figure ")[1].split(" ")[0] for line in err.splitlines()] == [
        "project_results/lstm/point_by_point.png", "project_results/generative/vae_loss.png",
        "project_results/news/news_vectors.png"]
    assert "has no provenance (no news_vectors.png.json beside it)" in err
    assert err.count("is not the figure its provenance") == 2


def test_check_names_a_figure_drawn_before_the_result_beside_it(workdir):
    copy = _copy_of_the_committed_readme(workdir)
    bench = copy.benchmark_results("bench_tune")
    result = json.loads(bench.read_text())
    bench.write_text(json.dumps({**result, "date": "2099-01-01"}))
    failures = readme.check(copy)
    tuning = read_provenance(copy.figures_dir("tuning") / "lstm_best_so_far.png")
    assert (f"{copy.readme}: figure project_results/tuning/lstm_best_so_far.png was drawn "
            f"from {tuning['source']}, finished {tuning['finished_at'][:10]}, before "
            f"bench_tune.json (2099-01-01), which block bench_tune renders; redraw it with "
            f"`stockpred plot tuning` from a full run") in failures
    assert [f for f in failures if ": figure " in f and "lstm_best_so_far" not in f] == []


def test_the_same_drawing_is_the_same_bytes(tmp_path):
    drawn = Provenance(drawn_by="test", source="nothing", run_id=None, finished_at=None,
                       config_sha256="0" * 64, quick=False)
    first, second = _draw(tmp_path / "a.png", drawn), _draw(tmp_path / "b.png", drawn)
    assert first.read_bytes() == second.read_bytes()
    assert b"Matplotlib" not in first.read_bytes()  # no version stamped into the PNG
    assert read_provenance(first) == read_provenance(second)
