"""Gradients for machines: the `--json` fragment and the `--save` arrays of `--grad`.

Gradients of the input, h_0 and c_0 are laid out like the tensors they belong to (the
user's layout: batch_first, unbatched), as are the upstream gradients saved beside them,
so the saved file alone is enough to recompute every gradient.

numpy only.
"""

from __future__ import annotations


import numpy as np

from rnn_cli.core.backward import Gradients
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import state_to_user_layout, to_user_layout


def user_layout_gradients(cfg: RunConfig, grads: Gradients) -> dict[str, np.ndarray]:
    """Every parameter's gradient (torch's names and order), then input, h_0 (c_0) in the user's layout."""
    out = dict(grads.params)
    out["input"] = to_user_layout(cfg, grads.input)
    out["h_0"] = state_to_user_layout(cfg, grads.h_0)
    if grads.c_0 is not None:
        out["c_0"] = state_to_user_layout(cfg, grads.c_0)
    return out
def grad_arrays(cfg: RunConfig, grads: Gradients, upstream_user_layout: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The --save arrays: grad_<parameter>, grad_input, grad_h_0 (grad_c_0), and the upstream
    gradients (upstream_output, upstream_h_n, upstream_c_n) from Upstream.user_layout(cfg)."""
    out = {f"grad_{name}": a for name, a in user_layout_gradients(cfg, grads).items()}
    out.update(upstream_user_layout)
    return out
