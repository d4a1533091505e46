"""Reading a checkpoint's tensors: every numeric tensor of the file by its full key, nesting
(state_dict, model, module. ...) removed, half precision widened, without running code from the
file (rnn_cli.formats.safe_read judges every file first; torch only for torch files, weights
only; TorchScript archives read as data).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnn_cli.core import layout
from rnn_cli.errors import RnnCliError
from rnn_cli.formats import safe_read
from rnn_cli.formats.torch_read import read_torch as _read_torch
from rnn_cli.printable import printable

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
FORMATS = {**{s: "torch" for s in TORCH_SUFFIXES}, ".safetensors": "safetensors", ".npz": "npz", ".jit": "torchscript",
           ".onnx": "onnx", ".keras": "keras", ".h5": "keras"}
# Keys a training script nests its weights under, tried in this order.
NESTING_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights")
_LAYERED = layout.LAYERED_KEY


@dataclass
class Loaded:
    path: str
    format: str  # torch, safetensors, npz
    tensors: dict[str, np.ndarray]  # full dotted keys (nesting removed) -> arrays
    nesting: str | None  # e.g. "state_dict", "model/module." ; None: a plain state_dict
    notes: list[str] = field(default_factory=list)  # conversions made while reading
    declared: dict = field(default_factory=dict)  # TorchScript: module prefix -> torchscript.Declared


def load_tensors(path: str | os.PathLike) -> Loaded:
    """Every numeric tensor of the file, by full key, without running code from the file and
    without allocating more than the file justifies (rnn_cli.formats.safe_read judges it first)."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise RnnCliError(f"{printable(str(p))}: unknown checkpoint format {printable(p.suffix)!r}; "
                          f"rnn-cli reads {', '.join(FORMATS)}")
    src = safe_read.source(p)
    notes: list[str] = []
    with safe_read.quiet_libraries():
        try:
            if fmt in ("torch", "torchscript"):
                from rnn_cli.formats import torchscript  # numpy only: the archive is read, never run

                if torchscript.is_archive(src):
                    archive = torchscript.read(src)
                    tensors = {k: _to_float32_if_half(k, v, notes) for k, v in archive.tensors.items()}
                    return Loaded(str(p), "torchscript", tensors, None, notes, archive.declared)
            if fmt == "torchscript":
                raise src.error("is not a TorchScript archive (a zip with data.pkl and code/, as torch.jit.save writes)")
            if fmt == "torch":
                obj = _read_torch(src, notes)
            elif fmt == "safetensors":
                obj = safe_read.read_safetensors(src, notes)
            else:
                obj = safe_read.read_npz(src)
            tensors, nesting = _unnest(obj)
        except MemoryError as e:
            raise safe_read.reading_out_of_memory(src.label, e) from None
        except RecursionError:  # a crafted pickle: dicts nested thousands deep
            raise src.error("nests its contents too deeply to be a checkpoint") from None
    safe_read.check_layer_indices(src.label, list(tensors), _layer_of)
    tensors = {k: _to_float32_if_half(k, v, notes) for k, v in tensors.items()}
    return Loaded(path=str(p), format=fmt, tensors=tensors, nesting=nesting, notes=notes)


def _layer_of(key: str) -> int | None:
    """weight_ih_l3_reverse -> 3; None for keys that name no layer (digits beyond any file: huge)."""
    m = _LAYERED.match(key)
    if m is None:
        return None
    digits = m.group("layer")
    return int(digits) if len(digits) <= 18 else 10**18


def _flatten(obj, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fiub":  # rnn-cli's --save also stores `config` as text: skipped
            out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out)


def _unnest(obj) -> tuple[dict[str, np.ndarray], str | None]:
    """Descend through state_dict / model / ... keys to the weights, then strip a common
    `module.` (DataParallel) prefix. Returns (tensors, nesting path or None)."""
    path: list[str] = []
    while isinstance(obj, dict):
        inner = next((k for k in NESTING_KEYS if isinstance(obj.get(k), dict) and _has_tensors(obj[k])), None)
        if inner is None:
            break
        path.append(inner)
        obj = obj[inner]
    tensors: dict[str, np.ndarray] = {}
    _flatten(obj, "", tensors)
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
        path.append("module.")
    return tensors, ("/".join(path) or None)


def _has_tensors(obj) -> bool:
    if isinstance(obj, np.ndarray):
        return True
    if isinstance(obj, dict):
        return any(_has_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_has_tensors(v) for v in obj)
    return False


def _to_float32_if_half(key: str, a: np.ndarray, notes: list[str]) -> np.ndarray:
    # bfloat16 arrives as numpy's dtype only where ml_dtypes (an onnx dependency) is loaded
    half = "float16" if a.dtype == np.float16 else "bfloat16" if a.dtype.name == "bfloat16" else None
    if half is None:
        return a
    note = f"{half} tensors converted to float32"
    if note not in notes:
        notes.append(note)
    return a.astype(np.float32)
