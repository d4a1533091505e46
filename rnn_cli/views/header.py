"""The lines at the top of a screen: what ran, on which numbers (seed or files), the shape
symbols (N, L, D, H_in, H_out) and TF32. Used by the run, compare, bench and onnx screens."""

from __future__ import annotations

from rich.text import Text

from rnn_cli.core.config import TORCH_CLASS, RunConfig
from rnn_cli.core.result import RunResult
from rnn_cli.core.sample import Provenance
from rnn_cli.views.cost import parameters_text


def data_line(cfg: RunConfig, provenance: Provenance) -> str:
    """Where the sample's numbers came from: `seed 0`, or `weights model.pt:lstm, input from
    --input, seed 0` (the seed where anything was drawn from it)."""
    parts = [] if provenance.weights == "seed" else [f"weights {provenance.weights}"]
    parts += ["input from --input"] if provenance.input == "file" else []
    parts += ["h_0 from --h0"] if provenance.h_0 == "file" else []
    return ", ".join(parts + ([f"seed {cfg.seed}"] if provenance.drawn or not parts else []))


def symbols_line(cfg: RunConfig) -> str:
    parts = [] if cfg.unbatched else [f"N={cfg.N}"]
    parts += [f"L={cfg.seq_len}", f"D={cfg.D}", f"H_in={cfg.input_size}"]
    if cfg.proj_size:
        parts.append(f"H_cell={cfg.hidden_size}")
    parts += [f"H_out={cfg.H_out}", f"num_layers={cfg.num_layers}"]
    return "  ".join(parts)


def tf32_line(tf32: bool) -> str:
    return "TF32 in cuDNN: " + ("allowed (torch's default; --no-tf32 turns it off)" if tf32 else "off (--no-tf32)")


def header(result: RunResult, command: str) -> Text:
    cfg = result.cfg
    what = "numpy memory cell" if result.implementation == "manual" else f"nn.{TORCH_CLASS[cfg.cell]}"
    # short enough for one line at 60 columns, with the parameter count
    text = Text(f"rnn-cli {command}: {what}, {result.device}, {cfg.dtype}, {data_line(cfg, result.provenance)}", style="bold")
    text.append("; " + parameters_text(result))  # split per layer and direction: --show params
    if result.tf32 is not None:
        text.append("\n" + tf32_line(result.tf32))
    return text
