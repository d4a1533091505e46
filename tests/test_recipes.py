"""The recipes section and --no-pack (issue 15), core and views.

The truth here never comes from rnn_cli.core.recipes: each sequence is run alone through a
one-sequence torch module for exactly its own number of steps, unpadded and unpacked, and
that module's h_n is the final state by definition (forward: after step lengths[n] - 1;
backward: after step 0, having started at lengths[n] - 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from rich.console import Console

from rnn_cli import documents
from rnn_cli.core import manual
from rnn_cli.core import recipes
from rnn_cli.views import recipes as recipes_view
from rnn_cli.core import torch_run
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Provenance, draw

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TWO_LAYER_BI_PACKED = RunConfig(cell="lstm", num_layers=2, bidirectional=True, lengths=(10, 7, 3), batch=3)


# ---- independent helpers -----------------------------------------------------------------------


def alone(cfg: RunConfig, sample, steps: list[int]) -> np.ndarray:
    """h_n of each sequence n run alone for its first steps[n] steps: (D*num_layers, N, H_out), float64."""
    one = dataclasses.replace(cfg, batch=1, lengths=None, batch_first=False)
    module = torch_run.build_module(one)
    torch_run.load_params(module, sample.params)
    finals = []
    with torch.inference_mode():
        for n in range(cfg.N):
            x = torch.from_numpy(sample.x[: steps[n], n : n + 1])  # (steps, 1, H_in)
            h_0 = torch.from_numpy(sample.h_0[:, n : n + 1])
            hx = h_0 if sample.c_0 is None else (h_0, torch.from_numpy(sample.c_0[:, n : n + 1]))
            _, state = module(x, hx)
            finals.append((state[0] if isinstance(state, tuple) else state).numpy())
    return np.concatenate(finals, axis=1).astype(np.float64)


def true_final_states(cfg: RunConfig, sample) -> np.ndarray:
    """(D*num_layers, N, H_out): every sequence's final states, from the definition."""
    return alone(cfg, sample, list(cfg.lengths) if cfg.lengths else [cfg.seq_len] * cfg.N)


def torch_tensors(cfg: RunConfig, sample) -> dict[str, np.ndarray]:
    return torch_run.run(cfg, sample, keep_layers=False).tensors


def manual_tensors(cfg: RunConfig, sample) -> dict[str, np.ndarray]:
    return manual.run(cfg, sample, keep_layers=False).tensors


def by_expression(rows) -> dict:
    return {r.expression: r for r in rows}


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---- the recipes ---------------------------------------------------------------------------------


