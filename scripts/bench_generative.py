"""Benchmark the generative and news models on the shipped sample.

Prints, for 600036.SH: training time per epoch of the VAE and the WGAN (default sizes),
the WGAN's CRPS and 80%/95% band coverage against a Gaussian random walk, the leaderboard
rows that the WGAN median and the LSTM+WGAN fusion earn walk-forward on 2017-2018 (refit
every --retrain-every days, default 250 to stay within minutes on 2 cores), and the news
seq2seq's test skill with and without news.

Usage: python scripts/bench_generative.py [--retrain-every 250]
"""

import argparse
import json
import tempfile
from pathlib import Path

from benchlib import stockpred



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrain-every", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stockpred("fetch", cwd=folder)
        stockpred("features", cwd=folder)
        stockpred("importance", cwd=folder)
        for model in ("vae", "wgan"):
            out = stockpred("train", model, cwd=folder)
            print(f"== stockpred train {model} (600036.SH)")
            print("\n".join("   " + line for line in out.strip().splitlines()
                            if "figure" not in line and "saved" not in line))
        stockpred("evaluate", "--models", "wgan,fusion", "--retrain-every",
                  str(args.retrain_every), "--results-dir", str(folder / "results"), cwd=folder)
        board = (folder / "results" / "leaderboard.md").read_text().split("\n\n", 2)[2]
        print(f"== walk-forward 2017-2018, refit every {args.retrain_every} days")
        print(board)
        stockpred("embed-news", cwd=folder)
        out = stockpred("train", "seq2seq", cwd=folder)
        print("== stockpred train seq2seq (SSE Composite minute bars, Aug-Dec 2018 test)")
        print("\n".join("   " + line for line in out.strip().splitlines()
                        if "saved" not in line))
        runs = sorted((folder / "data" / "news" / "seq2seq").glob("*/metrics.json"))
        if runs:
            metrics = json.loads(runs[-1].read_text())
            print("   metrics.json keys:", ", ".join(sorted(metrics)))


if __name__ == "__main__":
    main()
