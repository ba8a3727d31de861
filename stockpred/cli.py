"""The `stockpred` command line, generated from the stage table (stockpred.stages.table).

This module holds only what a command run shares (the session: log, lock, temporary
files) and the generator; what a command does, its flags and its help are the table's.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from click.core import ParameterSource

from stockpred import __version__
from stockpred.config import load_config, resolve_token, with_overrides
from stockpred.data.store import remove_temporaries
from stockpred.errors import EXIT_CODES, InputError, Interrupted, StockpredError, interrupted
from stockpred.layout import Paths, resolve_paths
from stockpred.runtime import data_dir_lock, opened_logs, start_log, stop_log
from stockpred.stages import table
from stockpred.stages.flags import Flag

log = logging.getLogger("stockpred.cli")


def _secret() -> str | None:
    try:
        return resolve_token()
    except StockpredError:
        return None


@contextmanager
def _session(paths: Paths, command: str, checks_store: bool = True) -> Iterator[None]:
    """Log to <data dir>/logs, hold the data-directory lock, clear temp files of killed runs."""
    from stockpred.data import fetch

    handler = start_log(paths, command, _secret())
    log.info("stockpred %s %s: %s", __version__, command, " ".join(sys.argv[1:]))
    log.info("data dir %s, results dir %s", paths.data_dir, paths.results_dir)
    try:
        with data_dir_lock(paths, command):
            removed = remove_temporaries(paths.data_dir) + remove_temporaries(paths.results_dir)
            if removed:
                log.info("removed %d temporary file(s) left by an interrupted run", removed)
            if checks_store:
                fetch.check_manifest(paths)
            yield
        log.info("%s finished", command)
    except StockpredError as exc:
        log.error("%s", exc)
        raise
    except (KeyboardInterrupt, Exception) as exc:
        if interrupted(exc):
            log.warning("%s interrupted (Ctrl-C)", command)
        else:
            log.exception("%s failed unexpectedly", command)
        raise
    finally:
        stop_log(handler)


_COMMON = (
    click.Option(["--config", "config_path"], type=click.Path(dir_okay=False),
                 help="config.json to use (env STOCKPRED_CONFIG; default ./config.json, "
                      "else built-in defaults)."),
    click.Option(["--data-dir"], type=click.Path(file_okay=False),
                 help="Data directory (env STOCKPRED_DATA_DIR; default data/ beside "
                      "config.json)."),
    click.Option(["--results-dir"], type=click.Path(file_okay=False),
                 help="Where results and figures go (env STOCKPRED_RESULTS_DIR; default "
                      "project_results/ beside config.json)."),
)


def _parameter(flag: Flag) -> click.Parameter:
    options = dict(flag.options)
    kind = options.pop("type", None)
    low = options.pop("min", None)
    if isinstance(kind, tuple):
        kind = click.Choice(kind)
    elif low is not None:
        kind = click.IntRange(min=low)
    if flag.argument:
        options.setdefault("required", True)
        return click.Argument(list(flag.decls), type=kind, **options)
    return click.Option(list(flag.decls), type=kind, help=flag.help, **options)


def _selects(stage: table.Stage, values: dict, given: set[str]) -> bool:
    flag, wanted = stage.when
    if wanted is True:
        return flag in given
    return str(values.get(flag) or "").lower() == wanted


def _overrides(flags: list[Flag], values: dict) -> tuple[dict, dict]:
    """(config overrides, run arguments) from the parsed flag values."""
    overrides, args = {}, {}
    for flag in flags:
        value = values.get(flag.name)
        if value is not None and flag.parse is not None:
            value = flag.parse(value, flag.shown)
        if flag.config is None:
            args[flag.name] = value
        elif value is not None:
            *parents, leaf = flag.config.split(".")
            node = overrides
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return overrides, args


def _run(stages: list[table.Stage], values: dict) -> None:
    ctx = click.get_current_context()
    given = {name for name in values if ctx.get_parameter_source(name) in
             (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)}
    chosen = next((s for s in stages if s.when and _selects(s, values, given)),
                  next((s for s in stages if s.when is None), stages[0]))
    own = {f.name: f for f in chosen.flags}
    both = [own[name].shown for name in chosen.exclusive if name in given]
    if len(both) > 1:
        raise InputError(f"give {' or '.join(both)}, not both")
    for other in [f for s in stages for f in s.flags if f.name in given - set(own)]:
        if chosen.when and chosen.when[1] is True:
            raise InputError(f"give --{chosen.when[0].replace('_', '-')} or {other.shown}, "
                             f"not both")
        raise InputError(f"{other.shown} does not apply to `stockpred {table.usage(chosen)}`")
    overrides, args = _overrides(list(chosen.flags), values)
    config = with_overrides(load_config(values["config_path"]), overrides)
    paths = resolve_paths(config, values["data_dir"], values["results_dir"])
    # bars and Keras' epoch lines for a person at a terminal, not for a cron log
    job = table.Job(config, paths, sys.stderr.isatty() and chosen.name != "refresh", args)
    if not chosen.session:
        lines = chosen.run(job)
    else:
        with _session(paths, chosen.command, "raw" not in chosen.writes):
            lines = chosen.run(job)
            if chosen.is_own_result(job, given) and not job.failures:
                table.record_run(chosen, config, paths)
            for line in lines:
                log.info("%s", line)
    for line in lines:
        click.echo(line)
    for line in job.failures:
        click.echo(line, err=True)
    if job.failures:
        ctx.exit(1)


def _command(name: str, stages: list[table.Stage]) -> click.Command:
    first = next((s for s in stages if s.when is None), stages[0])
    params: dict[str, click.Parameter] = {}
    for stage in [first, *stages]:
        for flag in stage.flags:
            params.setdefault(flag.name, _parameter(flag))

    def run(**values) -> None:
        try:
            _run(stages, values)
        except (KeyboardInterrupt, Exception) as exc:
            # before click sees a KeyboardInterrupt: it would print a blank line first
            if interrupted(exc):
                raise Interrupted() from None
            raise

    return click.Command(name, params=[*params.values(), *_COMMON], help=first.doc,
                         epilog=first.epilog or None, callback=run)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="Exit codes: " + "; ".join(f"{code} {meaning}"
                                               for code, meaning, _ in EXIT_CODES) + ".")
@click.version_option(__version__, prog_name="stockpred")
def cli():
    """stockpred: a leak-free research pipeline for Chinese A-share prices.

    Each stage reads and writes files under the data directory, so any stage can be
    rerun alone. Start with `stockpred fetch`; run `stockpred refresh` from cron;
    `stockpred stages` lists every stage and whether it is stale. Settings live in
    config.json (documented in doc/config.md).
    """


def _build() -> None:
    commands: dict[str, list[table.Stage]] = {}
    for stage in table.STAGES:
        commands.setdefault(stage.command, []).append(stage)
    for words, stages in commands.items():
        group, _, name = words.rpartition(" ")
        parent = cli
        if group:
            parent = cli.commands.get(group) or cli.group(group, help=f"The {group} commands.")(
                lambda: None)
        parent.add_command(_command(name, stages))


_build()


def main(argv: list[str] | None = None) -> None:
    """Entry point: every failure becomes one line on stderr and a non-zero exit code."""
    logs_before = len(opened_logs)
    try:
        code = cli.main(args=argv, prog_name="stockpred", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except StockpredError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: still one line, the traceback goes to the log
        message = str(exc).splitlines()[0] if str(exc) else ""
        secret = _secret()
        if secret:
            message = message.replace(secret, "***")
        logged = opened_logs[logs_before:]
        where = f" (details in {logged[-1]})" if logged else ""
        click.echo(f"error: unexpected {type(exc).__name__}: {message}{where}", err=True)
        sys.exit(1)
    sys.exit(code or 0)