def test_two_layer_bidirectional_packed_lstm_wrong_recipes_wrong_by_the_right_amount():
    cfg = TWO_LAYER_BI_PACKED
    sample = draw(cfg)
    t = torch_tensors(cfg, sample)
    truth = true_final_states(cfg, sample)
    fwd, bwd = truth[-2], truth[-1]  # (N, H_out): the last layer's two directions
    rows = by_expression(recipes.evaluate(cfg, t, "torch"))

    expected_correct = {
        "h_n[-2]": True,
        "h_n[-1]": False,
        "output[-1, :, :H_out]": False,
        "output[lengths - 1, torch.arange(N), :H_out]": True,
        "h_n.view(num_layers, D, N, H_out)[-1, 1]": True,
        "output[0, :, H_out:]": True,
        "output[-1, :, H_out:]": False,
        "torch.cat((h_n[-2], h_n[-1]), dim=1)": True,
        "h_n[-2:].transpose(0, 1).reshape(N, 2 * H_out)": True,
        "h_n[-2:].reshape(N, 2 * H_out)": False,
        "h_n.view(N, -1)": False,
        "output[-1]": False,
        "h_n.view(num_layers, D, N, H_out)[-1]": True,
        "h_n[-2:]": True,
        "h_n.view(D, num_layers, N, H_out)[:, -1]": False,
        "output[lengths - 1, torch.arange(N)]": True,
    }
    assert {e: r.correct for e, r in rows.items()} == expected_correct

    # how far off, worked out here from the per-sequence truth
    output, h_n = t["output"], t["h_n"]  # (L, N, 2*H_out), (4, N, H_out)
    assert rows["h_n[-1]"].max_abs_diff == pytest.approx(max_abs(h_n[-1], fwd), abs=1e-6)
    assert rows["output[-1]"].max_abs_diff == pytest.approx(max_abs(output[-1], np.concatenate((fwd, bwd), 1)), abs=1e-6)
    assert rows["output[-1, :, H_out:]"].max_abs_diff == pytest.approx(max_abs(output[-1, :, 8:], bwd), abs=1e-6)
    assert rows["h_n.view(D, num_layers, N, H_out)[:, -1]"].max_abs_diff == pytest.approx(
        max_abs(h_n[[1, 3]], np.stack((fwd, bwd))), abs=1e-6
    )
    assert rows["h_n.view(N, -1)"].max_abs_diff is None
    assert rows["h_n.view(N, -1)"].note == "shape (3, 32) vs truth (3, 16)"
    assert rows["output[-1]"].note.startswith("has step L-1 as its backward half")
    for r in rows.values():
        if r.correct:
            assert r.max_abs_diff <= 1e-6 and r.note == ""
        elif r.max_abs_diff is not None:
            assert r.max_abs_diff > 1e-3  # wrong by far more than rounding


def test_unidirectional_single_layer_unpadded_output_last_is_h_n_last():
    cfg = RunConfig(cell="gru", batch=3)
    sample = draw(cfg)
    t = torch_tensors(cfg, sample)
    rows = by_expression(recipes.evaluate(cfg, t, "torch"))
    assert set(rows) == {"h_n[-1]", "output[-1]", "h_n.view(N, -1)"}
    assert all(r.correct for r in rows.values())
    # the truth they agree with is the definition, not each other
    assert max_abs(t["output"][-1], true_final_states(cfg, sample)[-1]) <= 1e-6


def test_unidirectional_padded_output_last_reads_padding_of_the_shorter_sequences():
    cfg = RunConfig(cell="rnn", num_layers=2, lengths=(10, 7, 3), batch=3)
    sample = draw(cfg)
    truth = true_final_states(cfg, sample)[-1]  # (N, H_out)
    rows = by_expression(recipes.evaluate(cfg, torch_tensors(cfg, sample), "torch"))
    # packed output is zero past a sequence's end: output[-1] is off by the shorter sequences' whole state
    assert not rows["output[-1]"].correct
    assert rows["output[-1]"].max_abs_diff == pytest.approx(np.abs(truth[1:]).max(), abs=1e-6)
    assert rows["output[lengths - 1, torch.arange(N)]"].correct
    assert rows["h_n[-1]"].correct
    assert not rows["h_n[0]"].correct  # the first layer's


def test_recipes_on_an_unpacked_padded_run_show_h_n_walked_through_the_padding():
    """h_n[-1] of an unpacked run is the state at step L-1; the definition wants lengths - 1."""
    cfg = RunConfig(cell="lstm", lengths=(10, 7, 3), batch=3)
    sample = draw(cfg)
    unpacked = unpacked_tensors(cfg, sample, "torch")
    truth = true_final_states(cfg, sample)[-1]
    rows = by_expression(recipes.evaluate(cfg, unpacked, "torch"))
    assert not rows["h_n[-1]"].correct
    assert rows["h_n[-1]"].max_abs_diff == pytest.approx(max_abs(unpacked["h_n"][-1], truth), abs=1e-6)
    assert rows["output[lengths - 1, torch.arange(N)]"].correct


