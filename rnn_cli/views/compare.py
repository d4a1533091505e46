"""compare's screen: a header, the table of torch against the float64 reference, the verdict,
then any --show section of the torch run. Computes nothing: the checks come from
rnn_cli.core.compare."""

from __future__ import annotations

import re

from rich.console import Console
from rich.text import Text

from rnn_cli.core.config import TORCH_CLASS, View, shape_str
from rnn_cli.views.cost import parameters_text
from rnn_cli.views.fit import print_parts
from rnn_cli.views.header import data_line, symbols_line, tf32_line
from rnn_cli.views.run import more_line, sections
from rnn_cli.views.tables import add_row, lift_caption, make_table
from rnn_cli.views.wrap import keep


def compare_rule_caption() -> str:
    return (
        "margin = max(|torch - ref| - (atol + rtol*|ref|)) over the tensor: <= 0 passes, > 0 fails "
        "(batch_sizes: exact, atol = rtol = 0). Relative differences: --json."
    )


def _nonfinite(c) -> str:
    """NaN/Inf said plainly: where both sides have it, they agree; where one side has it, they do not."""
    out = ""
    if c.nonfinite_agree:
        out += f"  {c.nonfinite_agree:,} NaN/Inf on both sides at the same places: agree"
    if c.nonfinite_mismatch:
        out += f"  {c.nonfinite_mismatch:,} NaN/Inf on one side only: mismatch"
    return out


def _margin(c) -> str:
    return "" if c.margin is None else f"{c.margin:+.2e}"


def brief_lines(checks) -> list[str]:
    """--brief: one line per tensor, its shape, pass/FAIL and margin."""
    w = max(len(c.name) for c in checks)
    ws = max(len(shape_str(c.torch_shape)) for c in checks)
    lines = []
    for c in checks:
        margin = "shape" if c.margin is None and c.max_abs_diff is None else f"margin {_margin(c)}"
        lines.append(f"{c.name:<{w}} {shape_str(c.torch_shape):<{ws}}  {'pass' if c.ok else 'FAIL'}  {margin}{_nonfinite(c)}")
    return lines


def checks_parts(console: Console, checks) -> list:
    """compare's table of TensorChecks (its caption lifted under it), then a line per tensor
    with NaN/Inf."""
    table = make_table(console, caption=compare_rule_caption())
    table.add_column("tensor", style="bold", no_wrap=True)
    table.add_column("shape", no_wrap=True)  # one shape when both sides agree
    table.add_column("max abs diff", justify="right", no_wrap=True)
    table.add_column("margin", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    for c in checks:
        verdict = Text("pass", style="green") if c.ok else Text("FAIL", style="bold red")
        shapes = shape_str(c.torch_shape)
        if c.torch_shape != c.reference_shape:
            shapes += " vs " + shape_str(c.reference_shape)
        add_row(
            table,
            c.name,
            shapes,
            "shape" if c.max_abs_diff is None else f"{c.max_abs_diff:.2e}",
            _margin(c),
            verdict,
        )
    return lift_caption(table) + [Text(f"{c.name}:{_nonfinite(c)}") for c in checks if c.nonfinite_agree or c.nonfinite_mismatch]


def grad_tolerance_lines(checks, tol) -> list[Text]:
    """Gradients held to their own tolerance (compare.grad_tolerance): one line per distinct
    tolerance, naming the gradients it applies to."""
    groups: dict = {}
    for c in checks:
        if c.name.startswith("grad_") and c.tolerance is not None and c.tolerance != tol:
            groups.setdefault(c.tolerance, []).append(c.name)
    lines = []
    for t, names in groups.items():
        params = [n for n in names if n[5:] not in ("input", "h_0", "c_0")]
        shown = (["every parameter"] if params else []) + [n for n in names if n not in params]
        scale = re.search(r"sqrt\((?:[^()]|\([^()]*\))*\)", t.why)  # the terms (compare.grad_tolerance), where not overridden
        lines.append(Text(f"  {', '.join(shown)}: {t.atol:.3g} + {t.rtol:.3g} * |ref|" + (f"  (x {scale[0]})" if scale else "")))
    if lines:
        lines.insert(0, Text("Gradients sum many rounded terms: that tolerance x sqrt(terms)"))
    return lines


def _head(cmp) -> list:
    """What ran against what, the shape symbols, TF32 and the tolerances."""
    got, tol = cmp.torch, cmp.tolerance
    cfg = got.cfg
    parts: list = [
        Text(
            f"rnn-cli compare: nn.{TORCH_CLASS[cfg.cell]} ({got.device}, {cfg.dtype}) "
            f"vs numpy reference (float64), {data_line(cfg, got.provenance)}",
            style="bold",
        ),
        Text(symbols_line(cfg) + "  " + parameters_text(got)),
    ]
    if got.tf32 is not None:
        parts.append(Text(tf32_line(got.tf32)))
    parts.append(Text(f"Tolerance: {keep(f'|torch - ref| <= {tol.atol:g} + {tol.rtol:g} * |ref|')}  ({tol.why})"))
    return parts + grad_tolerance_lines(cmp.checks, tol)


def show_compare(console: Console, cmp, view: View) -> None:
    """compare's human view: a header, the comparison table and the verdict (then any --show section)."""
    if view.brief:
        for line in brief_lines(cmp.checks):
            console.print(Text(line), soft_wrap=True)
        return
    parts = _head(cmp) + [Text("")] + checks_parts(console, cmp.checks)
    if cmp.ok:
        parts.append(Text("OK: torch matches the numpy reference within tolerance.", style="bold green"))
    else:
        parts.append(Text("MISMATCH: torch and the numpy reference disagree (exit status 1).", style="bold red"))
    parts += sections(console, cmp.torch, view)
    more = more_line(view, console.width, cmp.torch)
    if more is not None:
        parts.append(more)
    print_parts(console, parts)
