"""The user's own arrays: --input PATH.npy and --h0/--c0 PATH.npy, read as untrusted files
(rnn_cli.formats.safe_read judges each before it is read; never pickle), checked against the
run's shapes with the mismatch said in the docs' symbols, and returned time-major in the run's
dtype. rnn_cli.inputs puts them into the Sample a run takes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnn_cli.core.config import TORCH_CLASS, RunConfig, shape_str
from rnn_cli.errors import RnnCliError
from rnn_cli.formats import safe_read
from rnn_cli.printable import printable


def _load_npy(path: str | os.PathLike, flag: str) -> np.ndarray:
    p = Path(path)
    if p.suffix.lower() != ".npy":
        raise RnnCliError(f"{flag} {printable(str(p))}: expected a .npy file (np.save(PATH, array))")
    src = safe_read.source(p, flag)
    with safe_read.quiet_libraries():
        a = safe_read.read_npy(src)
    if a.dtype.kind not in "fiu":
        raise src.error(f"holds {a.dtype} values; expected real numbers")
    return a


def fits(a: np.ndarray, dtype: str, what: str) -> np.ndarray:
    """`a` in the run's dtype; values that dtype cannot represent (1e308 in float32) are refused
    in one line rather than turned into inf with numpy's overflow warnings."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if a.dtype.kind == "f" and out.dtype != a.dtype:
        lost = np.isfinite(a) & ~np.isfinite(out)
        if lost.any():
            big = float(np.max(np.abs(a[lost])))
            limit = float(np.finfo(out.dtype).max)
            raise RnnCliError(f"{what} holds {big:.6g}, beyond {dtype}'s range (±{limit:.4g}): "
                              + ("use --dtype float64" if dtype != "float64" else "rescale the input"))
    return out


def load_input(path: str | os.PathLike, *, batch_first: bool = False, unbatched: bool = False,
               input_size: int | None = None, seq_len: int | None = None, batch: int | None = None) -> np.ndarray:
    """--input PATH.npy in the user's layout -> (L, N, H_in) time-major. seq_len / batch are
    checked only when the user gave them (else the array decides)."""
    x = _load_npy(path, "--input")
    if 0 in x.shape:
        raise RnnCliError(f"--input has shape {shape_str(x.shape)}: every dimension must be at least 1")
    s = shape_str(x.shape)
    if unbatched:
        if x.ndim != 2:
            raise RnnCliError(f"--input has shape {s}: with --unbatched it must be (L, H_in)"
                              + ("; drop --unbatched for batched input" if x.ndim == 3 else ""))
        L, H_in = x.shape
        N = None
        x = x[:, None, :]  # (L, 1, H_in)
        reading = f"with --unbatched that is L={L}, H_in={H_in}"
    else:
        if x.ndim != 3:
            hint = "; 2-D input (L, H_in) needs --unbatched" if x.ndim == 2 else ""
            raise RnnCliError(f"--input has shape {s}: expected {'(N, L, H_in)' if batch_first else '(L, N, H_in)'}{hint}")
        if batch_first:
            N, L, H_in = x.shape
            x = x.transpose(1, 0, 2)  # (L, N, H_in)
        else:
            L, N, H_in = x.shape
        reading = f"with --batch-first {'on' if batch_first else 'off'} that is L={L}, N={N}, H_in={H_in}"
    swapped = not unbatched and (batch is None or batch == L) and (seq_len is None or seq_len == N)
    fix = f"; did you mean {'no --batch-first' if batch_first else '--batch-first'}?" if swapped else ""
    if input_size is not None and H_in != input_size:
        raise RnnCliError(f"--input has shape {s}: {reading}, but the module takes input_size={input_size} features per step")
    if batch is not None and N is not None and N != batch:
        raise RnnCliError(f"--input has shape {s}: {reading}, but --batch is {batch}{fix}")
    if seq_len is not None and L != seq_len:
        raise RnnCliError(f"--input has shape {s}: {reading}, but --seq-len is {seq_len}{fix}")
    return np.ascontiguousarray(x)


def load_state(path: str | os.PathLike, name: str, cfg: RunConfig) -> np.ndarray:
    """--h0 / --c0 PATH.npy in the user's layout -> (D*num_layers, N, F); `name` is h_0 or c_0."""
    flag = "--h0" if name == "h_0" else "--c0"
    if name == "c_0" and not cfg.has_c:
        raise RnnCliError(f"--c0 applies to LSTMs only; this module is an nn.{TORCH_CLASS[cfg.cell]}")
    a = _load_npy(path, flag)
    want = cfg.shapes()[name]
    if a.shape != want:
        raise RnnCliError(f"{name} has shape {shape_str(a.shape)}, the module wants {cfg.layouts()[name]} = {shape_str(want)}")
    a = a[:, None, :] if cfg.unbatched else a  # (D*num_layers, N, F)
    return fits(a, cfg.dtype, flag)
