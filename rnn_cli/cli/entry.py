"""The console script's entry: imports nothing heavy at module level, so that Ctrl-C or a
MemoryError at any moment (the imports of typer, numpy and torch included) ends as one line.

KeyboardInterrupt -> `rnn-cli: interrupted`, exit 130 (what a shell reports for SIGINT);
SIGTERM / SIGHUP -> the same path (a KeyboardInterrupt raised by their handler), one line
`rnn-cli: terminated (SIGTERM)` / `rnn-cli: hung up (SIGHUP)`, exit 128 + the signal's number;
MemoryError -> `rnn-cli: error: out of memory ...`, exit 2. Files being written are cleaned
up on the way out by their own `finally`/`except BaseException` blocks (rnn_cli.formats.save).

stdout closed (`rnn-cli manual >&-`) is one line and exit 2 before anything runs. A stdout or
stderr whose encoding cannot show every character (PYTHONIOENCODING=ascii, LANG=C) gets the
others as backslash escapes (`\\u2502`) instead of a UnicodeEncodeError; tables switch to ASCII
boxes on their own (rnn_cli.cli.app.emit tells rich the real encoding).
"""

import atexit
import gc
import signal
import sys

from rnn_cli.stops import STOPPED_BY as _STOPPED_BY
from rnn_cli.stops import handler as _stop

_WORDS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}


def _safe_streams() -> bool:
    """False when stdout is closed. Unencodable characters become escapes, never a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a detached stream
                pass
    return sys.stdout is not None


def _ignore(unraisable) -> None:
    """sys.unraisablehook while _let_go frees what a stopped run left half-done."""


def _let_go(stop: BaseException) -> None:
    """Free now what the stop left half-done, held by the tracebacks of `stop` and the exceptions
    it was raised from, and say nothing of what fails in a __del__ then: a library object stopped
    while closing (numpy's ZipFile in np.savez) does, and left to Python's exit its `Exception
    ignored in ...` and traceback came after the one line. The hook is put back afterwards."""
    hook, sys.unraisablehook = sys.unraisablehook, _ignore
    try:
        seen: BaseException | None = stop
        while seen is not None:
            seen.__traceback__ = None
            seen = seen.__cause__ or seen.__context__
        gc.collect()  # what sat in reference cycles with those frames
    finally:
        sys.unraisablehook = hook


def _with_room(fn):
    """fn(), called from a frame that reserves room on CPython's frame stack (see below)."""
    return fn()


# CPython (3.11, 3.12) keeps Python frames in 16 KiB chunks of a per-thread stack and frees a
# chunk as soon as the call that opened it returns, so code that loops at a depth on a chunk's
# edge maps and unmaps a chunk on every call (python/cpython#142183; 3.13 and later keep one
# chunk cached). Where the edge falls depends only on the depth the program starts at: measured
# with strace, `rnn-cli manual` made 681 to 1,691 such mmap/munmap pairs, 15-30 ms of a ~200 ms
# start-up, and `rnn-cli torch --json` 1,730. This frame declares an evaluation stack of 64 Ki
# slots (512 KiB) that it never uses: its chunk is 1 MiB, and everything main runs below it fits
# in the other half (virtual memory: a page is touched only when a frame uses it). With it, two.
try:
    _with_room.__code__ = _with_room.__code__.replace(co_stacksize=1 << 16)
except (AttributeError, TypeError, ValueError):  # pragma: no cover - not CPython: the plain call
    pass


def main() -> None:
    # At exit, Python's last garbage collections walk every object the imports made (numpy's,
    # typer's, rich's: about 20 ms of a 200 ms `rnn-cli manual`, measured). Nothing of ours waits
    # for them: files are closed by their `with` blocks and sys.stdout is flushed on the way out
    # in any case. Frozen objects are skipped by those collections; only at exit, so a process
    # that calls main() and goes on (the tests) collects as before.
    atexit.register(gc.freeze)
    for signum in _WORDS:
        signal.signal(signum, _stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where the shell ignores it (a `&` job)
        signal.signal(signal.SIGINT, _stop)  # Ctrl-C as before, but held back while a file is made and recorded
    if not _safe_streams():
        if sys.stderr is not None:
            sys.stderr.write("rnn-cli: error: stdout is closed; redirect it to a file instead (> out.txt)\n")
        sys.exit(2)
    try:
        from rnn_cli.cli.app import main as cli_main

        _with_room(cli_main)
    except KeyboardInterrupt as stop:
        _let_go(stop)  # the one line below is all a stopped run says
        if _STOPPED_BY:
            signum = _STOPPED_BY[0]
            sys.stderr.write(f"rnn-cli: {_WORDS[signum]} ({signal.Signals(signum).name})\n")
            sys.exit(128 + signum)
        sys.stderr.write("rnn-cli: interrupted\n")
        sys.exit(130)
    except MemoryError:
        sys.stderr.write(
            "rnn-cli: error: out of memory (the system or a ulimit/cgroup limit refused an allocation); "
            "reduce --hidden-size, --seq-len, --batch or --layers\n"
        )
        sys.exit(2)
