"""Views of `inspect`: rich renderables for people (the JSON: documents.py). Computes nothing:
every number comes from the checkpoint.Inspection it is given."""

from __future__ import annotations

from rich.console import Console, RenderableType
from rich.text import Text

from rnn_cli.formats.checkpoint import Inspection, ModuleReport
from rnn_cli.core.config import shape_str
from rnn_cli.printable import printable
from rnn_cli.views.code import call
from rnn_cli.views.fit import Verbatim
from rnn_cli.views.tables import add_row, is_plain, make_table


def _text(text: str, **kwargs) -> Text:
    """A line that may hold strings from the file (keys, prefixes, its path): control characters escaped."""
    return Text(printable(text), **kwargs)


def _file_lines(report: Inspection) -> list[RenderableType]:
    loaded = report.loaded
    where = f" (under {loaded.nesting})" if loaded.nesting else ""
    lines: list[RenderableType] = [_text(f"{loaded.path}: {loaded.format} file{where}, "
                                        f"{len(report.modules)} recurrent module(s)", style="bold")]
    if loaded.format == "torchscript":
        lines.append(_text("note: a TorchScript archive, read as data: none of its code was run"))
    lines += [_text(f"note: {n}") for n in loaded.notes]
    o = report.other
    if o.count:
        biggest = ", ".join(f"{p} ({n:,})" for p, n in o.largest)
        lines.append(_text(f"other tensors: {o.count:,} ({o.elements:,} elements); largest: {biggest}"))
    return lines


def _fitted_call(line: str, width: int) -> str:
    """`nn.LSTM(a=1, b=2)` on one line where it fits, else one argument per line: still Python
    to paste, and no argument broken by the terminal."""
    head, _, inner = line.partition("(")
    return call(head, inner[:-1].split(", "), width) if line.startswith("nn.") and line.endswith(")") else line


def _module_renderables(console: Console, r: ModuleReport) -> list[RenderableType]:
    m = r.module
    out: list[RenderableType] = [_text(""), _text(f"{m.name}:", style="bold")]
    out += keras_renderables(console, m) if m.source == "keras" else [_text(line) for line in source_lines(m)]
    out += [Verbatim(Text(_fitted_call(printable(r.constructor), console.width))), _text("")]  # escaped, then laid out
    table = make_table(console, "Parameters", caption=f"{m.num_parameters:,} parameters, {m.dtype}")
    table.add_column("name", style="bold")
    table.add_column("shape", no_wrap=True)
    table.add_column("dtype", no_wrap=True)
    for name, shape, dtype in r.parameters:
        add_row(table, printable(name), shape_str(shape), dtype)
    out += [table, _text("")]
    if r.cfg is not None:
        from rnn_cli.views.diagram import flow_diagram

        out += [flow_diagram(r.cfg, is_plain(console), console.width), _text("")]
    if r.shapes:
        shapes = make_table(console, "Shapes")
        shapes.add_column("tensor", style="bold", no_wrap=True)
        shapes.add_column("shape", no_wrap=True)
        shapes.add_column("layout", no_wrap=True)
        for name, shape in r.shapes.items():
            add_row(shapes, name, shape_str(shape), r.layouts[name])
        out.append(shapes)
    for what, why in m.unknowns.items():
        out.append(_text(f"not in the file: {what}: {why}"))
    for p in m.problems:
        out.append(_text(f"problem: {p.message}", style="red"))
    return out


def source_lines(m) -> list[str]:
    """Where a module's description comes from, when it is not a plain state_dict: the
    archive's declared class, or the renamed keys and the torch names they were given."""
    if m.candidate:
        from rnn_cli.core import layout

        cell = layout.CELL_OF.get(m.kind or "")
        gates = f" ({', '.join(layout.gate_names(cell))})" if cell and cell != "rnn" else ""
        lines = [f"candidate by shapes: renamed weights in torch's gate order{gates}:"]
        return lines + [f"  {printable(key)} -> {name}" for name, key in m.source_names.items()]
    if m.source == "onnx":
        return onnx_lines(m)
    if m.source == "torchscript":
        said = ", ".join(f"{k}={v!r}" for k, v in m.declared.items())
        return [f"TorchScript: the archive states {said}" if said
                else "TorchScript: the archive states nothing beyond the shapes"]
    return []


