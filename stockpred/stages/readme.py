"""The readme stage: the README's result blocks, rendered from the result files.

README.md holds, between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``, exactly
what ``BLOCKS[NAME]`` renders from the result file a stage wrote, so no number in a block
is typed by hand. `stockpred readme` rewrites the blocks (and `stockpred run` does after
the stages that write the files); `--check` names each block that differs, and a test
holds the committed README to what the committed result files render.

`--check` holds the README's figures too, through the provenance `plots.save_figure`
writes beside each one: a figure without it, one that is not the figure it describes, one
drawn from a quick run, or one drawn from a source finished before the result that its
section's block renders (`FIGURE_RESULTS`) is named, one line each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stockpred.data.store import atomic_write_text
from stockpred.errors import InputError, MissingInputError
from stockpred.evaluation.scoring import leaderboard_markdown
from stockpred.layout import BENCHMARKS, Paths
from stockpred.manifest import read_manifest
from stockpred.plots import png_sha256, read_provenance, sidecar
from stockpred.stages.plot import FAMILIES

_BLOCK = re.compile(r"(?P<open><!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)"
                    r"(?P<close><!-- /results:(?P=name) -->)", re.DOTALL)
_FIGURE = re.compile(r"!\[[^\]]*\]\((?P<link>[^)\s]+\.png)\)")
# figure folder -> the block whose result its figures show beside: such a figure must be
# drawn from a source finished no earlier than that result
FIGURE_RESULTS = {"generative": "bench_generative", "tuning": "bench_tune"}


@dataclass(frozen=True)
class Block:
    source: Callable[[Paths], Path]  # the result file, from the catalogue
    made_by: str  # the command that writes it, as a user types it
    render: Callable[[dict, Paths], str]  # (result file's content, paths) -> markdown


def _deciding_test(row: dict) -> tuple[float, float]:
    """The Diebold-Mariano test that beats_persistence rests on (scoring.score): HLN over
    the forecasts of one stock, the by-day Newey-West test over several."""
    if row["stocks"] == 1:
        return row["dm_stat_vs_persistence"], row["dm_pvalue_vs_persistence"]
    return row["dm_daily_nw_stat"], row["dm_daily_nw_pvalue"]


def _verdict(rows: list[dict]) -> str:
    """What the board says, in words, worded from its rows so that it cannot drift."""
    models = [r for r in rows if r["model"] != "persistence"]
    better, tied, worse = [], [], []
    for row in models:
        stat, p = _deciding_test(row)
        horizon = f" at n+{row['horizon']}" if "horizon" in row else ""
        (tied if not p < 0.05 else better if stat < 0 else worse).append(
            f"{row['model']}{horizon} p {p:.3g}")
    sentences = [f"Better than persistence (Diebold-Mariano at the 5% level): "
                 f"{', '.join(better)}." if better else
                 "No model beats persistence (Diebold-Mariano at the 5% level)."]
    sentences += [f"{label}: {', '.join(group)}." for label, group in
                  (("Tied with it", tied), ("Significantly worse", worse)) if group]
    accuracy = [r["directional_accuracy"] for r in models
                if not math.isnan(r["directional_accuracy"])]
    # Pesaran-Timmermann counts each forecast as independent, which overlapping forecasts
    # beyond the next day are not: only next-day rows are read for it
    pvalues = {r["model"]: r["pt_pvalue"] for r in models
               if not math.isnan(r["pt_pvalue"]) and r.get("horizon", 1) == 1}
    if accuracy:
        sentences.append(f"Directional accuracy ranges from {min(accuracy):.1%} to "
                         f"{max(accuracy):.1%}.")
    informative = [f"{m} p {p:.3g}" for m, p in pvalues.items() if p < 0.05]
    if informative:
        sentences.append(f"Pesaran-Timmermann finds information in the directions of "
                         f"{', '.join(informative)}.")
    elif pvalues:
        sentences.append(f"Pesaran-Timmermann finds no information in the directions "
                         f"(smallest p {min(pvalues.values()):.3g}).")
    return " ".join(sentences)


def _leaderboard(board: dict, paths: Paths) -> str:
    rows = board["rows"]
    stocks = board["stocks"]
    named = ", ".join(stocks) if len(stocks) <= 3 else f"{len(stocks)} stocks"
    first, last = board["test_period"]
    link = paths.leaderboard.relative_to(paths.readme.parent).as_posix()
    lead = (f"The leaderboard for {named}, walk-forward over {first}..{last}, refitted every "
            f"{board['protocol']['retrain_every']} trading days on the trailing "
            f"{board['protocol']['train_days']} days"
            f"{' (quick sizes: a smoke run)' if board['quick'] else ''} ([{link}]({link})):")
    return leaderboard_markdown(rows, lead) + "\n" + _verdict(rows) + "\n"


# qlib's own benchmark table (examples/benchmarks/README.md, qlib 0.9.x): LightGBM on
# Alpha158, CSI 300, test 2017-01-01..2020-08-01 as its workflow YAML sets it
QLIB_PUBLISHED = {"ic": 0.0448, "rank_ic": 0.0469}
_PEER_COLUMNS = [("rank_ic_ret_2", "Rank IC ret_2"), ("rank_ic_ret_1", "Rank IC ret_1"),
                 ("ic_ret_2", "IC ret_2"), ("rank_icir_ret_2", "Rank ICIR ret_2"),
                 ("rank_ic_ret_2_tradeable", "Rank IC ret_2, tradeable rows"),
                 ("excess_cost", "excess after cost /yr"), ("ir_cost", "IR after cost"),
                 ("max_dd", "max drawdown"), ("turnover", "daily turnover")]


# issue 24's bar for stockpred's best row against qlib's best, both picked on the validation
# days: this Rank IC ratio on ret_2 with the lower end of its 90% interval above 1, and more
# excess after cost in the same backtest
PEER_TARGET_RATIO = 1.1
# the qlib rows scripts/bench_vs_qlib.py runs (QLIB_ROWS there), among which qlib's best is
# picked: an entry without all of them cannot settle the target
PEER_QLIB_ROWS = ("qlib_lgb_alpha158", "qlib_dens_alpha158_nofs", "qlib_lgb_alpha158_strong")


def _peer_target_met(ratio: dict, ours: dict, theirs: dict) -> bool:
    return (ratio["ratio"] >= PEER_TARGET_RATIO and ratio["ratio_low"] > 1.0
            and ours["excess_cost"] > theirs["excess_cost"])


def _peer(result: dict, paths: Paths) -> str:
    lines = []
    for run in result["runs"]:
        rows = {r["model"]: r for r in run["rows"]}
        qlib = rows["qlib_lgb_alpha158"]
        traded = "qlib's backtest" if run.get("qlib_backtest") else None
        slippage = run.get("backtest", {}).get("slippage_bp", 0)
        lines += [f"Universe {run['universe']} (point in time), train {run['train'][0]}.."
                  f"{run['train'][1]}, validation {run['valid'][0]}..{run['valid'][1]}, test "
                  f"{run['test'][0]}..{run['test'][1]}, stockpred fit {run['protocol']}; "
                  f"TopK {run['topk']} / drop {run['n_drop']} at the next close, excess over "
                  f"the equal-weight universe (stockpred's backtest, qlib's costs, "
                  f"{slippage:g} bp slippage"
                  + (f"; the last column: {traded}, its exchange and TopkDropoutStrategy with "
                     f"the benchmark YAML's settings" if traded else "") + "):", ""]
        columns = _PEER_COLUMNS + ([("qlib_bt_excess_cost", "excess after cost /yr, "
                                     "qlib's backtest")] if traded else [])
        lines += ["| | " + " | ".join(name for _, name in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        for model, row in rows.items():
            cells = [f"{row[key]:.4f}" for key, _ in columns]
            if "rank_ic_ret_2_lo90" in row:
                cells[0] += f" [{row['rank_ic_ret_2_lo90']:.4f}, {row['rank_ic_ret_2_hi90']:.4f}]"
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        naive = run.get("naive")
        if naive:
            lines += ["", f"Naive row, the random score over {naive['seeds']} seeds: Rank IC "
                          f"ret_2 mean {naive['rank_ic_ret_2_mean']:+.4f} (sd "
                          f"{naive['rank_ic_ret_2_sd']:.4f}, {naive['rank_ic_ret_2_min']:+.4f} "
                          f"to {naive['rank_ic_ret_2_max']:+.4f}); excess after cost mean "
                          f"{naive['excess_cost_mean']:+.1%} a year (sd "
                          f"{naive['excess_cost_sd']:.1%}, {naive['excess_cost_min']:+.1%} to "
                          f"{naive['excess_cost_max']:+.1%})"
                          + (f"; in qlib's backtest ({naive['qlib_bt_seeds']} seeds) "
                             f"{naive['qlib_bt_excess_cost_mean']:+.1%} (sd "
                             f"{naive['qlib_bt_excess_cost_sd']:.1%})"
                             if "qlib_bt_seeds" in naive else "") + "."]
        best, bars = run.get("selection"), run.get("error_bars")
        if best and bars:
            ours, theirs = rows[best["stockpred_best"]], rows[best["qlib_best"]]
            ratio, excess = bars["rank_ic_ret_2_ratio"], bars["excess_cost_difference"]
            lines += ["", f"Best rows, each side's highest validation-day Rank IC on ret_2 "
                          f"(the test days play no part): qlib {best['qlib_best']} "
                          f"({best['valid_rank_ic_ret_2'][best['qlib_best']]:.4f}), stockpred "
                          f"{best['stockpred_best']} "
                          f"({best['valid_rank_ic_ret_2'][best['stockpred_best']]:.4f}). On the "
                          f"test days: Rank IC ret_2 {ratio['ratio']:.2f}x (90% month-block "
                          f"interval {ratio['ratio_low']:.2f} to {ratio['ratio_high']:.2f}); "
                          f"excess after cost {ours['excess_cost']:+.1%} a year against "
                          f"{theirs['excess_cost']:+.1%}, a difference of "
                          f"{excess['difference']:+.1%} ({excess['difference_low']:+.1%} to "
                          f"{excess['difference_high']:+.1%})"
                          + (f"; in qlib's backtest {ours['qlib_bt_excess_cost']:+.1%} against "
                             f"{theirs['qlib_bt_excess_cost']:+.1%}" if traded else "") + ". "
                          f"Target (at least 1.1x, the interval above 1, more excess after "
                          f"cost in stockpred's backtest): "
                          f"{'met' if _peer_target_met(ratio, ours, theirs) else 'missed'}"
                          + ("" if set(PEER_QLIB_ROWS) <= set(rows) else
                             f" against qlib's "
                             f"{', '.join(sorted(n for n in rows if n in PEER_QLIB_ROWS))}"
                             f" only: {', '.join(n for n in PEER_QLIB_ROWS if n not in rows)} "
                             f"did not run for this entry, so qlib's best row is not settled")
                          + "."]
        else:
            ours = rows.get("stockpred_lightgbm")
            if ours is not None:
                lines += ["", f"stockpred's LightGBM against qlib's on the same rows: Rank IC "
                              f"{ours['rank_ic_ret_2'] / qlib['rank_ic_ret_2']:.2f}x on ret_2 "
                              f"and {ours['rank_ic_ret_1'] / qlib['rank_ic_ret_1']:.2f}x on "
                              f"ret_1; excess after cost {ours['excess_cost']:+.1%} a year "
                              f"against {qlib['excess_cost']:+.1%}."]
        lines.append("")
    lines.append(f"qlib publishes IC {QLIB_PUBLISHED['ic']} and Rank IC "
                 f"{QLIB_PUBLISHED['rank_ic']} for LightGBM/Alpha158 on the CSI 300, "
                 f"2017 to mid-2020 (its benchmark README). That is not this experiment: another "
                 f"universe (the CSI 300's members, not the most traded stocks of this "
                 f"1,702-stock slice), another test period, and qlib's own bars collected "
                 f"from Yahoo Finance, with a VWAP; the rows above put both on the same "
                 f"bars, days and stocks.")
    return "\n".join(lines) + "\n"


def _measured(result: dict) -> str:
    """Where and how loaded: the machine is shared, so a time means little without it."""
    return (f"Measured by `{result['command']}` on {result['date']}: {result['cores']} cores "
            f"at a load of {result['load_at_start']:.1f} (start) to "
            f"{result['load_at_end']:.1f} (end)")


def _benchmark(result: dict, paths: Paths) -> str:
    """A benchmark's figures with their targets, and the leaderboards it wrote."""
    lines = [_measured(result) + ":", "", "| figure | value | target |", "|---|---|---|"]
    for f in result["figures"]:
        value = f"{f['value']:,.{f['digits']}f}{' ' + f['unit'] if f['unit'] else ''}"
        target = "" if f["target"] is None else \
            f"{f['target']}: {'met' if f['met'] else '**not met**'}"
        lines.append(f"| {f['what']} | {value} | {target} |")
    for table in result["tables"]:
        lines += ["", leaderboard_markdown(table["rows"], f"Leaderboard, {table['title']}:")
                  .rstrip("\n"), "", _verdict(table["rows"])]
    return "\n".join(lines) + "\n"


