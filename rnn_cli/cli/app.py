"""The console app: typer, its six commands, main(). flags -> RunConfig and Sample
(rnn_cli.inputs) -> core (manual, torch, compare, bench) -> views / documents.

Split by concern: rnn_cli.cli.registry (the typer app, `command`, one-line errors),
rnn_cli.cli.options (the typed option groups), rnn_cli.cli.output (`emit`: --save, --json or
the human view), rnn_cli.cli.commands (each command's flags and function). `app`, `command`,
`emit` and `main` stay importable from here. A new command module should import `command`
from rnn_cli.cli.registry (importing it from here, which imports the commands, is a circle).
"""

import copy
import os
import sys
from typing import Optional

from rnn_cli.cli.registry import PROG, app, command  # noqa: F401 - `command` is this module's interface too
from rnn_cli.cli.output import emit  # noqa: F401
from rnn_cli.cli import commands  # noqa: F401 - registers manual, torch, compare, bench, inspect, onnx
from rnn_cli.cli import convert as _convert  # noqa: F401 - registers `rnn-cli convert`, kept in its own module


def main(argv: Optional[list[str]] = None) -> None:
    """The console script. When the first argument names a command, only that command is
    built: typer otherwise makes every command's click options before parsing (start-up)."""
    args = sys.argv[1:] if argv is None else argv
    invoked = [c for c in app.registered_commands if args and c.name == args[0]]
    if invoked and f"_{PROG.upper().replace('-', '_')}_COMPLETE" not in os.environ:  # not shell completion
        one = copy.copy(app)  # the same app with one command; app itself keeps all six
        one.registered_commands = invoked
        one(argv, prog_name=PROG)  # argv None: click reads sys.argv itself (and expands globs on Windows)
    else:
        app(argv, prog_name=PROG)


if __name__ == "__main__":  # pragma: no cover
    main()
