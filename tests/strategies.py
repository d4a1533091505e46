"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from rnn_cli.core.config import RunConfig


@st.composite
def run_configs(draw_, dtype=st.sampled_from(["float32", "float64"]), size: int = 16, steps: int = 8, unbatched: bool = True):
    """Any configuration the CLI accepts, small: sizes 1..size, 1..steps steps, unbatched too."""
    cell = draw_(st.sampled_from(["rnn", "lstm", "gru"]))
    hidden_size = draw_(st.integers(1, size))
    seq_len = draw_(st.integers(1, steps))
    unbatched = unbatched and draw_(st.booleans())
    batch = None if unbatched else draw_(st.integers(1, 4))
    lengths = None
    if batch is not None and draw_(st.booleans()):
        lengths = tuple(draw_(st.lists(st.integers(1, seq_len), min_size=batch, max_size=batch)))
    return RunConfig(
        cell=cell,
        input_size=draw_(st.integers(1, size)),
        hidden_size=hidden_size,
        num_layers=draw_(st.integers(1, 3)),
        bidirectional=draw_(st.booleans()),
        batch_first=draw_(st.booleans()),
        nonlinearity=draw_(st.sampled_from(["tanh", "relu"])) if cell == "rnn" else None,
        bias=draw_(st.booleans()),
        proj_size=draw_(st.integers(0, hidden_size - 1)) if cell == "lstm" else 0,
        seq_len=seq_len,
        batch=batch,
        lengths=lengths,
        h0=draw_(st.sampled_from(["zeros", "random"])),
        seed=draw_(st.integers(0, 2**32)),
        dtype=draw_(dtype),
    )
