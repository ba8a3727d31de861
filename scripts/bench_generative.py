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

from benchlib import Results, say, stockpred


def latest_metrics(folder: Path, model: str) -> dict:
    runs = sorted((folder / "data" / "models" / model).glob("*/metrics.json"))
    return json.loads(runs[-1].read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--retrain-every", type=int, default=250)
    args = parser.parse_args()
    results = Results("bench_generative", "python scripts/bench_generative.py")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for step in (("fetch",), ("features",), ("importance",)):
            say(f"stockpred {' '.join(step)} ...")
            stockpred(*step, cwd=folder)
        say("== stockpred train vae (600036.SH)")
        stockpred("train", "vae", cwd=folder)
        vae = latest_metrics(folder, "vae")
        h, best = vae["history"], vae["checks"]["best_epoch"]
        results.add("VAE training -ELBO per window, first epoch", h["neg_elbo"][0])
        results.add("VAE training -ELBO per window, last epoch", h["neg_elbo"][-1])
        results.add("VAE validation -ELBO, first epoch", h["val_neg_elbo"][0])
        results.add(f"VAE validation -ELBO at the kept epoch ({best + 1} of "
                    f"{len(h['val_neg_elbo'])})", h["val_neg_elbo"][best])
        say("== stockpred train wgan (600036.SH)")
        stockpred("train", "wgan", cwd=folder)
        wgan = latest_metrics(folder, "wgan")
        results.add("WGAN seconds per epoch", wgan["seconds_per_epoch"], "s")
        for horizon, scores in wgan["distribution"].items():
            for who in ("wgan", "random_walk"):
                name = "WGAN" if who == "wgan" else "Gaussian random walk"
                scored = scores[who]
                results.add(f"{horizon}: {name}, CRPS", scored["crps"], digits=5)
                for band in ("80", "95"):
                    results.add(f"{horizon}: {name}, {band}% band coverage",
                                100 * scored[f"coverage_{band}"], "%", digits=1)
        results.add("WGAN sample median, return RMSE 2017-2018 (one fit)",
                    wgan["forecast"]["rmse_return"], digits=5)
        results.add("persistence, return RMSE 2017-2018", wgan["persistence"]["rmse_return"],
                    digits=5)
        results.add("WGAN median against persistence: DM p (HLN)",
                    wgan["forecast"]["dm_pvalue_vs_persistence"], digits=3)
        say(f"== walk-forward 2017-2018, refit every {args.retrain_every} days")
        stockpred("evaluate", "--models", "wgan,fusion", "--retrain-every",
                  str(args.retrain_every), "--results-dir", str(folder / "results"), cwd=folder)
        board = json.loads((folder / "results" / "leaderboard.json").read_text())
        say((folder / "results" / "leaderboard.md").read_text().split("\n\n", 2)[2])
        results.leaderboard(f"600036.SH, walk-forward {board['test_period'][0]}.."
                            f"{board['test_period'][1]}, refit every {args.retrain_every} "
                            f"days", board["rows"])
        stockpred("embed-news", cwd=folder)
        out = stockpred("train", "seq2seq", cwd=folder)
        say("== stockpred train seq2seq (SSE Composite minute bars, Aug-Dec 2018 test)")
        say("\n".join("   " + line for line in out.strip().splitlines()
                       if "saved" not in line))
    results.save()


if __name__ == "__main__":
    main()