def onnx_lines(m) -> list[str]:
    """An ONNX module: its node and what it is in torch's terms, why no nn module computes it,
    each torch parameter's rows in W/R/B, and one line per graph input/output its states use."""
    op = (m.kind or "").removesuffix("Cell")
    path = m.path or m.name  # a reader that found no graph path: the module's name
    what = (f"one step: an {m.kind}({m.input_size}, {m.hidden_size})-equivalent layer" if m.is_cell
            else f"{m.num_layers} nodes stacked through the exporter's Transpose/Reshape" if m.num_layers > 1 else "")
    named = f" (node name {printable(m.node)!r})" if m.node and not path.endswith(m.node.lstrip("/")) else ""
    said = ", ".join(f"{k}={printable(str(v))}" for k, v in m.declared.get("attributes", {}).items())
    lines = [f"ONNX {op} node {printable(path)}{named}" + (f" ({said})" if said else "") + (f": {what}" if what else "")]
    lines += [f"not an nn module ({r['code']}): {printable(r['detail'])}; the parameters below are the nearest nn.{op}'s"
              for r in m.not_expressible]
    lines += [f"  {name} <- {printable(text)}" for name, text in m.source_names.items()]
    step = f"{m.kind} {m.input_size}->{m.hidden_size}"
    for kind, key in (("input", "from"), ("output", "to")):
        states = [s for s in m.states if key in s]
        for value in dict.fromkeys(s["value"] for s in states):
            mine = [s for s in states if s["value"] == value]
            layer = (lambda s: f" (layer {s['layer']})" if "layer" in s else "")
            if value is None:
                lines += [f"{s['torch']}{layer(s)} of {op} {printable(path)}: " + (
                          f"{s['role']} is fixed in the file, not an input: {s['constant']}" if s.get("constant")
                          else f"{s['role']} not traced to a graph {kind}") for s in mine]
                continue
            parts = [f"{printable(s[key])} -> {s['torch']}{layer(s)}" if key == "from" else
                     f"{s['torch']}{layer(s)} -> {printable(s[key])}" for s in mine]
            parts[0] += f" of {op} {printable(path)} ({step})"
            lines.append(f"graph {kind} {printable(value)} {s_shape(mine[0])}: " + ", ".join(parts))
    return lines


def s_shape(state: dict) -> str:
    return state.get("shape") or "(shape not declared)"
# Keras' defaults for the settings a Keras recurrent layer states (keras.layers.LSTM, GRU,
# SimpleRNN, Bidirectional); inspect's screen names the others, its JSON all.
KERAS_DEFAULTS = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True, "reset_after": True,
                  "return_sequences": False, "return_state": False, "go_backwards": False, "stateful": False,
                  "unroll": False, "merge_mode": "concat"}


def keras_renderables(console: Console, m) -> list[RenderableType]:
    """A Keras layer: the settings its config states beyond Keras' defaults, the gate blocks'
    move to torch's order, which Keras array each torch parameter comes from (inspect --json:
    each block's columns), and why no nn module computes it where none does."""
    from rnn_cli.core import layout

    said = [f"{k}={v!r}" for k, v in m.declared.items()
            if k == "units" or (k not in ("batch_first", "layer", "nonlinearity") and KERAS_DEFAULTS.get(k, v) != v)]
    lines = [f"Keras {m.declared.get('layer', '?')}: {', '.join(said)}; the rest default" if said
             else f"Keras {m.declared.get('layer', '?')}: weights only, read by their shapes"]
    cell = layout.CELL_OF.get(m.kind or "")
    if cell and cell != "rnn":
        H, order = m.hidden_size, layout.order_from_torch(cell, "keras")
        columns = ", ".join(f"{order.index(t) * H}:{(order.index(t) + 1) * H}" for t in range(len(order)))
        letters = layout.gate_names(cell, "keras")
        lines.append(f"  torch's {', '.join(layout.gate_names(cell))} = Keras' "
                     f"{', '.join(letters[order.index(t)] for t in range(len(order)))} = columns {columns}")
    lines += [f"  {name} <- {_keras_array(src, m.prefix)}" for name, src in m.source_names.items()]
    out: list[RenderableType] = [_text(line) for line in lines]
    return out + [_text(f"not an nn module: {r['detail']}", style="red") for r in m.not_expressible]


def _keras_array(src: str, prefix: str) -> str:
    """`bidirectional/forward_lstm/kernel[:, 0:8].T (i), ...` -> `forward_lstm/kernel.T`;
    a GRU's bias row stays (`bias[1]`)."""
    if "[" not in src:
        return src.removeprefix(prefix + "/")
    head, _, rest = src.partition("[")
    row = f"[{rest[0]}]" if rest[:1].isdigit() and rest[1:3] == ", " else ""
    return head.removeprefix(prefix + "/") + row + (".T" if ".T" in src else "")


def inspect_renderables(console: Console, report: Inspection) -> list[RenderableType]:
    """Per module: the constructor line, the parameter table, the shape-flow diagram (RNN/LSTM/GRU
    without problems), the shapes, what a state_dict cannot tell, the problems."""
    out = _file_lines(report)
    for r in report.modules:
        out += _module_renderables(console, r)
    return out


def differences_renderables(console: Console, a, b, differences: list[str]) -> list[RenderableType]:
    """--against: one line per difference, as load_state_dict would fail on it, with the fix."""
    out: list[RenderableType] = [_text(""), _text(f"A = {a}, B = {b}", style="bold")]
    if not differences:
        return out + [_text("The recurrent modules of A and B are built alike: load_state_dict would accept either.", style="green")]
    out.append(_text(f"{len(differences)} difference(s) that load_state_dict would fail on:", style="bold red"))
    return out + [_text(f"- {d}") for d in differences]
