"""Errors a user can act on. The CLI prints each as one line and exits with its code."""

# every exit code of a command: (code, what it means, what a cron job should do); the CLI's
# --help and the README's table show these (a test keeps the README's equal)
EXIT_CODES = (
    (0, "done", "nothing"),
    (1, "failed: a damaged store, a Dask cluster that failed, a bug (the log says which)",
     "read the log; rerun after the fix"),
    (2, "bad input: flags, config.json, the token, an unknown name", "fix the input"),
    (3, "stopped by tushare's daily quota, what was fetched is stored",
     "nothing: the next night carries on"),
    (4, "another stockpred run holds the data directory", "nothing: it exits untouched"),
    (5, "a stage's inputs are missing (the message names the stage that makes them)",
     "run that stage (or `stockpred run`)"),
    (130, "interrupted (Ctrl-C), nothing is half-written", "rerun"),
)


class StockpredError(Exception):
    """A failure with a message fit for the user; never carries a traceback to them."""

    exit_code = 1


class InputError(StockpredError):
    """Bad input from the user: flags, config.json, token, an unknown code."""

    exit_code = 2


class IncompleteError(StockpredError):
    """Work stopped cleanly part way (a daily quota, say); what was stored is intact."""

    exit_code = 3


class LockedError(StockpredError):
    """Another stockpred run holds the data directory."""

    exit_code = 4


class MissingInputError(StockpredError):
    """A stage's inputs are absent; the message names the stage that makes them."""

    exit_code = 5


class ComputeError(StockpredError):
    """The Dask cluster failed the work: its scheduler does not answer, or its workers died
    more often than distributed retries a task; what was stored is intact."""


class Interrupted(StockpredError):
    """Ctrl-C. Every file is whole all the same: artefacts are written to a temporary and
    renamed into place, and a run folder only when its run finished."""

    exit_code = 130

    def __init__(self):
        super().__init__("interrupted")


def interrupted(exc: BaseException) -> bool:
    """Whether Ctrl-C caused ``exc``: a KeyboardInterrupt, or an error raised from one (an
    extension module whose import Ctrl-C cut short raises ImportError)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
