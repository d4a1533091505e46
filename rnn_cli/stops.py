"""How a run is stopped: SIGINT, SIGTERM and SIGHUP end it by raising KeyboardInterrupt in the
main thread (rnn_cli.cli.entry installs `handler`), so every `except BaseException`/`finally` on the
way out removes what it was writing. Inside `held()` (the few lines that create a file and
record it, or rename one and record that) a signal is kept and raised when the block ends: one
raised between the two steps left a temporary that no cleanup knew of. Blocking the signal with
pthread_sigmask would not do: numpy's and torch's worker threads would still take it."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

STOPPED_BY: list[int] = []  # SIGTERM or SIGHUP, when one stopped the run (SIGINT: empty)
_depth = [0]  # how many held() blocks are open
_deferred: list[int] = []  # a signal that arrived inside held(), raised when it ends


def handler(signum: int, frame) -> None:
    if signum != signal.SIGINT:
        if STOPPED_BY:  # already stopping: the cleanup on the way out is not interrupted again
            return
        STOPPED_BY.append(signum)
    if _depth[0]:
        _deferred.append(signum)
        return
    raise KeyboardInterrupt


@contextmanager
def held() -> Iterator[None]:
    _depth[0] += 1
    try:
        yield
    finally:
        _depth[0] -= 1
    if not _depth[0] and _deferred:
        _deferred.clear()
        raise KeyboardInterrupt
