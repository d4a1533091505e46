"""What a run produced, and where each slice of h_n (and c_n) comes from, checked on it.

Pure numpy: shared by the manual and torch paths. The checks run once, when the result is
made; the views only draw them. The tolerance table lives here too: compare and the h_n
checks use the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Sample, from_user_layout, state_from_user_layout, state_to_user_layout, to_user_layout


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    why: str  # where each part came from: the default's reason, or --atol / --rtol


EXACT = Tolerance(0.0, 0.0, "integers: exact")  # batch_sizes counts sequences


def default_tolerance(dtype: str, on_cuda: bool, tf32: bool | None) -> Tolerance:
    """Defaults sized from what each backend is measured to reach against float64, with
    headroom for larger sizes: CPU float32 ~1e-6; on an H100, cuDNN float32 up to 1.1e-5
    without TF32 and 8.2e-4 with it (benchmarks/gpu-h100/cuda-compare.md); float64 ~1e-15."""
    if dtype == "float64":
        return Tolerance(1e-10, 1e-10, "float64")
    if not on_cuda:
        return Tolerance(1e-5, 1e-5, "float32, CPU")
    if tf32:
        return Tolerance(5e-3, 5e-3, "float32, cuDNN with TF32")
    return Tolerance(1e-4, 1e-4, "float32, cuDNN without TF32")


@dataclass(eq=False)  # holds arrays: == on them has no single truth value
class RunResult:
    cfg: RunConfig
    implementation: str  # "manual" or "torch"
    device: str  # the device actually used
    tensors: dict[str, np.ndarray]  # input, h_0, [c_0], output, h_n, [c_n], [batch_sizes]; user layout
    params: dict[str, np.ndarray]  # torch's names, torch's order
    layer_outputs: list[np.ndarray] = field(default_factory=list)  # layers 0..num_layers-2, (L, N, D*H_out)
    packed_data_shape: tuple[int, ...] | None = None  # PackedSequence.data of the output
    tf32: bool | None = None  # cuDNN TF32 allowed (CUDA float32 only)
    # Filled in by rnn_cli.core.runs when the flags ask for them:
    recipes: list | None = None  # recipes.RecipeRow: the final-state recipes, evaluated
    padding_effect: list | None = None  # recipes.PaddingRow: --no-pack against the packed run
    gradients: Any = None  # backward.Gradients of --grad
    upstream: Any = None  # backward.Upstream: the loss's upstream gradients
    sources: list["Source"] = field(init=False)  # where h_n / c_n come from, checked once

    def __post_init__(self) -> None:
        self.sources = h_n_sources(self)

    @classmethod
    def from_time_major(
        cls,
        cfg: RunConfig,
        implementation: str,
        device: str,
        sample: Sample,
        output: np.ndarray,
        h_n: np.ndarray,
        c_n: np.ndarray | None,
        layer_outputs: list[np.ndarray],
        tf32: bool | None = None,
    ) -> "RunResult":
        """A result from the core's time-major arrays (L, N, .) and (D*num_layers, N, .)."""
        tensors = {"input": to_user_layout(cfg, sample.x), "h_0": state_to_user_layout(cfg, sample.h_0)}
        if sample.c_0 is not None:
            tensors["c_0"] = state_to_user_layout(cfg, sample.c_0)
        tensors["output"] = to_user_layout(cfg, output)
        tensors["h_n"] = state_to_user_layout(cfg, h_n)
        if c_n is not None:
            tensors["c_n"] = state_to_user_layout(cfg, c_n)
        packed = None
        if cfg.packed:
            tensors["batch_sizes"] = np.asarray(cfg.batch_sizes(), dtype=np.int64)
            packed = (sum(cfg.lengths), cfg.D * cfg.H_out)
        return cls(cfg, implementation, device, tensors, sample.params, layer_outputs, packed, tf32)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        out = {name: tuple(a.shape) for name, a in self.tensors.items()}
        if self.packed_data_shape is not None:
            out["packed_data"] = tuple(self.packed_data_shape)
        return out

    def time_major(self, name: str) -> np.ndarray:
        """A sequence tensor as (L, N, F), whatever the user's layout."""
        return from_user_layout(self.cfg, self.tensors[name])

    def state(self, name: str) -> np.ndarray:
        """A state tensor as (D*num_layers, N, F)."""
        return state_from_user_layout(self.cfg, self.tensors[name])


