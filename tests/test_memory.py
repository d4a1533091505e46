"""The memory guard: the estimate holds against measured peaks, big runs are refused before
they allocate, and an allocation that still fails ends as one line and exit 2.
The full estimate/peak matrix is benchmarks/memory.py (benchmarks/MEMORY.md)."""

from __future__ import annotations

import io
import json
import math
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import rnn_cli.core.config
import rnn_cli.core.guard
from rnn_cli import documents
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig
from rnn_cli.core.guard import estimate_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GiB = 2**30

# Runs the CLI in this interpreter and prints its own peak RSS (VmHWM) as it exits.
PEAK = """
import atexit, sys
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            sys.stderr.write('PEAK ' + line.split()[1] + '\\n')
atexit.register(peak)
sys.argv = ['rnn-cli'] + sys.argv[1:]
from rnn_cli.cli.app import main
main()
"""


def _peak_bytes(args: list[str], tmp_path) -> int:
    out = tmp_path / "stdout"
    with open(out, "wb") as f:
        done = subprocess.run([sys.executable, "-c", PEAK, *args], stdout=f, stderr=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, check=True)
    return int(done.stderr.split("PEAK ")[-1].split()[0]) * 1024


def _tiny(args: list[str]) -> list[str]:
    """The same command and output at the smallest size: the interpreter and imports."""
    sizes = {"--seq-len": "1", "--batch": "1", "--hidden-size": "2", "--input-size": "1"}
    return [sizes.get(args[i - 1], a) if i else a for i, a in enumerate(args)]


@pytest.mark.parametrize(
    "command, cfg, as_json, values",
    [
        # before streaming, json.dumps of the whole document held ~90 bytes per number: 5x this estimate
        ("manual", RunConfig(seq_len=8000, batch=8, hidden_size=16), True, True),
        ("torch", RunConfig(cell="lstm", seq_len=200, batch=512, hidden_size=32), True, True),
        # compare's float64 reference is most of its peak: counted at float32's 4 bytes, the
        # estimate fell below what this run holds
        ("compare", RunConfig(cell="rnn", seq_len=250, batch=512, hidden_size=32, input_size=8), True, True),
    ],
    ids=["manual-json-long", "torch-lstm-json", "compare-rnn-json"],
)
def test_estimate_is_not_below_the_measured_peak(command, cfg, as_json, values, tmp_path):
    args = [command, "--cell", cfg.cell, "--seq-len", str(cfg.seq_len), "--batch", str(cfg.N),
            "--hidden-size", str(cfg.hidden_size), "--input-size", str(cfg.input_size), "--layers", str(cfg.num_layers)]
    args += ["--json"] if as_json else []
    held = _peak_bytes(args, tmp_path) - _peak_bytes(_tiny(args), tmp_path)
    assert estimate_bytes(cfg, command, as_json, values) >= held


