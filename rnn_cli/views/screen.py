"""The names other code still imports from views.screen, which used to hold every screen.

Each now lives in the module of its section or command (run.py, compare.py, bench.py,
progress.py, tables.py, fit.py, ...); import them from there. cli/app.py, benchmarks/run.py
and branches written against the old module import these until they are updated; then this
module goes. Nothing in rnn_cli.views imports it.
"""

from __future__ import annotations

from rnn_cli.views.bench import format_ms, show_bench
from rnn_cli.views.compare import checks_parts, show_compare
from rnn_cli.views.fit import Verbatim, print_parts
from rnn_cli.views.progress import LazyProgress
from rnn_cli.views.run import show_run
from rnn_cli.views.tables import WIDE, add_row, make_table, stdout_width

__all__ = ["LazyProgress", "Verbatim", "WIDE", "add_row", "checks_parts", "format_ms", "make_table", "print_parts",
           "show_bench", "show_compare", "show_run", "stdout_width"]
