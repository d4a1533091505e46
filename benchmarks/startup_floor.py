"""The floor under `rnn-cli manual`'s start-up: what any program that prints its default
screen must pay beyond `python -c "import numpy, typer, rich.table"` (run.py's baseline),
with none of rnn-cli's own code.

- numpy.random: the seeded draw of weights and inputs (default_rng, as rnn_cli.core.sample).
- rich.console: rich.table alone does not import it, and nothing is printed without it.
- the screen: a bold header and four tables of four-decimal numbers with a background
  colour per cell, about the size of `rnn-cli manual`'s default screen at 80 columns.

benchmarks/run.py times it beside rnn-cli's commands.
"""

import io
import sys

import numpy as np
import typer  # noqa: F401 - the command line is parsed with it
from rich.console import Console
from rich.table import Table
from rich.text import Text

values = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
console = Console(file=io.StringIO(), width=80, highlight=False)
console.print(Text("rnn-cli manual: numpy memory cell on cpu, float32, seed 0", style="bold"))
for title, rows in (("Shapes", 4), ("Where h_n comes from", 1), ("output", 3), ("h_n", 1)):
    table = Table(title=title)
    for j in range(values.shape[1]):
        table.add_column(str(j), justify="right")
    for i in range(rows):
        table.add_row(*[Text(f"{v:.4f}", style="on rgb(40,40,90)") for v in values[i]])
    console.print(table)
sys.stdout.write(console.file.getvalue())
