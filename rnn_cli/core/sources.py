"""Where each slice of h_n (and c_n) comes from, checked on a run's own numbers: the check
rnn_cli.core.runs attaches to every RunResult (result.sources), held to compare's tolerance
table (rnn_cli.core.tolerance).
"""

from __future__ import annotations

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.core.result import RunResult, Source
from rnn_cli.core.tolerance import EXACT, default_tolerance


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
