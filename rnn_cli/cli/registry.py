"""The typer app and how a command joins it: `command` registers fn(flags) from its flags
class (rnn_cli.cli.options), -h drawn by option group, and every expected failure turned into
one stderr line and an exit code (RnnCliError from the core, usage errors from the click that
typer vendors: exit 2; compare's mismatch is exit 1). The commands themselves are in
rnn_cli.cli.commands; rnn_cli.cli.app puts them together.
"""

import inspect
import re
import sys
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import types as typer_types

from rnn_cli import __version__
from rnn_cli.errors import RnnCliError
from rnn_cli.printable import printable
from rnn_cli.cli.help_format import WholeWordsContext, command_rows, example_lines

PROG = "rnn-cli"


def note(message: str) -> None:
    """One line on stderr that is not an error (the run goes on)."""
    sys.stderr.write(f"{PROG}: {printable(message)}\n")
    sys.stderr.flush()


def _error_line(message: str) -> None:
    text = printable(" ".join(str(message).split()))  # always one line, no escape sequences from files
    sys.stderr.write(f"{PROG}: error: {text}\n")
    sys.stderr.flush()


# click's words for a value it cannot parse, said plainly: `'abc' is not an integer`.
_CLICK_WORDING = {
    " is not a valid int.": " is not an integer",
    " is not a valid integer.": " is not an integer",
    " is not a valid float.": " is not a number",
}


def _usage_message(e: Exception) -> str:
    """click's usage message: `Invalid value for '--hidden-size': 'abc' is not an integer`."""
    message = e.format_message()  # type: ignore[attr-defined]
    for theirs, ours in _CLICK_WORDING.items():
        if message.endswith(theirs):
            return message[: -len(theirs)] + ours
    return message


ASCII_INT = re.compile(r"[+-]?[0-9]+")


def _ascii_int(value: Any, param: Any = None, ctx: Any = None) -> Any:
    """click's int, ASCII digits only: Python's int() also takes '５', '٨', '1_6' and ' 8 ',
    which no user means as a number on a command line."""
    if isinstance(value, str) and not ASCII_INT.fullmatch(value):
        typer_types.INT.fail(f"{value!r} is not a valid integer.", param, ctx)
    return _click_int(value, param, ctx)


_click_int = typer_types.INT.convert
typer_types.INT.convert = _ascii_int  # every int option of every command (typer maps int to this one instance)


def out_of_memory(e: BaseException) -> str:
    detail = str(e).splitlines()[-1].strip() if str(e).strip() else ""
    return f"out of memory{': ' + detail if detail else ''}; reduce --hidden-size, --seq-len, --batch or --layers"


class _Interrupted(BaseException):
    """Ctrl-C carried past typer, which turns KeyboardInterrupt into a silent exit 130."""


class OneLineErrorGroup(TyperGroup):
    """Runs the app and turns every expected failure into one stderr line and an exit code.
    KeyboardInterrupt and MemoryError go on to rnn_cli.cli.entry, which reports them at any moment.
    Its -h lists each command with its whole one-line description (click cuts it to `...`)."""

    context_class = WholeWordsContext

    def format_commands(self, ctx, formatter) -> None:
        rows = command_rows(self, ctx)
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any):
        try:
            rv = super().main(
                args=args, prog_name=prog_name or PROG, complete_var=complete_var, standalone_mode=False, **extra
            )
            if rv == 130:  # typer's silent Exit(130) for a Ctrl-C outside invoke (while it parses the flags)
                raise KeyboardInterrupt  # no command returns 130: rnn_cli.cli.entry prints the one line
            code = rv if isinstance(rv, int) else 0
        except RnnCliError as e:
            _error_line(str(e))
            code = 2
        except typer.TyperException as e:  # click's usage errors (typer vendors click)
            ctx = getattr(e, "ctx", None)
            if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
                sys.stdout.write(ctx.get_help() + "\n")
                code = 0
            else:
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                _error_line(_usage_message(e) + hint)
                code = e.exit_code
        except MemoryError as e:  # past the guard's estimate, or under a limit it could not see
            _error_line(out_of_memory(e))
            code = 2
        except RuntimeError as e:  # torch's allocators say it this way
            if "can't allocate memory" not in str(e) and type(e).__name__ != "OutOfMemoryError":
                raise
            _error_line(out_of_memory(e))
            code = 2
        except typer.Abort:
            _error_line("aborted")
            code = 130
        except _Interrupted:  # Ctrl-C: rnn_cli.cli.entry prints the one line and exits 130
            raise KeyboardInterrupt from None
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as a Unix filter does.
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the flush at exit
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=OneLineErrorGroup,
    name=PROG,
    help="See and check what recurrent layers do: shapes, states and values, numpy vs torch.",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion; typer imports its shell code only then
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports rich.markdown, rich.syntax (pygments) and
    # rich.traceback, ~140 ms that would double --help's start-up.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"{PROG} {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """See and check what recurrent layers do: shapes, states and values, numpy vs torch."""



class GroupedHelpCommand(TyperCommand):
    """-h in plain click help (start-up stays low): one section per option group (each option's
    rich_help_panel), then the command's examples as written."""

    context_class = WholeWordsContext
    examples: tuple[str, ...] = ()
    help_order: list[str] = []  # the flags' fields, group by group in the order the command lists them

    def format_options(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list] = {}
        order = {name: i for i, name in enumerate(self.help_order)}
        for param in sorted(self.get_params(ctx), key=lambda p: order.get(p.name, len(order))):
            record = param.get_help_record(ctx)
            if record is not None:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Other", []).append(record)
        for title, records in panels.items():
            with formatter.section(title):
                formatter.write_dl(records)

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        if self.examples:
            formatter.write_paragraph()
            formatter.write("Examples:\n")
            for line in example_lines(self.examples, formatter.width, indent="  "):
                formatter.write(line + "\n")


F = TypeVar("F")


def command(name: str, flags: type[F]) -> Callable:
    """Register fn(flags: F) as the command `name`. Its options are F's fields: typer reads them
    from the signature of F's constructor, which the dataclass wrote from the fields; its help
    is F's docstring, and -h ends with F.examples."""

    def decorator(fn: Callable[[F], Optional[int]]) -> Callable[[F], Optional[int]]:
        def callback(**values: Any) -> None:
            code = fn(flags(**values))
            if code:
                raise typer.Exit(code)

        callback.__signature__ = inspect.signature(flags)  # type: ignore[attr-defined]
        callback.__name__ = name
        # The groups' fields, group by group as the class lists them (the dataclass orders
        # them from the last base to the first). A field declared by two groups would leave
        # one of them silently unused: refused here, at import.
        help_order = [n for cls in flags.__mro__ for n in inspect.get_annotations(cls) if n != "examples"]
        shared = sorted({n for n in help_order if help_order.count(n) > 1})
        assert not shared, f"{flags.__name__}: {shared} declared by two of its groups"
        examples = getattr(flags, "examples", ())
        cls = type(f"{name.title()}Command", (GroupedHelpCommand,), {"examples": examples, "help_order": help_order})
        app.command(name, help=flags.__doc__, cls=cls)(callback)
        return fn

    return decorator
