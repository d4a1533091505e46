"""rnn-cli onnx's views: rich renderables for people, a plain dict for --json.

Views compute nothing: everything shown comes from an OnnxReport (rnn_cli.formats.onnx_export).
The tables are views/tables.py's: ASCII when the console is not a terminal, literal text cells,
fitting 80 columns. The --json document is documents.onnx_document.
"""

from __future__ import annotations


from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from rnn_cli.printable import printable
from rnn_cli.core.config import TORCH_CLASS, shape_str
from rnn_cli.views.fit import print_parts
from rnn_cli.views.header import data_line
from rnn_cli.views.tables import add_row, make_table
from rnn_cli.views.wrap import keep

def _shape(shape) -> str:
    return shape_str(shape) if shape else "?"


def _attr_text(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def _compact(counts: list[tuple[str, int]]) -> str:
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in counts) or "none"


def nodes_table(console: Console, report) -> Table:
    """One row per recurrent node: attributes, then each input's shape."""
    table = make_table(console, "Recurrent nodes (one per layer)")
    table.add_column("node", style="bold", no_wrap=True)
    table.add_column("attribute / input", no_wrap=True)
    table.add_column("value / shape")
    for node in report.graph.recurrent:
        label = f"{node.op} {node.index}"
        for key, value in node.attributes.items():
            add_row(table, label, key, _attr_text(value))
            label = ""
        for key, info in node.inputs.items():
            if key in ("X", "P"):
                continue
            add_row(table, label, key, "not given" if info is None else _shape(info.shape))
            label = ""
        if node.after_Y:
            add_row(table, "", "Y ->", " -> ".join(node.after_Y))
    return table


def mapping_table(console: Console, report) -> Table:
    """Which rows of which torch parameter became each gate block of W, R, B."""
    cfg = report.cfg
    table = make_table(console, f"Gate mapping: ONNX {', '.join(_gates(cfg.cell))} vs torch {', '.join(_torch_gates(cfg.cell))}")
    table.add_column("node", style="bold", no_wrap=True)
    table.add_column("ONNX rows", no_wrap=True)
    table.add_column("= torch rows", no_wrap=True)
    table.add_column("gate", no_wrap=True)
    table.add_column("exact", no_wrap=True)
    op = report.graph.recurrent[0].op if report.graph.recurrent else ""
    shown = None
    for r in report.mapping:
        verdict = {True: Text("yes", style="green"), False: Text("NO", style="bold red"), None: Text("not found")}[r.equal]
        gate = r.gate if r.gate == r.torch_gate or not r.gate else f"{r.gate} = torch {r.torch_gate}"
        add_row(
            table,
            f"{op} {r.node}" if r.node != shown else "",
            f"{r.tensor}[{r.direction}] {r.rows[0]}:{r.rows[1]}",
            f"{r.torch_param} {r.torch_rows[0]}:{r.torch_rows[1]}",
            gate or "-",
            verdict,
        )
        shown = r.node
    return table


def _gates(cell: str) -> tuple[str, ...]:
    from rnn_cli.formats.onnx_describe import ONNX_GATES  # numpy-only at import: safe without the extra

    return ONNX_GATES[cell] if cell != "rnn" else ("one block",)


def _torch_gates(cell: str) -> tuple[str, ...]:
    from rnn_cli.formats.onnx_describe import TORCH_GATES

    return TORCH_GATES[cell] if cell != "rnn" else ("one block",)


def io_table(console: Console, report) -> Table:
    """The graph's inputs and outputs against the shapes torch takes and returns."""
    table = make_table(console, "Graph inputs and outputs vs torch")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("ONNX", no_wrap=True)
    table.add_column("torch", no_wrap=True)
    torch_shapes = dict(report.torch_shapes)
    torch_shapes.setdefault("lengths", (report.cfg.N,))
    for kind, infos in (("input", report.graph.inputs), ("output", report.graph.outputs)):
        for info in infos:
            want = torch_shapes.get(info.name)
            add_row(table, printable(info.name), kind, f"{_shape(info.shape)} {info.dtype}", _shape(want) if want else "")
    return table


def _diff(x: float | None) -> str:
    return "shape" if x is None else f"{x:.2e}"


def compare_table(console: Console, report) -> Table:
    run = report.run
    table = make_table(console, "onnxruntime vs torch and the float64 numpy reference")
    table.add_column("tensor", style="bold", no_wrap=True)
    table.add_column("against", no_wrap=True)
    table.add_column("shape", no_wrap=True)
    table.add_column("abs diff", justify="right", no_wrap=True)
    table.add_column("result", no_wrap=True)
    rows = [("torch", c) for c in run.vs_torch] + [("reference", c) for c in run.vs_reference]
    rows += [("reference, ONNX layout", c) for c in run.y_checks]
    for against, c in rows:
        verdict = Text("pass", style="green") if c.ok else Text("FAIL", style="bold red")
        add_row(table, printable(c.name), against, _shape(c.torch_shape), _diff(c.max_abs_diff), verdict)
    return table


def onnx_renderables(console: Console, report) -> list[RenderableType]:
    """Everything `rnn-cli onnx` shows, top to bottom."""
    cfg, exported, graph, run = report.cfg, report.exported, report.graph, report.run
    parts: list[RenderableType] = [
        Text(
            f"rnn-cli onnx: nn.{TORCH_CLASS[cfg.cell]} ({cfg.dtype}) exported with {exported.exporter_used}, "
            f"opset {exported.opset}, run in onnxruntime; {data_line(cfg, report.provenance)}",
            style="bold",
        ),
        Text(f"Exporter: {exported.why}"),
    ]
    if graph.recurrent:
        parts.append(nodes_table(console, report))
        parts.append(Text(f"Other nodes: {_compact(graph.node_counts())}"))
    else:
        parts.append(
            Text(
                f"No {cfg.cell.upper()} node, so no gate mapping: the exporter unrolled the recurrence "
                f"into {_compact(graph.node_counts())}."
            )
        )
    if run.batch_order != list(range(len(run.batch_order))):
        parts.append(
            Text(f"The graph sorts the batch by length before the first node: node batch slot j holds sequence {run.batch_order}[j].")
        )
    if report.mapping:
        parts.append(mapping_table(console, report))
        if not cfg.bias:
            parts.append(Text("bias=False: no B input; ONNX then adds zeros."))
    parts += [io_table(console, report), compare_table(console, report)]
    tol = run.tolerance
    parts.append(Text(f"Tolerance: {keep(f'|got - want| <= {tol.atol:g} + {tol.rtol:g} * |want|')}  ({tol.why})"))
    if report.ok:
        mapped = "; the mapping is exact" if report.mapping else ""
        parts.append(Text(f"OK: onnxruntime matches torch and the numpy reference{mapped}.", style="bold green"))
    else:
        parts.append(Text("MISMATCH: see the FAIL / NO rows above (exit status 1).", style="bold red"))
    return parts


def show_onnx(console: Console, report) -> None:
    print_parts(console, onnx_renderables(console, report))