def test_batch_first_recipes_index_the_batch_axis_first_but_not_in_h_n():
    cfg = RunConfig(cell="gru", bidirectional=True, batch_first=True, lengths=(10, 4), batch=2, hidden_size=6)
    sample = draw(cfg)
    t = torch_tensors(cfg, sample)
    fwd = true_final_states(cfg, sample)[0]
    rows = by_expression(recipes.evaluate(cfg, t, "torch"))
    assert rows["output[torch.arange(N), lengths - 1, :H_out]"].correct
    assert rows["output[:, 0, H_out:]"].correct
    assert not rows["output[:, -1]"].correct
    assert not rows["output[:, -1, :H_out]"].correct
    assert rows["output[:, -1, :H_out]"].max_abs_diff == pytest.approx(np.abs(fwd[1]).max(), abs=1e-6)
    assert not rows["h_n[:, -1]"].correct  # batch_first never applies to h_n


def test_unbatched_recipes_have_no_batch_axis():
    cfg = RunConfig(cell="rnn", bidirectional=True, batch=None)
    sample = draw(cfg)
    truth = true_final_states(cfg, sample)[:, 0]  # (2, H_out)
    rows = by_expression(recipes.evaluate(cfg, torch_tensors(cfg, sample), "torch"))
    assert rows["output[-1, :H_out]"].correct
    assert rows["output[0, H_out:]"].correct
    assert rows["h_n[-2:].reshape(2 * H_out)"].correct  # one sequence: no transpose needed
    assert rows["h_n.view(num_layers, D, H_out)[-1]"].shape == (2, 8)
    assert not rows["output[-1]"].correct
    assert rows["output[-1]"].shape == (16,)
    assert rows["h_n[-1]"].max_abs_diff == pytest.approx(max_abs(truth[1], truth[0]), abs=1e-6)


@pytest.mark.parametrize("batch, right", [(1, True), (3, False)], ids=["one_sequence", "three_sequences"])
def test_reshape_without_transpose_is_right_only_for_one_sequence(batch, right):
    cfg = RunConfig(cell="lstm", bidirectional=True, batch=batch)
    rows = by_expression(recipes.evaluate(cfg, torch_tensors(cfg, draw(cfg)), "torch"))
    assert rows["h_n[-2:].reshape(N, 2 * H_out)"].correct is right
    assert rows["h_n.view(N, -1)"].correct is right
    assert rows["h_n[-2:].transpose(0, 1).reshape(N, 2 * H_out)"].correct


SCENARIOS = {
    "two_layer_bidirectional_packed_lstm": TWO_LAYER_BI_PACKED,
    "batch_first_padded_gru": RunConfig(cell="gru", num_layers=2, batch_first=True, lengths=(3, 10), batch=2),
    "unbatched_bidirectional_rnn": RunConfig(cell="rnn", bidirectional=True, batch=None, num_layers=3),
    "projected_bidirectional_lstm": RunConfig(cell="lstm", bidirectional=True, proj_size=3, batch=2, h0="random"),
    "float64_batch_first_bidirectional": RunConfig(
        bidirectional=True, batch_first=True, lengths=(5, 10, 1), batch=3, dtype="float64"
    ),
}


