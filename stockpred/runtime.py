"""What every command shares at run time: the data-directory lock, the log file, a
seeded Keras whose native chatter goes to that log, and Ctrl-C held back while native code
cannot take it."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from stockpred.data.fetch import BEIJING
from stockpred.errors import InputError, LockedError
from stockpred.layout import Paths

# every log file this process opened, in order: an error line may point only at a log
# its command wrote
opened_logs: list[Path] = []

# Without a handler (no log file: an unwritable data dir), logging's last resort prints
# warnings and errors to stderr, beside the one line the CLI prints for the same error.
logging.getLogger("stockpred").addHandler(logging.NullHandler())
log = logging.getLogger(__name__)


@contextmanager
def data_dir_lock(paths: Paths, command: str) -> Iterator[None]:
    """Hold the data directory exclusively; a second run fails at once instead of waiting.

    flock is released by the kernel when the process dies, even by SIGKILL, so a
    crashed run never leaves a stale lock behind.
    """
    try:
        paths.data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(paths.lock_file, "a+", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write to the data directory {paths.data_dir}: "
                         f"{exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LockedError(f"another stockpred run ({holder}) is using {paths.data_dir}; "
                              f"this one exits without touching it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, `stockpred {command}` since "
                     f"{datetime.now().isoformat(timespec='seconds')}")
        handle.flush()
        yield
    finally:
        handle.close()


class _RedactingFormatter(logging.Formatter):
    """Masks the secret in the whole formatted record, tracebacks included."""

    def __init__(self, secret: str | None):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secret = secret

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self.secret, "***") if self.secret else text


def start_log(paths: Paths, command: str, secret: str | None) -> logging.Handler | None:
    """Append this run's log to <data dir>/logs/<command>-YYYYMMDD.log; the token is masked.

    The day is Beijing's, the market's: a cron run after the close lands in that trading
    day's log whatever the machine's time zone."""
    path = paths.logs_dir / f"{command}-{datetime.now(BEIJING):%Y%m%d}.log"
    try:
        paths.logs_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None  # an unwritable data dir is reported by the lock, with a clear message
    opened_logs.append(path)
    handler.setFormatter(_RedactingFormatter(secret))
    root = logging.getLogger("stockpred")
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler


def stop_log(handler: logging.Handler | None) -> None:
    if handler is not None:
        logging.getLogger("stockpred").removeHandler(handler)
        handler.close()


@contextmanager
def native_stderr_to_log() -> Iterator[None]:
    """Send what TensorFlow's C++ core writes to stderr (no GPU found, CPU features, graph
    notes) to the log instead of the terminal; Keras' epoch lines go to stdout and stay."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            chatter = sink.read().decode("utf-8", errors="replace").strip()
            if chatter:
                log.debug("tensorflow: %s", chatter)


def keras_seeded(seed: int):
    """The keras module with Python's, NumPy's and TensorFlow's generators seeded by ``seed``
    and TensorFlow's ops deterministic, so a refit with the same seed gives the same weights.

    Imported here, not at the top, so that a command without a network never loads
    TensorFlow."""
    with native_stderr_to_log():
        import keras
        import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return keras


# set by the SIGINT handler of interrupt_held while Ctrl-C waits to be raised; a plain
# attribute, not an Event: a handler taking a lock the main thread holds would deadlock
_held_interrupt = SimpleNamespace(pending=False)


@contextmanager
def interrupt_held() -> Iterator[None]:
    """Inside, Ctrl-C only sets a flag (``interrupt_pending``); on leaving, a Ctrl-C that
    came is raised as the KeyboardInterrupt the CLI turns into exit 130.

    For native code that calls back into Python: XGBoost builds its training matrix
    through ctypes callbacks, and a KeyboardInterrupt raised inside one is swallowed by
    ctypes and leaves XGBoost with half a matrix (a failed check, or munmap_chunk():
    invalid pointer and a core dump). A training loop reads the flag to stop at its next
    round, so the wait stays short. Only the outermost block of the main thread holds
    Ctrl-C, and only where Python's own handler has it: an ignored SIGINT stays ignored."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _held_interrupt.pending = False
    signal.signal(signal.SIGINT, lambda signum, frame: setattr(_held_interrupt, "pending", True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if _held_interrupt.pending:
            _held_interrupt.pending = False
            raise KeyboardInterrupt


def interrupt_pending() -> bool:
    """Whether a Ctrl-C is held by ``interrupt_held``, waiting for the block to end."""
    return _held_interrupt.pending


def progress(items: Iterable, desc: str, unit: str, shown: bool,
             total: int | None = None) -> Iterator:
    """``items`` with a progress bar at a terminal (``shown``), else with a log line at
    every tenth of the way: an unattended run's log says how far a long stage is."""
    if shown:
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, unit=unit, total=total, leave=False)
        return
    total = len(items) if total is None else total
    logged = 0
    for done, item in enumerate(items, 1):
        yield item
        tenth = done * 10 // max(total, 1)
        if tenth > logged:
            logged = tenth
            log.info("%s: %d%% (%d of %d %ss)", desc.strip(), tenth * 10, done, total, unit)

