"""Guards against bugs the rest of the suite could not see (each test names its bug).

A review planted 30 bugs; these four got through every other test, because both sides of
every comparison were fed the same sample, or a check's tolerance was never probed at its
edge, or a branch never ran.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.core import compare
from rnn_cli import documents
from rnn_cli.core import runs
from rnn_cli.core import torch_run
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import Sample, draw
from rnn_cli.core.sources import h_n_sources


def run_json(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# Bug: `--h0 random` silently gives zeros (or ignores the seed) -- manual and torch would
# still agree, since both get the same sample.
@pytest.mark.parametrize("command", ["manual", "torch"])
def test_h0_random_is_random_nonzero_and_follows_the_seed(command):
    docs = {seed: run_json(command, "--cell", "lstm", "--h0", "random", "--seed", str(seed)) for seed in (0, 1)}
    for name in ("h_0", "c_0"):
        a = np.array(docs[0]["tensors"][name]["values"])
        b = np.array(docs[1]["tensors"][name]["values"])
        assert np.all(a != 0), name  # standard normal draws: none is exactly zero
        assert np.std(a) > 0.3, name  # spread like N(0, 1), not a constant
        assert not np.array_equal(a, b), f"{name} does not depend on --seed"
    zeros = run_json(command, "--cell", "lstm", "--seed", "0")
    assert not np.allclose(zeros["tensors"]["h_n"]["values"], docs[0]["tensors"]["h_n"]["values"])


# Bug: the h_n check's tolerance loosened (or its comparison inverted). A lower layer's slice
# is checked against a re-run of that layer alone, with compare's rule: float32 on the CPU
# |a - b| <= 1e-5 + 1e-5 * |b| (README, "compare"); the last layer's slices are the numbers
# torch returned, equal to the bit on the CPU.
@pytest.mark.parametrize("factor, ok", [(0.9, True), (1.1, False)])
def test_h_n_check_of_a_lower_layer_fails_just_above_its_tolerance(factor, ok):
    cfg = RunConfig(cell="gru", num_layers=2, bidirectional=True, batch=2)
    result = torch_run.run(cfg, keep_layers=True)
    h_n = result.tensors["h_n"].copy()
    k, n, j = 1, 1, 2  # layer 0's backward direction, second sequence, one feature
    picked = result.layer_outputs[0][0, n, cfg.H_out + j]  # its source: layer 0's output at step 0
    h_n[k, n, j] = picked + np.float32(factor * (1e-5 + 1e-5 * abs(float(picked))))
    moved = replace(result, tensors={**result.tensors, "h_n": h_n})
    by_index = {s.index: s for s in h_n_sources(moved) if s.state == "h_n"}
    assert by_index[k].ok is ok
    assert all(s.ok for i, s in by_index.items() if i != k)


def test_h_n_check_of_the_last_layer_is_exact_on_the_cpu():
    cfg = RunConfig(cell="gru", num_layers=2, bidirectional=True, batch=2)
    result = torch_run.run(cfg, keep_layers=True)
    h_n = result.tensors["h_n"].copy()
    h_n[3, 1, 2] = np.nextafter(h_n[3, 1, 2], np.float32(np.inf))  # one float32 step away
    moved = replace(result, tensors={**result.tensors, "h_n": h_n})
    assert [s.ok for s in h_n_sources(moved) if s.state == "h_n"] == [True, True, True, False]


# Bug: padding positions of the input left non-zero: packed torch never reads them, the numpy
# mask never reads them, but `--no-pack` and any user copying the input would.
def test_padding_positions_of_the_input_are_exactly_zero():
    lengths = (6, 2, 4)
    doc = run_json("manual", "--lengths", ",".join(map(str, lengths)), "--batch", "3", "--seq-len", "6", "--batch-first")
    x = np.array(doc["tensors"]["input"]["values"])  # (N, L, H_in)
    for n, length in enumerate(lengths):
        assert np.all(x[n, length:] == 0), n
        assert np.all(x[n, :length] != 0), n  # real steps are standard normal draws


# Bug: the NaN-to-null branch of the JSON removed (json.dumps(allow_nan=False) would raise),
# or compare calling an overflowed run a pass.
def test_an_overflowing_run_gives_null_in_json_and_a_failing_compare():
    cfg = RunConfig(nonlinearity="relu", num_layers=3, hidden_size=4, input_size=3, seq_len=6)
    sample = draw(cfg)
    huge = Sample({k: v * np.float32(1e15) for k, v in sample.params.items()}, sample.x, sample.h_0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the overflow itself
        result = runs.run("manual", cfg, huge)  # the whole result: sources checked
        out = result.tensors["output"]
        assert not np.isfinite(out).all()  # the run really overflowed
        buf = io.StringIO()
        documents.write_document(documents.run_document(result, "manual", with_values=True), buf)
        doc = json.loads(buf.getvalue())  # strict JSON: NaN or Infinity would not be written
        assert "null" in buf.getvalue() and "NaN" not in buf.getvalue() and "Infinity" not in buf.getvalue()
        values = np.array(doc["tensors"]["output"]["values"], dtype=object)
        assert all(v is None for v in values[~np.isfinite(out)])
        check = compare.check_tensor("output", out, np.zeros_like(out, dtype=np.float64), compare.default_tolerance("float32", False, None))
    assert check.ok is False
    assert documents.finite(check.max_abs_diff) is None  # inf is reported as null in JSON