@pytest.mark.parametrize("cfg", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_torch_and_numpy_spellings_agree_on_torch_and_manual_runs(cfg):
    sample = draw(cfg)
    t, m = torch_tensors(cfg, sample), manual_tensors(cfg, sample)
    runs = [recipes.evaluate(cfg, tensors, lib) for tensors in (t, m) for lib in ("torch", "numpy")]
    expected = recipes.recipes(cfg)
    for rows in runs:
        assert len(rows) == len(expected)  # none raised
        assert len({r.expression for r in rows}) == len(rows)  # one row per expression: --json needs no meaning
        assert [r.torch_expression for r in rows] == [e.torch for e in expected]
    first = runs[0]
    for rows in runs[1:]:
        assert [r.correct for r in rows] == [r.correct for r in first]
        assert [r.shape for r in rows] == [r.shape for r in first]
        for a, b in zip(rows, first):
            assert (a.max_abs_diff is None) == (b.max_abs_diff is None)
            if a.max_abs_diff is not None:
                assert a.max_abs_diff == pytest.approx(b.max_abs_diff, abs=1e-5)
    assert [r.expression for r in runs[1]] == [e.numpy for e in expected]
    assert any(not r.correct for r in first) and any(r.correct for r in first)


def test_has_trap():
    assert not RunConfig().has_trap
    assert not RunConfig(batch=None, cell="lstm").has_trap
    assert RunConfig(bidirectional=True).has_trap
    assert RunConfig(num_layers=2).has_trap
    assert RunConfig(lengths=(10, 3), batch=2).has_trap
    assert RunConfig(batch_first=True).has_trap


@pytest.mark.parametrize("command", ["manual", "torch"])
def test_recipes_of_a_configuration_without_a_trap_are_in_json_and_under_show_only(command):
    # Bug: recipes computed only where there is a trap also for --json or --show recipes
    # (the JSON document is always complete; --show draws what it names).
    from typer.testing import CliRunner

    from rnn_cli.cli.app import app

    run = lambda *a: CliRunner().invoke(app, [command, *a], env={"COLUMNS": "80"})  # noqa: E731
    doc = __import__("json").loads(run("--json").stdout)
    # one layer, one direction, no padding: h_n[-1], output[-1] and the reshape (numpy) or view (torch) are all right
    assert [(r["expression"].replace("view", "reshape"), r["correct"]) for r in doc["recipes"]] == [
        ("h_n[-1]", True), ("output[-1]", True), ("h_n.reshape(N, -1)", True)]
    asked = run("--show", "recipes")
    assert asked.exit_code == 0 and "(N, -1)" in asked.stdout
    default = run()
    assert default.exit_code == 0 and "Where h_n comes from" in default.stdout
    assert "h_n[-1]" not in default.stdout  # the default screen: no trap, no recipes


# ---- --no-pack -----------------------------------------------------------------------------------


def unpacked_tensors(cfg: RunConfig, sample, impl: str) -> dict:
    """The same run with --no-pack: the padded batch straight through the module."""
    runner = torch_run if impl == "torch" else manual
    return runner.run(replace(cfg, pack=False), sample).tensors


def padding_rows(cfg: RunConfig, impl: str):
    sample = draw(cfg)
    packed = torch_tensors(cfg, sample) if impl == "torch" else manual_tensors(cfg, sample)
    return recipes.padding_effect(cfg, packed, unpacked_tensors(cfg, sample, impl))


@pytest.mark.parametrize("impl", ["torch", "manual"])
def test_no_pack_on_equal_full_lengths_changes_nothing_beyond_rounding(impl):
    cfg = dataclasses.replace(TWO_LAYER_BI_PACKED, lengths=(10, 10, 10))
    rows = padding_rows(cfg, impl)
    assert len(rows) == 4 * 3 + 2 * 3  # every h_n slice and both halves of the output, per sequence
    assert max(r.max_abs_diff for r in rows) <= 1e-6


@pytest.mark.parametrize("impl", ["torch", "manual"])
def test_no_pack_on_unequal_lengths_moves_the_shorter_sequences_only(impl):
    cfg = RunConfig(cell="gru", bidirectional=True, lengths=(10, 7, 3), batch=3)
    sample = draw(cfg)
    rows = {(r.tensor, r.direction, r.sequence): r.max_abs_diff for r in padding_rows(cfg, impl)}
    # unpacked, sequence n's forward walks on through the padding to step L-1, its backward starts there
    walked = alone(cfg, sample, [cfg.seq_len] * cfg.N)  # (2, N, H_out)
    defined = true_final_states(cfg, sample)
    for n in range(3):
        for k, direction in enumerate(("forward", "backward")):
            assert rows[("h_n[" + str(k) + "]", direction, n)] == pytest.approx(
                max_abs(walked[k, n], defined[k, n]), abs=1e-6
            )
    for direction in ("forward", "backward"):
        assert rows[("h_n[0]" if direction == "forward" else "h_n[1]", direction, 0)] <= 1e-6  # full length
        assert rows[("output at last real step", direction, 0)] <= 1e-6
        for n in (1, 2):
            assert rows[("h_n[0]" if direction == "forward" else "h_n[1]", direction, n)] > 1e-3
    # one layer: the forward output at the last real step comes before any padding
    for n in (1, 2):
        assert rows[("output at last real step", "forward", n)] <= 1e-6
        assert rows[("output at last real step", "backward", n)] > 1e-3


def test_unpacked_forwards_agree_and_keep_the_padding_zero():
    cfg = RunConfig(cell="lstm", batch_first=True, lengths=(4, 10), batch=2, num_layers=2, bidirectional=True)
    sample = draw(cfg)
    assert not sample.x[4:, 0].any()  # the padding value is zero
    t = unpacked_tensors(cfg, sample, "torch")
    m = unpacked_tensors(cfg, sample, "manual")
    assert "batch_sizes" not in t and "batch_sizes" not in m  # nothing was packed
    for name in ("output", "h_n", "c_n"):
        assert t[name].shape == m[name].shape == cfg.shapes()[name]
        assert max_abs(t[name], m[name]) <= 1e-5
    # padded steps of an unpacked output are not zero: the state kept running there
    assert np.abs(t["output"][0, 4:]).min() > 0


# ---- views ---------------------------------------------------------------------------------------


def render(table, terminal: bool) -> str:
    console = Console(file=io.StringIO(), width=80, force_terminal=terminal, color_system=None)
    console.print(table(console))
    return console.file.getvalue()


@pytest.mark.parametrize("cfg", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_recipes_table_fits_80_columns_in_ascii_with_whole_expressions(cfg):
    rows = recipes.evaluate(cfg, torch_tensors(cfg, draw(cfg)), "torch")
    text = render(lambda c: recipes_view.recipes_table(c, cfg, rows), terminal=False)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert text.isascii()
    for r in rows:
        assert any(r.expression in line for line in lines), r.expression
    for r in rows:
        if not r.correct:
            for word in r.note.split():
                assert any(word in line.split() for line in lines), word  # wrapped between words, never inside
    assert text.count("equal") == sum(r.correct for r in rows)


def test_recipes_table_says_how_far_off_and_uses_box_characters_on_a_terminal():
    cfg = TWO_LAYER_BI_PACKED
    rows = recipes.evaluate(cfg, torch_tensors(cfg, draw(cfg)), "torch")
    text = render(lambda c: recipes_view.recipes_table(c, cfg, rows), terminal=True)
    off = by_expression(rows)["output[-1]"].max_abs_diff
    assert f"WRONG {off:.2g} off" in text
    assert "WRONG shape" in text
    assert not text.isascii()


def test_padding_table_fits_80_columns():
    cfg = dataclasses.replace(TWO_LAYER_BI_PACKED, lengths=(10, 7, 1))
    rows = padding_rows(cfg, "manual")
    text = render(lambda c: recipes_view.padding_table(c, rows), terminal=False)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert text.isascii()
    assert "h_n[3]" in text and "h_n[0]" in text  # an index, not swallowed as markup
    assert "the padding value stays zero" in " ".join(text.split())


def test_documents_have_the_issue_keys_and_no_non_finite_numbers():
    row = recipes.RecipeRow("output[-1]", "m", (3, 16), False, math.nan, "n", "output[-1]")
    shape_row = recipes.RecipeRow("h_n.view(N, -1)", "m", (3, 32), False, None, "n", "h_n.view(N, -1)")
    rest = {"target": "", "target_text": "m", "coincidence": False, "control_max_abs_diff": None, "control": "", "note": "n"}
    assert documents.recipes_document([row, shape_row]) == [
        {"expression": "output[-1]", "shape": [3, 16], "correct": False, "max_abs_diff": None, **rest},
        {"expression": "h_n.view(N, -1)", "shape": [3, 32], "correct": False, "max_abs_diff": None, **rest},
    ]
    odd = dataclasses.replace(row, target="both", coincidence=True, control_max_abs_diff=math.inf)
    assert documents.recipes_document([odd])[0]["control_max_abs_diff"] is None
    pad = [recipes.PaddingRow(1, 7, "backward", "h_n[1]", math.inf), recipes.PaddingRow(0, 10, "forward", "h_n[0]", 0.5)]
    assert documents.padding_document(pad) == [
        {"sequence": 1, "direction": "backward", "tensor": "h_n[1]", "max_abs_diff": None},
        {"sequence": 0, "direction": "forward", "tensor": "h_n[0]", "max_abs_diff": 0.5},
    ]


def test_recipes_imports_neither_torch_nor_rich():
    code = "import sys, rnn_cli.core.recipes; print(sorted(m for m in ('torch', 'rich', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_evaluate_takes_torch_tensors_that_require_grad():
    """What a user's training loop holds: module outputs still attached to the graph."""
    cfg = RunConfig(cell="lstm", num_layers=2, bidirectional=True, batch_first=True, lengths=(10, 6), batch=2)
    module, x, hx = torch_run.prepare(cfg, draw(cfg), torch.device("cpu"))
    output, (h_n, c_n), _ = torch_run.forward(cfg, module, x, hx)
    assert h_n.requires_grad
    rows = by_expression(recipes.evaluate(cfg, {"output": output, "h_n": h_n, "c_n": c_n}, "torch"))
    assert rows["torch.cat((h_n[-2], h_n[-1]), dim=1)"].correct
    assert not rows["output[:, -1]"].correct


# ---- right in general (issue 21): targets, the control draw, --no-pack, L from lengths ------------


def by_hand(output: np.ndarray, h_n: np.ndarray, N: int, H: int) -> dict:
    """Every recipe of a bidirectional two-layer stack (unpadded, time-major), indexed here by
    hand: expression -> (target, value, right for any N and L)."""
    both = np.concatenate((h_n[2], h_n[3]), axis=1)  # (N, 2H): layer 1 forward, backward
    return {
        "h_n[-2]": ("forward", h_n[2], True),
        "h_n[-1]": ("forward", h_n[3], False),
        "output[-1, :, :H_out]": ("forward", output[-1, :, :H], True),
        "h_n.view(num_layers, D, N, H_out)[-1, 1]": ("backward", h_n[3], True),
        "output[0, :, H_out:]": ("backward", output[0, :, H:], True),
        "output[-1, :, H_out:]": ("backward", output[-1, :, H:], False),
        "torch.cat((h_n[-2], h_n[-1]), dim=1)": ("both", both, True),
        "h_n[-2:].transpose(0, 1).reshape(N, 2 * H_out)": ("both", both, True),
        "h_n[-2:].reshape(N, 2 * H_out)": ("both", h_n[2:].reshape(N, 2 * H), False),  # mixes sequences for N > 1
        "h_n.view(N, -1)": ("both", h_n.transpose(0, 1, 2).reshape(N, -1), False),
        "output[-1]": ("both", output[-1], False),
        "h_n.view(num_layers, D, N, H_out)[-1]": ("per_direction", h_n[2:], True),
        "h_n[-2:]": ("per_direction", h_n[2:], True),
        "h_n.view(D, num_layers, N, H_out)[:, -1]": ("per_direction", h_n.reshape(2, 2, N, H)[:, -1], False),
    }


@pytest.mark.parametrize("batch", [1, 3], ids=["N=1", "N=3"])
def test_every_recipe_judged_right_only_where_right_in_general(batch):
    from rnn_cli.core import runs

    cfg = RunConfig(num_layers=2, bidirectional=True, batch=batch, cell="lstm")
    sample = draw(cfg)
    result = runs.run("torch", cfg, sample, runs.Extras(recipes=True))
    truth = true_final_states(cfg, sample)  # (4, N, H): every sequence run alone
    targets = {"forward": truth[2], "backward": truth[3], "both": np.concatenate((truth[2], truth[3]), 1),
               "per_direction": truth[2:]}
    hand = by_hand(result.tensors["output"], result.tensors["h_n"], batch, cfg.H_out)
    rows = by_expression(result.recipes)
    assert set(rows) == set(hand)
    for expression, (target, value, general) in hand.items():
        r, want = rows[expression], targets[target]
        assert r.target == target and r.meaning == recipes.TARGETS[target], expression
        equal_here = value.shape == want.shape and max_abs(value, want) <= 1e-6
        assert r.correct is general, expression
        assert r.coincidence is (equal_here and not general), expression
        if value.shape == want.shape:
            assert r.max_abs_diff == pytest.approx(max_abs(value, want), abs=1e-6), expression
        else:
            assert r.max_abs_diff is None
    reshape = rows["h_n[-2:].reshape(N, 2 * H_out)"]
    assert not reshape.correct  # never right for a bidirectional stack
    if batch == 1:
        assert reshape.coincidence and reshape.max_abs_diff == 0
        assert reshape.note.startswith("equal here only because N=1; ") and reshape.control_max_abs_diff > 0.1
        assert f"{reshape.control_max_abs_diff:.2g} off at N=3" in reshape.note


def test_control_draw_keeps_what_the_verdict_depends_on():
    """Bugs caught: the control losing what a recipe indexes (cell, layers, directions, layout,
    packing); and a run whose initial states came from --h0/--c0 files (nonzero: the run's
    config draws zeros, the sample's provenance says file) judged on a zeros control."""
    cfg = RunConfig(cell="gru", num_layers=2, bidirectional=True, batch_first=True, proj_size=0, lengths=(7, 7),
                    batch=2, seq_len=9, pack=False, hidden_size=6, input_size=4, dtype="float64", h0="random")
    c = recipes.control_config(cfg, Provenance(h_0="random"))
    for name in ("cell", "num_layers", "bidirectional", "batch_first", "dtype", "pack", "h0", "unbatched"):
        assert getattr(c, name) == getattr(cfg, name), name
    assert c.hidden_size <= cfg.hidden_size and c.input_size <= cfg.input_size  # small: cheap beside any run
    projected = recipes.control_config(RunConfig(cell="lstm", proj_size=300, hidden_size=4096, input_size=512),
                                       Provenance())
    assert 0 < projected.proj_size < projected.hidden_size <= 8 and projected.input_size <= 3
    assert projected.h0 == "zeros"
    assert c.N >= 3 and len(set(c.lengths)) == c.N  # unequal lengths
    assert c.seq_len > max(c.lengths)  # padding past the longest sequence, as in the run (total_length)
    assert recipes.control_config(RunConfig(batch=None, bidirectional=True), Provenance()).unbatched
    from_files = Provenance(weights="model.pt:0", input="file", h_0="file")
    assert recipes.control_config(RunConfig(cell="lstm"), from_files).h0 == "random"


def test_no_pack_recipes_are_judged_on_the_unpacked_run_the_user_sees():
    """The issue's example: h_n[-2] of the printed (unpacked) run is 0.14 off the definition."""
    from typer.testing import CliRunner

    from rnn_cli.cli.app import app

    args = ["torch", "--cell", "gru", "--input-size", "8", "--hidden-size", "2", "--seq-len", "5", "--seed", "6449",
            "--bidirectional", "--batch", "2", "--batch-first", "--lengths", "5,3", "--no-pack", "--show", "recipes"]
    cfg = RunConfig(cell="gru", input_size=8, hidden_size=2, seq_len=5, seed=6449, bidirectional=True, batch=2,
                    batch_first=True, lengths=(5, 3))
    sample = draw(cfg)
    unpacked = unpacked_tensors(cfg, sample, "torch")["h_n"][0]  # (N, H): forward, walked through the padding
    off = max_abs(unpacked, true_final_states(cfg, sample)[0])
    assert off == pytest.approx(0.14, abs=0.005)
    out = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    text = " ".join(out.stdout.split())
    assert "unpacked run (--no-pack) against the packed truth" in text
    assert f"h_n[-2] (2, 2) WRONG {off:.2g} off" in text
    assert "Padding without packing" not in text  # --show recipes only; the padding table is its own section
    doc = __import__("json").loads(CliRunner().invoke(app, args[:-2] + ["--json"]).stdout)
    row = {r["expression"]: r for r in doc["recipes"]}["h_n[-2]"]
    assert row["correct"] is False and row["max_abs_diff"] == pytest.approx(off, abs=1e-6)
    assert doc["recipes_judged_on"].startswith("unpacked run") and doc["padding_effect"]


@pytest.mark.parametrize("seq_len, L", [(None, 5), (7, 7)])
def test_lengths_without_seq_len_give_L_of_the_longest_sequence(seq_len, L):
    from typer.testing import CliRunner

    from rnn_cli.cli.app import app

    args = ["compare", "--lengths", "5,3,2", "--cell", "lstm", "--bidirectional"]
    args += [] if seq_len is None else ["--seq-len", str(seq_len)]
    doc = __import__("json").loads(CliRunner().invoke(app, args + ["--json"]).stdout)
    assert doc["tensors"]["output"]["shape"] == [L, 3, 16]  # pad_packed_sequence(total_length=L), else max(lengths)
    diagram = CliRunner().invoke(app, args + ["--show", "diagram"], env={"COLUMNS": "80"}).stdout
    assert ("total_length=7" in diagram) is (seq_len == 7)


def test_manual_judges_its_recipes_and_control_draw_without_torch():
    code = (
        "import sys\n"
        "from rnn_cli.core import runs\n"
        "from rnn_cli.core.config import RunConfig\n"
        "cfg = RunConfig(cell='lstm', bidirectional=True, num_layers=2, lengths=(4, 4), batch=2, seq_len=4, pack=False)\n"
        "rows = runs.run('manual', cfg, extras=runs.Extras(recipes=True)).recipes\n"
        "print('torch' in sys.modules, sum(r.coincidence for r in rows) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    # equal lengths unpacked: h_n[-2] is equal here, but walks through the padding at lengths 3,2,1
    assert out.stdout.split() == ["False", "True"]



@pytest.mark.parametrize("cfg, expression, because", [
    (RunConfig(batch_first=True, lengths=(4, 4), batch=2, seq_len=4), "output[:, -1]", "every sequence is full length"),
    (RunConfig(bidirectional=True, lengths=(3, 3), batch=2, seq_len=3, pack=False), "h_n[-2]", "every sequence is full length"),
    (RunConfig(bidirectional=True, batch=None, seq_len=1), "output[-1, H_out:]", "L=1"),
    (RunConfig(bidirectional=True, batch=1), "h_n[-2:].reshape(N, 2 * H_out)", "N=1"),
])  # fmt: skip
def test_a_coincidence_says_what_made_this_run_special(cfg, expression, because):
    from rnn_cli.core import runs

    row = by_expression(runs.run("torch", cfg, extras=runs.Extras(recipes=True)).recipes)[expression]
    assert row.coincidence and not row.correct
    assert row.note.startswith(f"equal here only because {because}; ")
    assert row.note.endswith(f"{row.control_max_abs_diff:.2g} off at {row.control}")
