"""The same loss as rnn_cli.core.backward, differentiated by torch's autograd.

The module is built and loaded as for the forward (torch_run.prepare), run with packing
when cfg.lengths is set (torch_run.forward), outside inference mode, with the parameters,
the input, h_0 and c_0 requiring grad. The upstream gradients multiply the tensors in the
user's layout, so L = sum(output * G_out) + sum(h_n * G_h) (+ sum(c_n * G_c)).

norm_per_step is None: nn.RNN/LSTM/GRU keep their intermediate states inside one fused
kernel, so there is no h_t to hook; the per-step norms come from the numpy BPTT.
"""

from __future__ import annotations

import numpy as np
import torch

from rnn_cli.core.backward import Gradients
from rnn_cli.core.loss import Upstream
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Sample, from_user_layout, state_from_user_layout
from rnn_cli.core.torch_run import cudnn_tf32, forward, prepare, quiet_onednn, to_numpy


def upstream_tensors(cfg: RunConfig, upstream: Upstream, device) -> dict[str, torch.Tensor]:
    """The upstream gradients as tensors on `device`, in the user's layout."""
    return {name: torch.from_numpy(np.ascontiguousarray(a)).to(device) for name, a in upstream.user_layout(cfg).items()}


class SavedBytes:
    """Measures what autograd keeps for the backward: every tensor the forward saves (its
    storage counted once), through saved_tensors_hooks. Left out: the module's parameters
    and the `others` (the loss's upstream gradients, which its products save)."""

    def __init__(self, module, others=()) -> None:
        self.parameters = {t.untyped_storage().data_ptr() for t in (*module.parameters(), *others)}
        self.storages: dict[int, int] = {}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in self.parameters:
            self.storages[storage.data_ptr()] = storage.nbytes()
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def forward_backward(cfg: RunConfig, module, x, hx, G: dict[str, torch.Tensor]) -> torch.Tensor:
    """L = sum(output * G_out) + sum(h_n * G_h) (+ sum(c_n * G_c)), then L.backward(); returns L."""
    output, state, _ = forward(cfg, module, x, hx)
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    loss = (output * G["upstream_output"]).sum() + (h_n * G["upstream_h_n"]).sum()
    if c_n is not None:
        loss = loss + (c_n * G["upstream_c_n"]).sum()
    loss.backward()
    return loss


def torch_gradients(cfg: RunConfig, sample: Sample, upstream: Upstream, device: torch.device, tf32: bool = True) -> Gradients:
    """dL/d(parameters, input, h_0, c_0) through torch autograd on `device`, in cfg.dtype.

    Gradients come back as numpy, time-major and in the state layout, like backward.gradients.
    """
    module, x, hx = prepare(cfg, sample, device)
    x.requires_grad_(True)
    states = hx if isinstance(hx, tuple) else (hx,)
    for s in states:
        s.requires_grad_(True)
    G = upstream_tensors(cfg, upstream, device)
    saved = SavedBytes(module, G.values())
    with cudnn_tf32(tf32), torch.enable_grad(), quiet_onednn(), saved.hooks():
        loss = forward_backward(cfg, module, x, hx, G)
    params = dict(module.named_parameters())
    return Gradients(
        params={name: to_numpy(params[name].grad) for name in cfg.parameter_shapes()},
        input=from_user_layout(cfg, to_numpy(x.grad)),
        h_0=state_from_user_layout(cfg, to_numpy(states[0].grad)),
        c_0=state_from_user_layout(cfg, to_numpy(states[1].grad)) if len(states) > 1 else None,
        norm_per_step=None,
        loss=float(loss.detach().cpu()),
        loss_kind=upstream.loss,
        saved_bytes=saved.total,
    )
