"""A progress bar on stderr for long jobs (bench's timed runs), shown only on a terminal and
only once the job looks longer than a second."""

from __future__ import annotations

import time

from rich.console import Console


class LazyProgress:
    """A transient progress bar on a terminal console (stderr), started only once the whole
    job looks longer than `after_s` (projected from the work done so far). Call it as
    progress(label, done, total); close() when the work ends. Not a terminal: nothing."""

    def __init__(self, console: Console | None, after_s: float = 1.0) -> None:
        self.console = console if console is not None and console.is_terminal else None
        self.after_s = after_s
        self.start = time.perf_counter()
        self.progress = self.task = None

    def __call__(self, label: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=label, completed=done, total=total)
            return
        if self.console is None or done <= 0 or done >= total:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed / done * total > self.after_s:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(label, total=total, completed=done)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
