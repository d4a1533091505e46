"""The seeded draw that `manual`, `torch` and `compare` share: parameters, input, h_0, c_0.

One numpy Generator per run, drawn in a fixed order (parameters in torch's order, then
input, then h_0, then c_0), so the same --seed gives the same numbers in every command.
Parameters follow torch's initialisation, U(-1/sqrt(H_cell), 1/sqrt(H_cell)).
The input is drawn time-major (L, N, H_in) and only then laid out for --batch-first, so
batch_first changes where the numbers sit, never the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rnn_cli.core.config import RunConfig


@dataclass(frozen=True)
class Provenance:
    """Where a sample's numbers come from: the seeded draw or the user's files. The RunConfig
    says what runs and what the draw gives (its h0: zeros or random); this says from what
    the numbers came (draw sets it, rnn_cli.inputs for files). A run's result carries it to
    whatever shows or writes it (the header, the shapes table, --json's and --save's config)."""

    weights: str = "seed"  # seed, or the checkpoint as given: PATH[:PREFIX] (file where not said)
    input: str = "seed"  # seed, or file (--input PATH.npy)
    h_0: str = "zeros"  # zeros, random (drawn from the seed), or file (--h0, with --c0 for c_0)

    @property
    def drawn(self) -> bool:
        """Some of the numbers come from --seed."""
        return self.weights == "seed" or self.input == "seed" or self.h_0 == "random"


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class Sample:
    params: dict[str, np.ndarray]  # torch names -> arrays, torch's order
    x: np.ndarray  # (L, N, H_in), time-major; padding steps are zero
    h_0: np.ndarray  # (D*num_layers, N, H_out)
    c_0: np.ndarray | None  # (D*num_layers, N, H_cell), LSTM only
    rng_state: dict | None = None  # the Generator's state after the last draw: later draws (--grad) go on from here
    provenance: Provenance = Provenance()


def draw(cfg: RunConfig) -> Sample:
    """Draw every array in float64 and round it to cfg.dtype at once, so at
    most one float64 array is alive beside the result.

    compare calls this with cfg.dtype and upcasts for its float64 reference, so both
    sides start from bit-identical numbers.
    """
    rng = np.random.default_rng(cfg.seed)
    np_dtype = np.dtype(cfg.dtype)
    k = 1.0 / np.sqrt(cfg.hidden_size)
    params = {name: rng.uniform(-k, k, shape).astype(np_dtype) for name, shape in cfg.parameter_shapes().items()}
    L, N, DL = cfg.seq_len, cfg.N, cfg.D * cfg.num_layers
    x = rng.standard_normal((L, N, cfg.input_size)).astype(np_dtype)  # (L, N, H_in)
    if cfg.lengths is not None:
        x *= step_mask(cfg)  # zero the padding

    def state(features: int) -> np.ndarray:  # (D*num_layers, N, features)
        if cfg.h0 == "random":
            return rng.standard_normal((DL, N, features)).astype(np_dtype)
        return np.zeros((DL, N, features), np_dtype)

    h_0 = state(cfg.H_out)
    c_0 = state(cfg.hidden_size) if cfg.has_c else None
    return Sample(params=params, x=x, h_0=h_0, c_0=c_0, rng_state=rng.bit_generator.state,
                  provenance=Provenance(h_0="random" if cfg.h0 == "random" else "zeros"))


def step_mask(cfg: RunConfig) -> np.ndarray:
    """(L, N, 1) booleans: True where step t is a real step of sequence n."""
    assert cfg.lengths is not None
    t = np.arange(cfg.seq_len)[:, None]
    return (t < np.asarray(cfg.lengths)[None, :])[:, :, None]


def to_user_layout(cfg: RunConfig, seq: np.ndarray) -> np.ndarray:
    """(L, N, F) -> the layout the user asked for: (N, L, F) batch_first, (L, F) unbatched."""
    if cfg.unbatched:
        return seq[:, 0]
    return seq.transpose(1, 0, 2) if cfg.batch_first else seq


def from_user_layout(cfg: RunConfig, seq: np.ndarray) -> np.ndarray:
    """The inverse of to_user_layout: any sequence tensor back to (L, N, F)."""
    if cfg.unbatched:
        return seq[:, None, :]
    return seq.transpose(1, 0, 2) if cfg.batch_first else seq


def state_from_user_layout(cfg: RunConfig, state: np.ndarray) -> np.ndarray:
    """The inverse of state_to_user_layout: any state tensor back to (D*num_layers, N, F)."""
    return state[:, None] if cfg.unbatched else state


def state_to_user_layout(cfg: RunConfig, state: np.ndarray) -> np.ndarray:
    """(D*num_layers, N, F) -> (D*num_layers, F) for unbatched input; batch_first never applies."""
    return state[:, 0] if cfg.unbatched else state
