"""The loss of `--grad`: a fixed linear function of what the forward returns, with upstream
gradients G drawn from the seed after everything the forward draws (`draw_upstream`):

    --loss sum   L = sum(output * G_out) + sum(h_n * G_h) (+ sum(c_n * G_c) for LSTM)
    --loss last  L = sum_n output[T_n, n, :] . G_last[n],  T_n = lengths[n] - 1 (or L - 1)

numpy only; rnn_cli.core.backward (numpy's BPTT) and torch_grad (autograd) both start here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Sample, draw, state_to_user_layout, step_mask, to_user_layout
from rnn_cli.errors import RnnCliError

LOSSES = ("sum", "last")


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class Upstream:
    """dL/d(what the forward returns), time-major and in the state layout."""

    loss: str  # "sum" or "last"
    output: np.ndarray  # (L, N, D*H_out)  G_out
    h_n: np.ndarray  # (D*num_layers, N, H_out)  G_h (zeros for "last")
    c_n: np.ndarray | None  # (D*num_layers, N, H_cell)  G_c, LSTM only (zeros for "last")

    def astype(self, dtype) -> Upstream:
        """The same G in another dtype: compare upcasts float32 G for its float64 reference."""
        return Upstream(
            loss=self.loss,
            output=self.output.astype(dtype),
            h_n=self.h_n.astype(dtype),
            c_n=None if self.c_n is None else self.c_n.astype(dtype),
        )

    def user_layout(self, cfg: RunConfig) -> dict[str, np.ndarray]:
        """upstream_output, upstream_h_n (upstream_c_n) in the layouts of output, h_n (c_n)."""
        out = {
            "upstream_output": to_user_layout(cfg, self.output),
            "upstream_h_n": state_to_user_layout(cfg, self.h_n),
        }
        if self.c_n is not None:
            out["upstream_c_n"] = state_to_user_layout(cfg, self.c_n)
        return out


def last_steps(cfg: RunConfig) -> np.ndarray:
    """(N,) T_n: the last real step of each sequence."""
    if cfg.lengths is None:
        return np.full(cfg.N, cfg.seq_len - 1)
    return np.asarray(cfg.lengths) - 1


def draw_upstream(cfg: RunConfig, loss: str = "sum", sample: Sample | None = None) -> Upstream:
    """G for `loss`, drawn in float64 from the seed's Generator where sample.draw left it
    (so the forward's numbers never change), then rounded to cfg.dtype as the sample is.

    Pass the sample already drawn to skip drawing it again.
    """
    if loss not in LOSSES:
        raise RnnCliError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    sample = sample if sample is not None else draw(cfg)
    rng = np.random.default_rng()
    rng.bit_generator.state = sample.rng_state
    dtype = np.dtype(cfg.dtype)
    L, N, DL, DH = cfg.seq_len, cfg.N, cfg.D * cfg.num_layers, cfg.D * cfg.H_out
    if loss == "sum":
        G_out = rng.standard_normal((L, N, DH))  # (L, N, D*H_out)
        if cfg.lengths is not None:
            G_out *= step_mask(cfg)  # the loss is over real steps only (also under --no-pack)
        G_h = rng.standard_normal((DL, N, cfg.H_out))  # (D*num_layers, N, H_out)
        G_c = rng.standard_normal((DL, N, cfg.hidden_size)) if cfg.has_c else None
    else:
        G_last = rng.standard_normal((N, DH))  # (N, D*H_out)
        G_out = np.zeros((L, N, DH))
        G_out[last_steps(cfg), np.arange(N)] = G_last
        G_h = np.zeros((DL, N, cfg.H_out))
        G_c = np.zeros((DL, N, cfg.hidden_size)) if cfg.has_c else None
    return Upstream(
        loss=loss,
        output=G_out.astype(dtype),
        h_n=G_h.astype(dtype),
        c_n=None if G_c is None else G_c.astype(dtype),
    )




def loss_value(upstream: Upstream, output: np.ndarray, h_n: np.ndarray, c_n: np.ndarray | None) -> float:
    """L = sum(output * G_out) + sum(h_n * G_h) (+ sum(c_n * G_c)), summed in float64."""
    total = np.sum(output * upstream.output, dtype=np.float64) + np.sum(h_n * upstream.h_n, dtype=np.float64)
    if c_n is not None and upstream.c_n is not None:
        total += np.sum(c_n * upstream.c_n, dtype=np.float64)
    return float(total)
