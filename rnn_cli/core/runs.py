"""What manual and torch compute for a command: the forward with its h_n source check, then
what the flags ask for on top of it (the final-state recipes, the padding's effect under
--no-pack, the gradients of --grad), each computed by a named function and set on the
immutable RunResult with dataclasses.replace. Returns results; shows nothing.

torch is imported only when the torch side runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

from rnn_cli.core.config import RunConfig
from rnn_cli.core.result import RunResult
from rnn_cli.core.sample import Sample, draw
from rnn_cli.core.sources import h_n_sources

# progress(label, done, total): steps of the numpy loop done so far.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Extras:
    """What to compute beyond the forward."""

    recipes: bool = False  # evaluate the final-state recipes
    padding: bool = False  # with --no-pack: the padding's effect, against the packed run
    grad: Optional[str] = None  # the loss of --grad ("sum" or "last"), None without --grad

    @classmethod
    def shown(cls, view, cfg: RunConfig, grad: Optional[str] = None) -> "Extras":
        """What the sections of `view` need for cfg (--json shows every section); the recipes
        are on the default screen only where cfg has a trap."""
        recipes = view.shows("recipes") and (view.asked or cfg.has_trap)
        padding = view.shows("padding") and cfg.lengths is not None and not cfg.pack  # only --no-pack pads
        return cls(recipes=recipes, padding=padding, grad=grad)


def forward(
    implementation: str,
    cfg: RunConfig,
    sample: Sample,
    keep_layers: bool,
    tf32: bool = True,
    progress: Optional[Progress] = None,
) -> RunResult:
    """The forward of `implementation`, with where h_n and c_n come from checked on it."""
    if implementation == "manual":
        from rnn_cli.core import manual

        total = cfg.num_layers * cfg.seq_len
        on_step = None if progress is None else (lambda k, s: progress(f"layer {k}", k * cfg.seq_len + s, total))
        result = manual.run(cfg, sample, keep_layers=keep_layers, progress=on_step)
    else:
        from rnn_cli.core import torch_run

        result = torch_run.run(cfg, sample, keep_layers=keep_layers, tf32=tf32)
    return replace(result, sources=h_n_sources(result))


def gradients(implementation: str, cfg: RunConfig, sample: Sample, loss: str, tf32: bool = True, upstream=None):
    """(Gradients, Upstream) of `loss` for one implementation; see rnn_cli.core.backward. The
    upstream gradients are drawn from the seed after the sample unless given."""
    from rnn_cli.core import backward
    from rnn_cli.core.loss import draw_upstream

    if upstream is None:
        upstream = draw_upstream(cfg, loss, sample)
    if implementation == "manual":
        grads = backward.gradients(cfg, sample.params, sample.x, sample.h_0, sample.c_0, upstream)
    else:
        from rnn_cli.core import torch_grad
        from rnn_cli.core import torch_run

        grads = torch_grad.torch_gradients(cfg, sample, upstream, torch_run.resolve_device(cfg.device), tf32)
    return grads, upstream


def _packed(implementation: str, cfg: RunConfig, sample: Sample, result: RunResult, tf32: bool) -> RunResult:
    """The run the recipes' truth is defined on: result itself, or under --no-pack the
    packed run of the same sample beside it."""
    if cfg.lengths is None or cfg.pack:
        return result
    return forward(implementation, replace(cfg, pack=True), sample, False, tf32)


def judged_recipes(implementation: str, cfg: RunConfig, shown: RunResult, packed: RunResult, tf32: bool = True) -> list:
    """The final-state recipes evaluated on the tensors the user sees (under --no-pack the
    unpacked run) against the packed run's truth, then on a small control draw of the same
    configuration (recipes.control_config), run by the same implementation: a recipe is
    right only where it is right on both."""
    from rnn_cli.core import recipes

    lib = "numpy" if implementation == "manual" else "torch"
    rows = recipes.evaluate(cfg, shown.tensors, lib, truth=packed.tensors)
    control = recipes.control_config(cfg, shown.provenance)
    sample = draw(control)
    control_shown = forward(implementation, control, sample, False, tf32)
    control_packed = _packed(implementation, control, sample, control_shown, tf32)
    control_rows = recipes.evaluate(control, control_shown.tensors, lib, truth=control_packed.tensors)
    return recipes.judge(cfg, rows, control, control_rows)


def run(
    implementation: str,
    cfg: RunConfig,
    sample: Optional[Sample] = None,
    extras: Extras = Extras(),
    keep_layers: bool = True,
    tf32: bool = True,
    progress: Optional[Progress] = None,
) -> RunResult:
    """The forward of `implementation` ("manual" or "torch") and the extras, on one sample:
    one RunResult, made whole."""
    sample = sample if sample is not None else draw(cfg)
    result = forward(implementation, cfg, sample, keep_layers, tf32, progress)
    found: dict = {}
    if extras.recipes or extras.padding:
        from rnn_cli.core import recipes

        packed = _packed(implementation, cfg, sample, result, tf32)
        if extras.padding and packed is not result:
            found["padding_effect"] = recipes.padding_effect(cfg, packed.tensors, result.tensors)
        if extras.recipes:
            found["recipes"] = judged_recipes(implementation, cfg, result, packed, tf32)
    if extras.grad is not None:
        found["gradients"], found["upstream"] = gradients(implementation, cfg, sample, extras.grad, tf32)
    return replace(result, **found)



# ---- memory: what run() holds at its peak (the guard asks; tests/test_memory_calibration.py measures) ----


def peak_bytes(implementation: str, cfg: RunConfig, keep_layers: bool = True, grad: bool = False) -> int:
    """Bytes run() holds at its peak beyond the sample, for the memory guard: the forward
    (manual.peak_bytes, or torch_peak.forward_bytes for torch); then, beside its result (the
    output, and the lower layers' outputs with keep_layers), under --no-pack the packed rerun
    (_packed: the recipes' truth and the padding table); then --grad's upstream and backward
    (backward.peak_bytes, torch_peak.grad_bytes) beside both results."""
    from rnn_cli.core.config import ITEMSIZE

    if implementation == "manual":
        from rnn_cli.core import manual

        forward_bytes = manual.peak_bytes
    else:
        from rnn_cli.core import torch_peak

        forward_bytes = torch_peak.forward_bytes
    output = ITEMSIZE[cfg.dtype] * cfg.seq_len * cfg.N * cfg.D * cfg.H_out  # (L, N, D*H_out)
    kept = output * (1 + (cfg.num_layers - 1 if keep_layers else 0))
    phases = [forward_bytes(cfg, keep_layers)]
    if cfg.lengths is not None and not cfg.pack:
        phases.append(kept + forward_bytes(replace(cfg, pack=True), False))
        kept += output
    if grad:  # backward imported only here: a forward's start-up does not pay for it
        if implementation == "manual":
            from rnn_cli.core.backward import peak_bytes as grad_bytes
        else:
            grad_bytes = torch_peak.grad_bytes
        phases.append(kept + grad_bytes(cfg))
    return max(phases)
