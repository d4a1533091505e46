"""Issue 23: flags that were taken when they should not be, and NaN/Inf said plainly.

Expected values: the integers a user means are ASCII digits (what the issue asks); the opsets
an exporter writes are torch's own constants (torch.onnx._constants), read here independently
of rnn_cli; compare's verdicts on NaN come from numpy.isclose(equal_nan=True) as the oracle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnn_cli.core.compare import check_tensor
from rnn_cli.core.tolerance import Tolerance
from test_hostile_files import cli, lstm_state, one_line


@pytest.mark.parametrize("value", ["５", "٨", "1_6", " 8 ", "8 ", "+", "0x8"])
@pytest.mark.parametrize("flag", ["--hidden-size", "--seed"])
def test_integers_are_ascii_digits_only(flag, value):
    """Bug: '５', '٨', '1_6' and ' 8 ' were taken as integers (Python's int() accepts them)."""
    one_line(*cli("manual", flag, value)[::2], repr(value), "is not an integer")


def test_plain_and_signed_ascii_integers_still_work():
    assert cli("manual", "--hidden-size", "8", "--seed", "3", "--brief")[0] == 0
    assert cli("manual", "--seed", "+3", "--brief")[0] == 0


@pytest.mark.parametrize("lengths", ["3,٣", "3,1_0", "３"])
def test_lengths_are_ascii_digits_only(lengths):
    one_line(*cli("manual", "--lengths", lengths)[::2], "--lengths")


@pytest.mark.parametrize("command", ["manual", "torch", "compare", "bench", "onnx", "inspect"])
def test_batch_0_is_refused_in_every_command(command, tmp_path):
    """Bug: inspect --batch 0 was taken as 1."""
    torch.save(lstm_state(), tmp_path / "m.pt")
    args = ["inspect", str(tmp_path / "m.pt")] if command == "inspect" else [command]
    one_line(*cli(*args, "--batch", "0")[::2], "--batch", "0")


def _torch_opsets(exporter: str) -> tuple[int, int]:
    import onnx.defs
    from torch.onnx import _constants as c

    high = min(c.ONNX_MAX_OPSET, onnx.defs.onnx_opset_version())
    return c.ONNX_MIN_OPSET, (min(high, c.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET) if exporter == "torchscript" else high)


@pytest.mark.parametrize("exporter, opset", [("auto", -5), ("auto", 99999), ("auto", 0), ("torchscript", "high+1"),
                                             ("dynamo", "high+1")])
def test_opsets_the_exporter_cannot_write_are_refused(exporter, opset):
    """Bug: onnx --opset -5 and --opset 99999 exited 0 (the exporter silently chose its own)."""
    pytest.importorskip("onnxruntime")
    low, high = _torch_opsets(exporter)
    opset = high + 1 if opset == "high+1" else opset
    line = one_line(*cli("onnx", "--exporter", exporter, "--opset", str(opset))[::2], f"--opset {opset}")
    assert f"{low} to {high}" in line


def test_an_opset_the_exporter_writes_is_taken():
    pytest.importorskip("onnxruntime")
    code, out, err = cli("onnx", "--exporter", "torchscript", "--opset", "14", "--json", "--seq-len", "3")
    assert code == 0, err
    assert json.loads(out)["exporter"]["opset"] == 14


# ---- NaN and Inf in compare ----------------------------------------------------------------------

TOL = Tolerance(1e-5, 1e-5, "test")
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("got, ref", [
    ([1.0, NAN, 3.0], [1.0, NAN, 3.0]),  # the same NaN at the same place: agreement
    ([INF, 2.0], [INF, 2.0]),
    ([1.0, NAN], [1.0, 2.0]),  # NaN on one side only: mismatch
    ([1.0, 2.0], [1.0, NAN]),
    ([NAN, 2.0], [2.0, NAN]),  # NaN on both sides, at different places
    ([INF], [-INF]),
])
def test_compare_judges_nan_as_isclose_with_equal_nan(got, ref):
    """Bug: compare printed `FAIL margin +nan` when both sides gave the same NaN."""
    g, r = np.array(got), np.array(ref)
    expected = bool(np.isclose(g, r, atol=TOL.atol, rtol=TOL.rtol, equal_nan=True).all())
    c = check_tensor("output", g, r, TOL)
    assert c.ok == expected
    assert c.nonfinite_agree == int(((np.isnan(g) & np.isnan(r)) | (np.isinf(g) & (g == r))).sum())
    assert (c.nonfinite_mismatch > 0) == (not expected)


def test_compare_with_nan_weights_agrees_and_says_so(tmp_path):
    sd = lstm_state()
    sd["weight_hh_l0"][0, 0] = NAN
    torch.save(sd, tmp_path / "m.pt")
    code, out, err = cli("compare", "--params", str(tmp_path / "m.pt"), "--brief")
    assert code == 0, (out, err)
    assert "NaN/Inf on both sides at the same places: agree" in out
    code, out, err = cli("compare", "--params", str(tmp_path / "m.pt"), "--json")
    assert code == 0 and all(r["nonfinite_agree"] > 0 for r in json.loads(out)["results"] if r["tensor"] != "batch_sizes")
