"""The console script's entry: imports nothing heavy at module level, so that Ctrl-C or a
MemoryError at any moment (the imports of typer, numpy and torch included) ends as one line.

KeyboardInterrupt -> `rnn-cli: interrupted`, exit 130 (what a shell reports for SIGINT);
MemoryError -> `rnn-cli: error: out of memory ...`, exit 2. Files being written are cleaned
up on the way out by their own `finally`/`except BaseException` blocks (rnn_cli.save).
"""

import sys


def main() -> None:
    try:
        from rnn_cli.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("rnn-cli: interrupted\n")
        sys.exit(130)
    except MemoryError:
        sys.stderr.write(
            "rnn-cli: error: out of memory (the system or a ulimit/cgroup limit refused an allocation); "
            "reduce --hidden-size, --seq-len, --batch or --layers\n"
        )
        sys.exit(2)