def _expected_json(obj) -> str:
    """json.dumps with arrays as nested lists and non-finite numbers as null, by hand."""
    def plain(o):
        if isinstance(o, np.ndarray):
            return plain(o.tolist())
        if isinstance(o, dict):
            return {k: plain(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [plain(v) for v in o]
        return None if isinstance(o, float) and not math.isfinite(o) else o
    return json.dumps(plain(obj), allow_nan=False)


def test_streamed_document_is_byte_identical_to_json_dumps(monkeypatch):
    monkeypatch.setattr(documents, "CHUNK", 7)  # every array below is cut into pieces
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 7
    a[1, 2, 3], a[2, 0, 0], a[0, 0, 1] = np.nan, np.inf, -np.inf
    doc = {
        "command": "manual",
        "tensors": {"output": {"shape": [3, 4, 5], "values": a}, "long": {"values": np.linspace(-1, 1, 23)}},
        "batch_sizes": np.array([3, 2, 2, 1], dtype=np.int64),
        "small": np.ones((2, 2)),
        "parameters": [{"name": "weight_ih_l0", "shape": [8, 5]}, {"name": "é", "numel": 40}],
        "empty": [], "nothing": {}, "ok": None, "tol": 1e-5,
    }
    f = io.StringIO()
    documents.write_document(doc, f)
    assert f.getvalue() == _expected_json(doc)


def test_torch_with_a_huge_sequence_is_refused_before_allocating(monkeypatch):
    monkeypatch.setattr(rnn_cli.core.guard, "available_memory", lambda: (24 * GiB, "MemAvailable"))
    result = CliRunner().invoke(app, ["torch", "--seq-len", "100000000"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("rnn-cli: error: this configuration needs about ")
    assert result.stderr.count("\n") == 1


def test_refusal_names_what_is_needed_and_what_is_available(monkeypatch):
    monkeypatch.setattr(rnn_cli.core.guard, "available_memory", lambda: (GiB, "MemAvailable"))
    # the input alone: 1e6 * 64 * 64 float32 = 15.3 GiB (by hand)
    result = CliRunner().invoke(app, ["manual", "--seq-len", "1000000", "--batch", "64", "--input-size", "64", "--no-values"])
    assert result.exit_code == 2
    line = result.stderr
    assert "more than the 1.0 GiB available" in line
    needed = float(line.split("needs about ")[1].split(" GiB")[0])
    assert needed >= 1e6 * 64 * 64 * 4 / GiB


def test_memory_error_in_a_run_is_one_line_and_exit_2(monkeypatch):
    from rnn_cli.core import manual

    def run(*args, **kwargs):
        raise MemoryError("Unable to allocate 1.49 GiB for an array with shape (100, 4000000) and data type float32")

    monkeypatch.setattr(manual, "run", run)
    result = CliRunner().invoke(app, ["manual"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        "rnn-cli: error: out of memory: Unable to allocate 1.49 GiB for an array with shape (100, 4000000) "
        "and data type float32; reduce --hidden-size, --seq-len, --batch or --layers\n"
    )


def test_address_space_limit_ends_in_one_line_not_a_traceback(tmp_path):
    """Under `ulimit -v` the guard (MemAvailable here) lets the run start; numpy's MemoryError ends it."""
    limit = 2_500_000_000

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-m", "rnn_cli", "manual", "--seq-len", "4000", "--batch", "64", "--hidden-size", "4096", "--no-values"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, preexec_fn=cap, timeout=600,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("rnn-cli: error: ") and done.stderr.count("\n") == 1, done.stderr


def _under_address_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "rnn_cli", *args],
        capture_output=True, text=True, cwd=ROOT, preexec_fn=cap, timeout=600,
        env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip


def test_the_guard_reads_ulimit_v_and_refuses_before_importing_torch():
    """Bug caught: the guard read MemAvailable only, so under `ulimit -v` torch --seq-len 1e8
    passed it and ended in a MemoryError traceback (or the OOM killer) after importing torch."""
    done = _under_address_limit(8_000_000_000, "torch", "--seq-len", "100000000")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.count("\n") == 1 and "available under ulimit -v" in done.stderr, done.stderr


# The other case, `manual --json --seq-len 400000 --batch 8 --hidden-size 16`, behaves
# the same (it finishes in about a minute: 400,000 steps of Python), too slow for the suite.
# The runs under 2.5 GB (`--seq-len 2000 --batch 64 --hidden-size 1024`, peak 1.74 GB
# of address space; `--json --seq-len 40000 --batch 8 --hidden-size 16`) took 28 s and 12 s idle,
# over 100 s on a busy machine: here each holds a quarter of the numbers (the run's peak above
# the interpreter's ~0.16 GB: 0.43 GB instead of 1.58 GB) under a limit cut in proportion, 1 GB,
# so the guard and the allocations meet the limit as they did. One BLAS/OpenMP thread keeps the
# interpreter's own address space the same on a machine with many cores.
@pytest.mark.parametrize("args", [
    ("manual", "--seq-len", "500", "--batch", "64", "--hidden-size", "1024", "--no-values"),
    ("manual", "--json", "--seq-len", "2500", "--batch", "32", "--hidden-size", "16"),
])  # fmt: skip
def test_under_an_address_limit_a_run_finishes_or_is_refused_in_one_line(args):
    done = _under_address_limit(1_000_000_000, *args)
    assert "Traceback" not in done.stderr
    if done.returncode == 0:
        assert done.stderr == ""
        if "--json" in args:
            json.loads(done.stdout)  # complete, valid
    else:
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.startswith("rnn-cli: error: ") and done.stderr.count("\n") == 1, done.stderr