@dataclass(frozen=True)
class Source:
    """h_n[index] (or c_n[index]) and the slice it equals."""

    state: str  # "h_n" or "c_n"
    index: int  # layer * D + direction
    layer: int
    direction: str  # "forward" or "backward"
    expression: str  # the slice, in the user's layout
    steps: tuple[int, ...]  # the step t it was taken at, per sequence
    returned: bool  # False when the slice lives in a tensor torch does not return
    max_abs_diff: float | None  # None when there is nothing to check against
    ok: bool | None


def _index_expr(cfg: RunConfig, tensor: str, t: str, n: str, feats: str) -> str:
    if cfg.unbatched:
        return f"{tensor}[{t}, {feats}]"
    if cfg.batch_first:
        return f"{tensor}[{n}, {t}, {feats}]"
    return f"{tensor}[{t}, {n}, {feats}]"


def h_n_sources(result: RunResult) -> list[Source]:
    """For every layer and direction, which output slice h_n[k] equals, checked numerically.

    Last layer: forward = output at each sequence's last real step, features [0, H_out);
    backward = output at step 0, features [H_out, 2*H_out). Lower layers: the same slices of
    that layer's own output, which is fed to the next layer and not returned. c_n is the
    cell state and appears in no output.
    """
    cfg = result.cfg
    D, H, L = cfg.D, cfg.H_out, cfg.seq_len
    lengths = np.asarray(cfg.lengths) if cfg.packed else np.full(cfg.N, L)
    h_n = result.state("h_n")  # (D*num_layers, N, H_out)
    # On the CPU the last layer's slices are the very numbers returned: equal to the bit. Lower
    # layers are re-run one layer at a time, and on CUDA cuDNN may pick another algorithm or
    # use TF32 for either: compare's tolerance.
    rerun = default_tolerance(str(h_n.dtype), result.device.startswith("cuda"), result.tf32)
    returned = EXACT if result.device == "cpu" else rerun
    sources: list[Source] = []
    for layer in range(cfg.num_layers):
        last = layer == cfg.num_layers - 1
        seq = result.time_major("output") if last else None
        if not last and layer < len(result.layer_outputs):
            seq = result.layer_outputs[layer]
        for d in range(D):
            k = layer * D + d
            steps = tuple(int(n) - 1 for n in lengths) if d == 0 else (0,) * cfg.N
            if d == 0:
                t = "lengths[n]-1" if cfg.packed else str(L - 1)
            else:
                t = "0"
            n = "n" if cfg.packed else ":"
            feats = f"{d * H}:{(d + 1) * H}"
            tensor = "output" if last else f"layer{layer}_output"
            expr = _index_expr(cfg, tensor, t, n, feats)
            diff = ok = None
            if seq is not None:
                picked = seq[np.asarray(steps), np.arange(cfg.N), d * H : (d + 1) * H]  # (N, H_out)
                gap = np.abs(picked - h_n[k])
                diff = float(np.max(gap)) if picked.size else 0.0
                tol = returned if last else rerun
                ok = bool(np.all(gap <= tol.atol + tol.rtol * np.abs(picked)))
            direction = "backward" if d else "forward"
            sources.append(Source("h_n", k, layer, direction, expr, steps, last, diff, ok))
            if cfg.has_c:
                sources.append(
                    Source("c_n", k, layer, direction, "cell state: in no output", steps, False, None, None)
                )
    return sources
