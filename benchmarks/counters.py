"""What the usual FLOP/MAC counters say about recurrent layers, next to rnn-cli's count.

Runs every peer that imports here (torchinfo, ptflops, thop, fvcore, torchprofile and torch's
own FlopCounterMode, on the CPU and on the meta device) on a fixed set of layers and writes
benchmarks/COUNTERS.md: what each reports as multiply-accumulates, rnn-cli's `macs`
(rnn_cli.core.cost, checked against FlopCounterMode on an unrolled loop in tests/test_cost.py),
and the ratio. A peer that does not import is skipped and listed as such.

The peers are not dependencies of rnn-cli; install them apart, for example:

    python3 -m venv /tmp/venv-peers
    /tmp/venv-peers/bin/pip install torch numpy torchinfo ptflops thop fvcore torchprofile
    /tmp/venv-peers/bin/python benchmarks/counters.py      # from the repository root

Units: torchinfo reports "mult-adds", ptflops and thop MACs, fvcore counts one "flop" per
multiply-add, torchprofile MACs; FlopCounterMode counts 2 FLOPs per multiply-add, so its
total is halved here. rnn-cli's `macs` counts the matrix products only (its `flops` add the
element-wise work), so a ratio of 1.00 means the peer counts exactly the products needed.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rnn_cli.core.config import RunConfig  # noqa: E402  (pure: no numpy, no rich)
from rnn_cli.core.cost import cost  # noqa: E402

L, N, H_IN, H = 7, 6, 16, 32
LENGTHS = (7, 5, 5, 2, 1, 1)


@dataclass
class Case:
    name: str
    cfg: RunConfig  # the same layer for rnn-cli
    make: Callable[[], tuple[nn.Module, tuple]]  # the module and its forward's arguments


def _x(*shape):
    torch.manual_seed(0)
    return torch.randn(*shape)


def _packed():
    x = _x(L, N, H_IN)
    return nn.utils.rnn.pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False)


CASES = [
    Case("LSTM, 2 layers, bidirectional, input (7, 6, 16)",
         RunConfig(cell="lstm", nonlinearity=None, input_size=H_IN, hidden_size=H, num_layers=2, bidirectional=True,
                   seq_len=L, batch=N),
         lambda: (nn.LSTM(H_IN, H, 2, bidirectional=True), (_x(L, N, H_IN),))),
    Case("GRU, packed, lengths 7,5,5,2,1,1",
         RunConfig(cell="gru", nonlinearity=None, input_size=H_IN, hidden_size=H, seq_len=L, batch=N, lengths=LENGTHS),
         lambda: (nn.GRU(H_IN, H), (_packed(),))),
    Case("LSTM, proj_size 8, input (7, 6, 16)",
         RunConfig(cell="lstm", nonlinearity=None, input_size=H_IN, hidden_size=H, proj_size=8, seq_len=L, batch=N),
         lambda: (nn.LSTM(H_IN, H, proj_size=8), (_x(L, N, H_IN),))),
    Case("RNN, unbatched, input (7, 16)",
         RunConfig(cell="rnn", input_size=H_IN, hidden_size=H, seq_len=L, batch=None),
         lambda: (nn.RNN(H_IN, H), (_x(L, H_IN),))),
    Case("LSTM, batch_first, input (6, 7, 16)",
         RunConfig(cell="lstm", nonlinearity=None, input_size=H_IN, hidden_size=H, seq_len=L, batch=N, batch_first=True),
         lambda: (nn.LSTM(H_IN, H, batch_first=True), (_x(N, L, H_IN),))),
]


# ---- one function per peer: (module, args) -> multiply-accumulates it reports -----------------


def _torchinfo(module, args):
    from torchinfo import summary

    return summary(module, input_data=list(args), verbose=0).total_mult_adds


def _ptflops(module, args):
    from ptflops import get_model_complexity_info

    said = io.StringIO()  # ptflops prints its exception and returns None
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        macs, _ = get_model_complexity_info(module, (1,), input_constructor=lambda _: args[0], as_strings=False,
                                            print_per_layer_stat=False, verbose=False, backend="pytorch")
    if macs is None:
        why = [line for line in said.getvalue().splitlines() if line.startswith("<class")]
        raise RuntimeError(why[-1] if why else "returned None")
    return macs


def _thop(module, args):
    from thop import profile

    macs, _ = profile(module, inputs=args, verbose=False)
    return macs


def _fvcore(module, args):
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, args)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis.total()


def _torchprofile(module, args):
    from torchprofile import profile_macs

    return profile_macs(module, args)


def _flop_counter(device):
    def count(module, args):
        from torch.utils.flop_counter import FlopCounterMode

        module = module.to(device)
        args = tuple(a.to(device) for a in args)
        with FlopCounterMode(display=False) as counter:
            module(*args)
        return counter.get_total_flops() / 2  # 2 FLOPs per multiply-add

    return count


PEERS = [  # (name shown, module to import, counting function, what its number is)
    ("torchinfo", "torchinfo", _torchinfo, "total_mult_adds"),
    ("ptflops", "ptflops", _ptflops, "MACs, backend pytorch"),
    ("thop", "thop", _thop, "MACs"),
    ("fvcore", "fvcore", _fvcore, "FlopCountAnalysis.total(), one per multiply-add"),
    ("torchprofile", "torchprofile", _torchprofile, "profile_macs"),
    ("FlopCounterMode cpu", "torch.utils.flop_counter", _flop_counter("cpu"), "FLOPs / 2"),
    ("FlopCounterMode meta", "torch.utils.flop_counter", _flop_counter("meta"), "FLOPs / 2"),
]


def version(module_name: str) -> str:
    from importlib import metadata

    dist = {"torch.utils.flop_counter": "torch"}.get(module_name, module_name)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def measure(fn, case: Case) -> str | float:
    """The peer's number, or 'error: ...' (its first line) when it cannot count the layer."""
    module, args = case.make()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            return float(fn(module, args))
    except Exception as e:  # a peer that cannot take the layer: say what it said
        text = f"{type(e).__name__}: {e}".splitlines()[0]
        return "error: " + (text[:70] + "..." if len(text) > 70 else text)