def _market_benchmark(result: dict, paths: Paths) -> str:
    scales = result["scales"]
    lines = [f"{_measured(result)}, {result['repeat']} run(s) a case (medians); each case in "
             f"its own process, peak memory summed over it and its Dask workers.", "",
             "| case | " + " | ".join(f"{s['stocks']:,} stocks: s, rows/s, peak GB"
                                      for s in scales) + " |",
             "|---|" + "---|" * len(scales)]
    for case in scales[0]["cases"]:
        cells = []
        for scale in scales:
            r = scale["cases"].get(case, {})
            cells.append("failed" if "error" in r or not r else
                         f"{r['wall_s']:.1f} s, {r['rows'] / r['wall_s']:,.0f}, "
                         f"{r['peak_total'] / 1e9:.2f}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    full = scales[-1]
    best = min((r for c, r in full["cases"].items() if c.startswith("factors")),
               key=lambda r: r["wall_s"])
    met = best["wall_s"] <= result["target_s"] and best["peak_total"] <= result["target_bytes"]
    lines += ["", f"Target for all {full['stocks']:,} stocks' factors: <= "
                  f"{result['target_s'] / 60:.0f} min and <= {result['target_bytes'] / 1e9:.0f}"
                  f" GB; the fastest way took {best['wall_s']:.0f} s at "
                  f"{best['peak_total'] / 1e9:.2f} GB: {'met' if met else 'not met'}. The "
                  f"panels of the three ways are "
                  f"{'bit-for-bit identical' if full['identical_panels'] else 'NOT identical'}."]
    projected = {c: p for c, p in result["projected_peak_total"].items() if p is not None}
    if projected:
        lines.append(f"Projected peak memory at {result['projected_stocks']:,} stocks (the "
                     f"line through the two scales): " + "; ".join(
                         f"{c} {p / 1e9:.1f} GB" for c, p in projected.items()) + ".")
    return "\n".join(lines) + "\n"


def _cross_section_benchmark(result: dict, paths: Paths) -> str:
    scales = result["scales"]
    cap = result["trees_cap"]
    lines = [f"{_measured(result)}. LightGBM walked forward over universe {result['universe']} "
             f"(point in time), test {result['test_period'][0]}..{result['test_period'][1]}, "
             f"on the trailing {result['train_days']} trading days (the last "
             f"{result['validation_days']} stop it early), refitted every "
             f"{result['retrain_every']} trading days instead of the config's "
             f"{result['config_retrain_every']} (a fit's peak is every fit's; fewer fits keep "
             f"the run short on a shared machine)"
             + (f"; at most {cap} trees instead of {result['config_trees']} (memory goes with "
                f"rows x factors, not trees)" if cap else "")
             + ". Each case in its own process, peak memory summed over it and any Dask "
               "workers.", "",
             "| figure | " + " | ".join(f"{s['stocks']:,} stocks" for s in scales) + " |",
             "|---|" + "---|" * len(scales)]
    figures = [
        ("panel rows (x factors)", lambda r: f"{r['rows']:,} (x {r['factors']})"),
        ("wall: panel + walk-forward",
         lambda r: f"{r['panel_s']:.0f} s + {r['walk_forward_s']:.0f} s"),
        ("peak memory (building the panel / walking forward)",
         lambda r: f"{r['peak_total'] / 1e9:.2f} GB ({r['panel_peak'] / 1e9:.2f} / "
                   f"{r['walk_forward_peak'] / 1e9:.2f})"),
        ("refits (trees each)", lambda r: f"{r['fits']} ({', '.join(map(str, r['trees']))})"),
        ("training rows/s (rows fit, train and validation)",
         lambda r: f"{r['fit_rows'] / r['fit_s']:,.0f} ({r['fit_rows']:,} in {r['fit_s']:.0f} s)"),
        ("prediction rows/s", lambda r: f"{r['predict_rows'] / r['predict_s']:,.0f} "
                                        f"({r['predict_rows']:,} in {r['predict_s']:.1f} s)")]
    cases = [s["cases"]["walk-forward"] for s in scales]
    for what, cell in figures:
        lines.append(f"| {what} | " + " | ".join("failed" if "error" in r else cell(r)
                                                  for r in cases) + " |")
    full, projected = scales[-1], result["projected_peak_total"]
    lines += ["", f"Target for all {full['stocks']:,} stocks: peak <= "
                  f"{result['target_bytes'] / 1e9:.0f} GB: "
                  f"{'met' if result['target_met'] else '**not met**'}. Projected peak at "
                  f"{result['projected_stocks']:,} stocks (the line through "
                  f"{scales[0]['stocks']:,} and {full['stocks']:,}): "
                  + ("n/a" if projected is None else f"{projected / 1e9:.1f} GB")
                  + f"; <= {result['projected_limit_bytes'] / 1e9:.0f} GB: "
                  f"{'met' if result['projected_fits'] else '**not met**'}."]
    return "\n".join(lines) + "\n"


BLOCKS: dict[str, Block] = {
    "leaderboard": Block(lambda p: p.leaderboard_json, "stockpred evaluate", _leaderboard),
    "peer": Block(lambda p: p.peer_comparison,
                  ".venv-peer/bin/python scripts/bench_vs_qlib.py", _peer),
    "bench_market": Block(lambda p: p.benchmark_results("bench_market"),
                          "python scripts/bench_market.py", _market_benchmark),
    "bench_cross_section": Block(lambda p: p.benchmark_results("bench_cross_section"),
                                 "python scripts/bench_cross_section.py",
                                 _cross_section_benchmark),
    **{script: Block(lambda p, script=script: p.benchmark_results(script),
                     f"python scripts/{script}.py", _benchmark)
       for script in BENCHMARKS if script not in ("bench_market", "bench_cross_section")},
}


def _blocks(text: str) -> dict[str, str]:
    """name -> body of every result block in ``text``."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(text)}


def render(paths: Paths, names: list[str]) -> dict[str, str]:
    """name -> markdown of each block in ``names``, from its result file."""
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        raise InputError(f"{paths.readme}: no renderer for block(s) {', '.join(unknown)}; "
                         f"the blocks are {', '.join(BLOCKS)}")
    rendered = {}
    for name in names:
        block = BLOCKS[name]
        result = read_manifest(block.source(paths))
        if result is None:
            raise MissingInputError(f"README block {name}: no result file "
                                    f"{block.source(paths)}; run `{block.made_by}`")
        rendered[name] = block.render(result, paths)
    return rendered


def _read_readme(paths: Paths) -> str:
    try:
        return paths.readme.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingInputError(f"no {paths.readme} beside the results folder "
                                f"{paths.results_dir}") from None


def stale_blocks(paths: Paths) -> list[str]:
    """One line for each block the README lacks or holds otherwise than its result file
    renders; empty when the README is up to date."""
    present = _blocks(_read_readme(paths))
    rendered = render(paths, list(dict.fromkeys([*BLOCKS, *present])))
    lines = []
    for name, markdown in rendered.items():
        source = BLOCKS[name].source(paths)
        if name not in present:
            lines.append(f"{paths.readme}: no block {name} (<!-- results:{name} --> ... "
                         f"<!-- /results:{name} -->) to show {source}")
        elif present[name] != markdown:
            lines.append(f"{paths.readme}: block {name} differs from what {source} renders; "
                         f"run `stockpred readme`")
    return lines


def _day(stamp: str) -> str:
    """YYYYMMDD of a date, an ISO time or a run id, so that any two of them compare."""
    return re.sub(r"\D", "", stamp)[:8]


def _figure_problem(figure: Path, paths: Paths) -> str | None:
    """Why the README may not show ``figure``, or None."""
    if not figure.exists():
        return "is missing"
    drawn = read_provenance(figure)
    if drawn is None:
        return f"has no provenance (no {sidecar(figure).name} beside it)"
    if drawn.get("png_sha256") != png_sha256(figure):
        return (f"is not the figure its provenance ({sidecar(figure).name}) describes: "
                f"it was replaced by hand")
    if drawn["quick"]:
        return f"was drawn from a quick run ({drawn['source']})"
    block = FIGURE_RESULTS.get(figure.parent.name)
    result = read_manifest(BLOCKS[block].source(paths)) if block else None
    if result is None:  # not beside a result, or the block's own check names the file
        return None
    shown = result.get("date") or result["run_id"]
    if drawn["finished_at"] is None:
        return (f"cannot be dated against {BLOCKS[block].source(paths).name} ({shown}), "
                f"which block {block} renders: {drawn['source']} records no finish time")
    if _day(drawn["finished_at"]) < _day(shown):
        return (f"was drawn from {drawn['source']}, finished {drawn['finished_at'][:10]}, "
                f"before {BLOCKS[block].source(paths).name} ({shown}), which block {block} "
                f"renders")
    return None


def figures(paths: Paths) -> list[Path]:
    """The figures the README shows, in order, each once."""
    links = dict.fromkeys(m["link"] for m in _FIGURE.finditer(_read_readme(paths)))
    return [paths.readme.parent / link for link in links]


def stale_figures(paths: Paths) -> list[str]:
    """One line for each figure the README shows that it should not (`_figure_problem`),
    saying what redraws it."""
    lines = []
    for figure in figures(paths):
        problem = _figure_problem(figure, paths)
        if problem is None:
            continue
        family = next((name for name, (_, folder) in FAMILIES.items()
                       if figure.parent == paths.figures_dir(folder)), None)
        redraw = f" with `stockpred plot {family}`" if family else ""
        lines.append(f"{paths.readme}: figure {figure.relative_to(paths.readme.parent)} "
                     f"{problem}; redraw it{redraw} from a full run")
    return lines


def check(paths: Paths) -> list[str]:
    """`stockpred readme --check`: every stale block and every figure the README should
    not show, one line each; empty when the README is up to date."""
    return stale_blocks(paths) + stale_figures(paths)


def run(paths: Paths) -> list[str]:
    """Rewrite the README's result blocks from their result files; text outside the
    markers is kept byte for byte. A folder without a README has nothing to render."""
    if not paths.readme.exists():
        return [f"readme: no {paths.readme}, nothing to render"]
    text = _read_readme(paths)
    present = _blocks(text)
    rendered = render(paths, list(present))
    changed = [name for name, body in present.items() if rendered[name] != body]
    if not changed:
        return [f"readme: the {len(present)} result block(s) of {paths.readme} are up to date"]
    atomic_write_text(paths.readme, _BLOCK.sub(
        lambda m: m["open"] + rendered[m["name"]] + m["close"], text))
    return [f"readme: rewrote block(s) {', '.join(changed)} of {paths.readme}"]
