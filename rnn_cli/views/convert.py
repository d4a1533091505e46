"""The view of `convert`: rich renderables for people (the JSON: documents.convert_document).
Computes nothing: every number comes from the formats.convert.Conversion it is given."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.text import Text

from rnn_cli.core.config import shape_str
from rnn_cli.formats import convert
from rnn_cli.printable import printable
from rnn_cli.views.fit import keep
from rnn_cli.views.inspect import _fitted_call, source_lines
from rnn_cli.views.compare import checks_parts
from rnn_cli.views.fit import Verbatim, print_parts
from rnn_cli.views.tables import add_row, make_table


def _text(text: str, **kwargs) -> Text:
    """A line that may hold strings from the file (its path, keys, prefixes): escaped."""
    return Text(printable(text), **kwargs)


def mapping_table(console: Console, conv: convert.Conversion):
    """One row per key of the state_dict: torch's name <- the file's own name, and its shape."""
    table = make_table(console, "Key mapping", caption=f"{len(conv.state_dict)} tensors, "
                       f"{sum(a.size for a in conv.state_dict.values()):,} parameters, {convert.run_dtype(conv.module)}")
    table.add_column("torch name", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("file's name")
    table.add_column("shape", no_wrap=True)
    for name, a in conv.state_dict.items():
        add_row(table, name, "<-", printable(conv.mapping[name]), shape_str(a.shape))
    return table


def proof_lines(conv: convert.Conversion) -> list[RenderableType]:
    p, tol = conv.proof, conv.tolerance
    return [
        _text(f"Proof: one seeded input (seed {p.seed}, N={p.batch}, L={p.seq_len}, h_0 {p.h0}) through", style="bold"),
        _text(f"  ref:   the source, {conv.runtime}"),
        _text(f"  torch: {conv.converted}"),
        Text(f"Tolerance: {keep(f'|torch - ref| <= {tol.atol:g} + {tol.rtol:g} * |ref|')}  ({tol.why})"),
    ]


def _verdict(conv: convert.Conversion) -> list[RenderableType]:
    if not conv.expressible:
        return [_text(f"NOT CONVERTED: {convert.not_expressible_line(conv)} (exit status 1; nothing written)",
                      style="bold red")]
    if not conv.ok:
        return [_text("MISMATCH: the converted module does not compute what the source computes "
                      "(exit status 1; nothing written).", style="bold red")]
    how = convert.WRITTEN_AS[conv.dst_suffix]
    out: list[RenderableType] = [
        _text("OK: the converted module computes what the source computes, within tolerance.", style="bold green"),
        _text(f"Written: {conv.dst} ({how}, {len(conv.data):,} bytes)"),
    ]
    return out + [Verbatim(_text(f"  {line}")) for line in convert.usage_lines(conv)]


def show_convert(console: Console, conv: convert.Conversion) -> None:
    """The source and its module, the key mapping, the proof and its table, the verdict."""
    m = conv.module
    where = f":{m.prefix}" if m.prefix else ""
    parts: list[RenderableType] = [_text(f"rnn-cli convert: {conv.path}{where} ({conv.format}) -> {conv.dst}", style="bold")]
    parts += [_text(f"note: {n}") for n in conv.notes]
    parts += [_text(line.rstrip(":")) for line in source_lines(m)[:1]]  # renamed keys: the mapping table says them
    nearest = "" if conv.expressible else "nearest nn module: "
    parts += [Verbatim(Text(nearest + _fitted_call(printable(conv.constructor), console.width))), _text("")]
    parts += [mapping_table(console, conv), _text("")]
    parts += proof_lines(conv) + [_text("")] + checks_parts(console, conv.checks) + _verdict(conv)
    print_parts(console, parts)
