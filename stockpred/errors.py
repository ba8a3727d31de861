"""Errors a user can act on. The CLI prints each as one line and exits with its code."""


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
