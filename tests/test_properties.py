"""Property-based agreement: random RunConfigs through the numpy memory cell and torch.

For every configuration hypothesis draws (every cell; sizes 1..16; 1..3 layers; both
directions; batch_first; unbatched; packed lengths, unsorted allowed; bias on/off; both
nonlinearities for rnn; proj_size for lstm; h0 zeros/random; both dtypes):

* float64: manual.run and torch_run.run from the same seed agree to 1e-10;
* float32: compare.run passes with its default tolerance (float32 on the CPU);
* every tensor and parameter shape equals the formula of the PyTorch documentation
  (nn.RNN / nn.LSTM / nn.GRU), written out below independently of RunConfig.shapes().

The agreement test runs 5x the profile's max_examples: 500 per CI run ('ci' profile).
Sizes stay small (L <= 8, N <= 4) so the whole file runs well under a minute.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from rnn_cli.core import compare
from rnn_cli.core import manual
from rnn_cli.core import torch_run
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import draw
from docs_shapes import documented_parameter_shapes, documented_shapes
from strategies import run_configs

AGREEMENT_EXAMPLES = 5 * settings.default.max_examples  # 'ci' profile: 100 -> 500
FLOAT64_ATOL = 1e-10




# ---- the PyTorch documentation's shapes, written out ------------------------------------


def documented_batch_sizes(lengths: tuple[int, ...]) -> list[int]:
    """PackedSequence.batch_sizes[t] = how many sequences have a step t."""
    return [sum(1 for n in lengths if n > t) for t in range(max(lengths))]


def assert_documented_shapes(result, cfg: RunConfig) -> None:
    expected = documented_shapes(cfg)
    expected.pop("packed_data", None)  # a PackedSequence field, not a returned tensor
    got = {name: tuple(a.shape) for name, a in result.tensors.items()}
    assert got == expected, f"{result.implementation}: {got} != {expected}"
    params = {name: tuple(p.shape) for name, p in result.params.items()}
    documented = documented_parameter_shapes(cfg)
    assert params == documented
    assert list(params) == list(documented), "parameters not in torch's order"
    assert cfg.num_parameters() == sum(int(np.prod(s)) for s in documented.values())
    if cfg.lengths is not None:
        D = 2 if cfg.bidirectional else 1
        H_out = cfg.proj_size if cfg.proj_size > 0 else cfg.hidden_size
        assert result.packed_data_shape == (sum(cfg.lengths), D * H_out)
        assert result.tensors["batch_sizes"].tolist() == documented_batch_sizes(cfg.lengths)


def _label(cfg: RunConfig) -> None:
    event(f"cell={cfg.cell}")
    event(f"dtype={cfg.dtype}")
    event("lengths" if cfg.lengths is not None else ("unbatched" if cfg.batch is None else "batched"))
    if cfg.proj_size:
        event("proj_size>0")


# ---- the properties -------------------------------------------------------------------


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Tiny tensors gain nothing from threads, and a busy 2-core machine makes them stall."""


@settings(max_examples=AGREEMENT_EXAMPLES)
@given(cfg=run_configs())
def test_manual_and_torch_agree_and_shapes_follow_the_docs(cfg: RunConfig) -> None:
    _label(cfg)
    if cfg.dtype == "float64":
        ours = manual.run(cfg, keep_layers=False)
        theirs = torch_run.run(cfg, keep_layers=False)
        for result in (ours, theirs):
            assert_documented_shapes(result, cfg)
        for name in ("input", "h_0", "c_0"):  # the same seeded draw on both sides
            if name in ours.tensors:
                np.testing.assert_array_equal(theirs.tensors[name], ours.tensors[name])
        for name in ("output", "h_n", "c_n"):
            if name in ours.tensors:
                diff = float(np.max(np.abs(theirs.tensors[name] - ours.tensors[name])))
                assert diff <= FLOAT64_ATOL, f"{name}: max |torch - manual| = {diff:.3g} > {FLOAT64_ATOL}"
    else:
        cmp = compare.run(cfg)
        assert (cmp.tolerance.atol, cmp.tolerance.rtol) == (1e-5, 1e-5)
        assert_documented_shapes(cmp.torch, cfg)
        assert_documented_shapes(cmp.reference, replace(cfg, dtype="float64"))
        compared = {c.name for c in cmp.checks}
        assert compared == {"output", "h_n"} | ({"c_n"} if cfg.cell == "lstm" else set()) | (
            {"batch_sizes"} if cfg.lengths is not None else set()
        )
        failed = [(c.name, c.max_abs_diff, c.max_rel_diff) for c in cmp.checks if not c.ok]
        assert cmp.ok, f"float32 torch vs float64 reference outside {cmp.tolerance}: {failed}"


@settings(max_examples=settings.default.max_examples // 2)
@given(cfg=run_configs(dtype=st.just("float64")))
def test_manual_shapes_follow_the_docs_with_lower_layers_kept(cfg: RunConfig) -> None:
    """keep_layers=True (what the views use) changes no shape and keeps one output per lower layer."""
    result = manual.run(cfg, keep_layers=True)
    assert_documented_shapes(result, cfg)
    D = 2 if cfg.bidirectional else 1
    H_out = cfg.proj_size if cfg.proj_size > 0 else cfg.hidden_size
    assert [a.shape for a in result.layer_outputs] == [(cfg.seq_len, cfg.N, D * H_out)] * (cfg.num_layers - 1)


# ---- the checks above can fail ----------------------------------------------------------


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_float64_agreement_notices_a_perturbed_weight(cell: str) -> None:
    """A 1e-6 change in one input weight is far outside 1e-10: the property has teeth."""
    cfg = RunConfig(cell=cell, input_size=3, hidden_size=4, num_layers=2, seq_len=5, batch=2, dtype="float64",
                   )
    sample = draw(cfg)
    ours = manual.run(cfg, sample, keep_layers=False)
    params = dict(sample.params)
    params["weight_ih_l0"] = params["weight_ih_l0"].copy()
    params["weight_ih_l0"][0, 0] += 1e-6
    theirs = torch_run.run(cfg, replace(sample, params=params), keep_layers=False)
    diff = float(np.max(np.abs(theirs.tensors["output"] - ours.tensors["output"])))
    assert diff > FLOAT64_ATOL


def test_documented_shapes_are_not_runconfig_shapes_by_construction() -> None:
    """The formulas above give the numbers the docs' examples give (nn.LSTM proj_size example)."""
    cfg = RunConfig(cell="lstm", input_size=5, hidden_size=8, num_layers=2, bidirectional=True, proj_size=3,
                    nonlinearity=None, seq_len=10, batch=1)
    shapes = documented_shapes(cfg)
    assert shapes["output"] == (10, 1, 6)
    assert shapes["h_n"] == (4, 1, 3)
    assert shapes["c_n"] == (4, 1, 8)
    params = documented_parameter_shapes(cfg)
    assert params["weight_ih_l1_reverse"] == (32, 6)
    assert params["weight_hr_l0"] == (3, 8)
    assert documented_batch_sizes((5, 2)) == [2, 2, 1, 1, 1]
