"""What a run produced: its tensors and parameters, and what was checked and computed on them
(where each slice of h_n and c_n comes from, the final-state recipes, the padding's effect, the
gradients). An immutable value: rnn_cli.core.runs makes it whole, the forward's result plus
each check computed by a named function (sources.h_n_sources, runs.judged_recipes,
recipes.padding_effect, runs.gradients) and set with dataclasses.replace; the views only draw it.

Pure numpy: shared by the manual and torch paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import (
    Provenance,
    Sample,
    from_user_layout,
    state_from_user_layout,
    state_to_user_layout,
    to_user_layout,
)

if TYPE_CHECKING:
    from rnn_cli.core.backward import Gradients
    from rnn_cli.core.loss import Upstream
    from rnn_cli.core.recipes import PaddingRow, RecipeRow


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


@dataclass(frozen=True, eq=False)  # holds arrays: == on them has no single truth value
class RunResult:
    cfg: RunConfig
    implementation: str  # "manual" or "torch"
    device: str  # the device actually used
    tensors: dict[str, np.ndarray]  # input, h_0, [c_0], output, h_n, [c_n], [batch_sizes]; user layout
    params: dict[str, np.ndarray]  # torch's names, torch's order
    provenance: Provenance  # where the sample's numbers came from (seed or the user's files)
    layer_outputs: list[np.ndarray] = field(default_factory=list)  # layers 0..num_layers-2, (L, N, D*H_out)
    packed_data_shape: tuple[int, ...] | None = None  # PackedSequence.data of the output
    tf32: bool | None = None  # cuDNN TF32 allowed (CUDA float32 only)
    # Set by rnn_cli.core.runs when it makes the result whole (None: not computed):
    sources: list[Source] | None = None  # where h_n / c_n come from, checked: sources.h_n_sources
    recipes: list[RecipeRow] | None = None  # the final-state recipes, judged: runs.judged_recipes
    padding_effect: list[PaddingRow] | None = None  # --no-pack against the packed run: recipes.padding_effect
    gradients: Gradients | None = None  # --grad: runs.gradients
    upstream: Upstream | None = None  # the loss's upstream gradients, with `gradients`

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
        return cls(cfg, implementation, device, tensors, sample.params, sample.provenance, layer_outputs, packed, tf32)

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
