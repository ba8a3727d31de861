"""What the benchmark scripts share: running the real `stockpred` command."""

import subprocess
import sys

CLI = [sys.executable, "-m", "stockpred"]


def stockpred(*args, cwd) -> str:
    """Run `stockpred ARGS` in ``cwd``; exit with its last error lines if it fails."""
    done = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"stockpred {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def say(text: str) -> None:
    """Print now: a long benchmark shows each figure as it comes."""
    print(text, flush=True)
