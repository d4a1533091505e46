"""torch.nn.RNN / LSTM / GRU built from a RunConfig, loaded with the seeded sample, run.

The only module that imports torch at top level; cli.py imports it lazily, in the
commands that need it.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from rnn_cli.core import layout
from rnn_cli.core.config import TORCH_CLASS, RunConfig
from rnn_cli.errors import RnnCliError
from rnn_cli.core.result import RunResult
from rnn_cli.core.sample import Sample, draw, from_user_layout, state_to_user_layout, to_user_layout

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(asked: str) -> torch.device:
    """cpu / cuda / cuda:N / auto -> a device that exists here, or a one-line RnnCliError."""
    if asked == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if asked == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RnnCliError(
            f"--device {asked}: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto"
        )
    device = torch.device(asked)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise RnnCliError(f"--device {asked}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return str(device)


@contextmanager
def cudnn_tf32(allow: bool) -> Iterator[None]:
    """Allow or forbid TF32 in cuDNN's float32 RNN kernels for the block, then restore."""
    rnn = getattr(torch.backends.cudnn, "rnn", None)
    if rnn is not None and hasattr(rnn, "fp32_precision"):  # torch >= 2.9
        old = rnn.fp32_precision
        rnn.fp32_precision = "tf32" if allow else "ieee"
        try:
            yield
        finally:
            rnn.fp32_precision = old
    else:  # pragma: no cover - older torch
        old_flag = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = allow
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32 = old_flag


def build_module(cfg: RunConfig, **overrides) -> nn.Module:
    """nn.RNN / nn.LSTM / nn.GRU with exactly the constructor arguments the user would write
    (cfg.constructor_kwargs()), changed by `overrides` (the single-layer reruns)."""
    kwargs = {**cfg.constructor_kwargs(), **overrides}
    return getattr(nn, TORCH_CLASS[cfg.cell])(**kwargs, dtype=TORCH_DTYPES[cfg.dtype])


@contextmanager
def quiet_onednn() -> Iterator[None]:
    """torch's CPU path warns on every LSTM with proj_size; it is no concern of the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LSTM with projections is not supported with oneDNN")
        yield


def load_params(module: nn.Module, params: dict[str, np.ndarray]) -> None:
    """Copy the sample's parameters into the module, asserting names and shapes first."""
    own = dict(module.named_parameters())
    with torch.no_grad():
        for name, p in own.items():
            value = params[name]
            assert tuple(p.shape) == value.shape, f"{name}: expected {tuple(p.shape)}, got {value.shape}"
            p.copy_(torch.from_numpy(value))


def forward(cfg: RunConfig, module: nn.Module, x: torch.Tensor, hx):
    """module(x, hx), packing the padded input first when cfg.lengths is set."""
    if not cfg.packed:
        output, state = module(x, hx)
        return output, state, None
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lengths = torch.tensor(cfg.lengths, dtype=torch.int64)  # stays on the CPU, as torch requires
    packed = pack_padded_sequence(x, lengths, batch_first=cfg.batch_first, enforce_sorted=False)
    packed_out, state = module(packed, hx)
    output, _ = pad_packed_sequence(packed_out, batch_first=cfg.batch_first, total_length=cfg.seq_len)
    return output, state, packed_out


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def prepare(cfg: RunConfig, sample: Sample, device: torch.device):
    """Module and inputs on `device`, in the user's layout: (module, x, hx)."""
    module = build_module(cfg)
    load_params(module, sample.params)
    module.to(device)
    module.eval()
    x = torch.from_numpy(to_user_layout(cfg, sample.x)).to(device)
    h_0 = torch.from_numpy(state_to_user_layout(cfg, sample.h_0)).to(device)
    if sample.c_0 is None:
        return module, x, h_0
    c_0 = torch.from_numpy(state_to_user_layout(cfg, sample.c_0)).to(device)
    return module, x, (h_0, c_0)


def lower_layer_outputs(cfg: RunConfig, sample: Sample, device: torch.device, x: torch.Tensor, hx) -> list:
    """Outputs of layers 0..num_layers-2, each (L, N, D*H_out) numpy, time-major.

    torch returns only the last layer's output, so layer k is rebuilt as a one-layer module
    with layer k's weights (renamed l{k} -> l0) and fed layer k-1's output: one pass in all.
    """
    outputs = []
    layer_in = x  # user layout, padded
    for k in range(cfg.num_layers - 1):
        one = build_module(cfg, num_layers=1, input_size=cfg.layer_input_size(k))
        own = {layout.with_layer(n, 0): v for n, v in sample.params.items() if layout.parse_name(n).layer == k}
        load_params(one, own)
        one.to(device).eval()
        rows = slice(k * cfg.D, (k + 1) * cfg.D)  # this layer's h_0 (and c_0) slots
        one_hx = tuple(h[rows] for h in hx) if isinstance(hx, tuple) else hx[rows]
        layer_in, _, _ = forward(cfg, one, layer_in, one_hx)
        outputs.append(from_user_layout(cfg, to_numpy(layer_in)))
    return outputs


def run(cfg: RunConfig, sample: Sample | None = None, keep_layers: bool = True, tf32: bool = True) -> RunResult:
    """Run the torch module on cfg.device in inference mode and collect a RunResult.

    With keep_layers, also runs the lower layers one by one as single-layer modules with
    the same weights (see lower_layer_outputs), so the lower layers' slices of h_n can be
    checked against real outputs.
    """
    device = resolve_device(cfg.device)
    sample = sample if sample is not None else draw(cfg)
    module, x, hx = prepare(cfg, sample, device)
    with cudnn_tf32(tf32), torch.inference_mode(), quiet_onednn():
        output, state, packed = forward(cfg, module, x, hx)
        layer_outputs = lower_layer_outputs(cfg, sample, device, x, hx) if keep_layers else []
    h_n, c_n = (state if isinstance(state, tuple) else (state, None))
    tensors = {"input": to_numpy(x)}
    if isinstance(hx, tuple):
        tensors["h_0"], tensors["c_0"] = to_numpy(hx[0]), to_numpy(hx[1])
    else:
        tensors["h_0"] = to_numpy(hx)
    tensors["output"] = to_numpy(output)
    tensors["h_n"] = to_numpy(h_n)
    if c_n is not None:
        tensors["c_n"] = to_numpy(c_n)
    if packed is not None:
        tensors["batch_sizes"] = to_numpy(packed.batch_sizes).astype(np.int64)
    on_cuda = device.type == "cuda"
    return RunResult(
        cfg=cfg,
        implementation="torch",
        device=device_name(device),
        tensors=tensors,
        params=sample.params,
        provenance=sample.provenance,
        layer_outputs=layer_outputs,
        packed_data_shape=tuple(packed.data.shape) if packed is not None else None,
        tf32=tf32 if on_cuda and cfg.dtype == "float32" else None,
    )