def cell(value: str | float, truth: int) -> str:
    if isinstance(value, str):
        return value.replace("|", "/")
    ratio = value / truth
    return f"{value:,.0f} ({ratio:.2f}x)"


def main() -> None:
    available, skipped = [], []
    for name, module_name, fn, unit in PEERS:
        try:
            importlib.import_module(module_name)
            available.append((name, module_name, fn, unit))
        except Exception as e:  # not installed, or broken: skipped and said
            skipped.append(f"{name} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    truths = [cost(case.cfg).total.macs for case in CASES]
    rows = [[cell(measure(fn, case), truth) for case, truth in zip(CASES, truths)] for _, _, fn, _ in available]

    out = [
        "### What the usual counters say about the same layers",
        "",
        "Generated by `benchmarks/counters.py` (do not edit by hand). Each cell: the multiply-accumulates the peer",
        "reports and, in brackets, its ratio to rnn-cli's `macs` (the matrix products the layer needs, over the",
        "steps it really runs: `rnn-cli ... --show cost`; checked against torch's FlopCounterMode on an unrolled",
        "cell loop in tests/test_cost.py). 1.00x is right; 0 means the peer does not see the layer.",
        "",
        f"Layers: H_in={H_IN}, H_cell={H}, L={L}, N={N}, seeded input; torch {torch.__version__}, "
        f"Python {platform.python_version()}, CPU.",
        "",
        "| counter (version) | what it reports | " + " | ".join(c.name for c in CASES) + " |",
        "|---|---|" + "---|" * len(CASES),
        "| **rnn-cli** `macs` | matrix products, real steps | " + " | ".join(f"{t:,}" for t in truths) + " |",
    ]
    for (name, module_name, _, unit), row in zip(available, rows):
        out.append(f"| {name} ({version(module_name)}) | {unit} | " + " | ".join(row) + " |")
    out += ["", "rnn-cli's full count for the same layers (`flops` = 2 * macs + element-wise work):", "",
            "| layer | params | macs | flops | kept for BPTT (bytes) |", "|---|---|---|---|---|"]
    for case in CASES:
        t = cost(case.cfg).total
        out.append(f"| {case.name} | {t.params:,} | {t.macs:,} | {t.flops:,} | {t.activation_bytes:,} |")
    out += ["", "Skipped (not importable here): " + ("; ".join(skipped) if skipped else "none") + "."]
    path = Path(__file__).with_name("COUNTERS.md")
    path.write_text("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
