"""The `code` section: copy-pastable PyTorch that builds the same module and runs input of
the same shape, printed as plain lines (highlighted only on a colour terminal)."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from rnn_cli.core.config import TORCH_CLASS, RunConfig, shape_str
from rnn_cli.views.fit import Verbatim


def call(prefix: str, args: list[str], width: int = 78) -> str:
    """`prefix(a, b, c)` on one line, or one argument per line when that is too wide."""
    line = f"{prefix}({', '.join(args)})"
    if len(line) <= width:
        return line
    return f"{prefix}(\n" + "".join(f"    {a},\n" for a in args) + ")"


def _tensor_kwargs(cfg: RunConfig, device: str) -> list[str]:
    """device= and dtype= where they are not torch's defaults."""
    extra = []
    if device != "cpu":
        extra.append(f'device="{device}"')
    if cfg.dtype != "float32":
        extra.append(f"dtype=torch.{cfg.dtype}")
    return extra


def _initial_state(cfg: RunConfig, tensor_kw: str) -> tuple[list[str], str]:
    """The lines drawing h_0 (and c_0) with --h0 random, and the call's arguments after x."""
    if cfg.h0 != "random":
        return [], "x"
    shapes, layouts = cfg.shapes(), cfg.layouts()
    lines = [f"h_0 = torch.randn{shape_str(shapes['h_0'])[:-1]}{tensor_kw})  # {layouts['h_0']}"]
    if not cfg.has_c:
        return lines, "x, h_0"
    lines.append(f"c_0 = torch.randn{shape_str(shapes['c_0'])[:-1]}{tensor_kw})  # {layouts['c_0']}")
    return lines, "x, (h_0, c_0)"


def _packed_run(cfg: RunConfig, args: str, state: str) -> list[str]:
    """Pack by --lengths, run, pad back to L: with the shapes in between as comments."""
    shapes = cfg.shapes()
    batch_first = ["batch_first=True"] if cfg.batch_first else []
    return [
        f"lengths = torch.tensor({list(cfg.lengths)})  # real steps of each sequence",
        call("packed = pack_padded_sequence", ["x", "lengths"] + batch_first + ["enforce_sorted=False"]),
        f"packed_out, {state} = {cfg.cell}({args.replace('x', 'packed', 1)})",
        f"# packed_out.data {shape_str(shapes['packed_data'])}",
        f"# packed_out.batch_sizes {cfg.batch_sizes()}",
        call("output, _ = pad_packed_sequence", ["packed_out"] + batch_first + [f"total_length={cfg.seq_len}"]),
    ]


def pytorch_code(cfg: RunConfig, device: str = "cpu") -> str:
    """Copy-pastable PyTorch that builds the same module and runs input of the same shape."""
    shapes = cfg.shapes()
    kwargs = [f"{k}={v!r}" for k, v in cfg.constructor_kwargs().items()]
    extra = _tensor_kwargs(cfg, device)
    tensor_kw = "".join(", " + e for e in extra)

    lines = ["import torch", "from torch import nn"]
    if cfg.packed:
        lines.append("from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence")
    lines.append("")
    lines.append(call(f"{cfg.cell} = nn.{TORCH_CLASS[cfg.cell]}", kwargs + extra))
    lines.append(f"x = torch.randn{shape_str(shapes['input'])[:-1]}{tensor_kw})  # {cfg.layouts()['input']}")
    state_lines, args = _initial_state(cfg, tensor_kw)
    lines += state_lines
    state = "(h_n, c_n)" if cfg.has_c else "h_n"
    if cfg.packed:
        lines += _packed_run(cfg, args, state)
    else:
        lines.append(f"output, {state} = {cfg.cell}({args})")
    result = f"# output {shape_str(shapes['output'])}, h_n {shape_str(shapes['h_n'])}"
    if cfg.has_c:
        result += f", c_n {shape_str(shapes['c_n'])}"
    lines.append(result)
    return "\n".join(lines)


def code_lines(console: Console, cfg: RunConfig, device: str) -> list:
    """The code as plain lines under a title: no frame, highlighted only on a colour terminal.
    show() prints these with soft_wrap, so long lines stay long and copy as written."""
    code = pytorch_code(cfg, device)
    if console.is_terminal and console.color_system is not None and not console.no_color:
        from rich.syntax import Syntax  # pygments: imported only when it will colour something

        body = Syntax(code, "python", theme="ansi_dark", background_color="default").highlight(code)
        body.rstrip()
    else:
        body = Text(code)
    return [Text("Equivalent PyTorch:", style="bold"), Text(""), Verbatim(body)]
