"""Benchmark the tuning agents at equal budgets on 600036.SH.

Runs `stockpred tune` with DQN, Optuna's TPE and random search, each with the same budget
of distinct configurations of one model (default: the LSTM, 20 trials), in a fresh data
folder built from the shipped sample, then `stockpred evaluate`, which walks each agent's
choice forward over 2017-2018 (the period tuning never read), and prints a table: trials,
wall time, best validation skill (2016; 1 - RMSE / persistence RMSE of the next-day return)
and the test skill of the chosen configuration.

Usage: python scripts/bench_tune.py [--model lstm] [--budget 20] [--quick]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchlib import Results, say, stockpred


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="lstm")
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    extra = ["--quick"] if args.quick else []
    results = Results("bench_tune", "python scripts/bench_tune.py")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for step in (("fetch", "--ts-code", "600036.SH"), ("features",), ("importance",)):
            say(f"stockpred {' '.join(step)} ...")
            stockpred(*step, cwd=folder)
        say(f"tuning {args.model} on 600036.SH, budget {args.budget} configurations each"
            f"{' (quick sizes)' if args.quick else ''}; skill = 1 - RMSE / persistence RMSE")
        say(f"{'agent':8s} {'trials':>6s} {'wall s':>7s} {'best valid':>11s} {'test':>8s}  "
            f"chosen")
        walls, bests = {}, {}
        for agent in ("dqn", "optuna", "random"):
            start = time.perf_counter()
            stockpred("tune", "--agent", agent, "--model", args.model, "--budget",
                      str(args.budget), *extra, cwd=folder)
            walls[agent] = time.perf_counter() - start
            bests[agent] = json.loads((folder / "data" / "runs" / "tune" / args.model /
                                       f"{agent}.best.json").read_text())
        # evaluate walks every agent's choice forward over the test period, beside persistence
        stockpred("evaluate", "--models", args.model, "--results-dir", str(folder / "results"),
                  *extra, cwd=folder)
        rows = {r["model"]: r for r in json.loads(
            (folder / "results" / "leaderboard.json").read_text())["rows"]}
        naive = rows["persistence"]["rmse_return"]
        for agent, best in bests.items():
            test = rows[f"{args.model} (tuned by {agent}){' [quick]' if args.quick else ''}"]
            skill = 1 - test["rmse_return"] / naive
            say(f"{agent:8s} {args.budget:6d} {walls[agent]:7.0f} "
                f"{best['validation_score']:+11.4f} {skill:+8.4f}  {json.dumps(best['best'])}")
            results.add(f"{agent}: wall time of {args.budget} trials", walls[agent], "s",
                        digits=0)
            results.add(f"{agent}: best validation skill (2016)", best["validation_score"],
                        digits=4)
            results.add(f"{agent}: test skill of its choice {json.dumps(best['best'])}",
                        skill, digits=4)
            results.add(f"{agent}: its DM against persistence on the test period (p "
                        f"{test['dm_pvalue_vs_persistence']:.3g})",
                        test["dm_stat_vs_persistence"], digits=2)
    if not args.quick:  # the README shows the full search
        results.save()

if __name__ == "__main__":
    main()
