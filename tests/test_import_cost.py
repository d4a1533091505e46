"""Issue 23: the memory guard counts what the imports it allows will cost. Under `ulimit -v`
(`prlimit --as`) what counts is address space: importing torch maps about twice what it
touches. The constants in rnn_cli.core.guard.IMPORT_ADDRESS_SPACE are calibrated here, on the
machine the tests run on: each must be at least the measured VmSize growth and at most 1.5x it.
Then the guard must refuse, in one line, a torch run whose import cannot fit (before it
imports torch, which would fail with ImportError or SystemError), and let one through that fits.
Every measurement and limit is in a child process."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from rnn_cli.core.guard import IMPORT_ADDRESS_SPACE

MEASURE = r"""
import json
def vm():
    for line in open('/proc/self/status'):
        if line.startswith('VmSize:'):
            return int(line.split()[1]) * 1024
import rnn_cli.cli.entry, rnn_cli.cli.app
base = vm()
import numpy
after_numpy = vm()
import torch
print(json.dumps({"base": base, "numpy": after_numpy - base, "torch": vm() - after_numpy}))
"""


@pytest.fixture(scope="module")
def measured() -> dict:
    r = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(r.stdout)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_import_costs_are_calibrated_within_1_to_1_5_of_the_measured_growth(library, measured):
    assert measured[library] <= IMPORT_ADDRESS_SPACE[library] <= 1.5 * measured[library], (
        f"{library}: measured {measured[library] / 2**20:.0f} MiB of address space, "
        f"config says {IMPORT_ADDRESS_SPACE[library] / 2**20:.0f} MiB")


def _torch_under(limit: int) -> subprocess.CompletedProcess:
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "rnn_cli", "torch", "--brief"], capture_output=True, text=True,
                          preexec_fn=cap, timeout=120)


def test_the_guard_refuses_before_importing_torch_when_torch_cannot_fit(measured):
    """Bug: the guard counted 256 MiB for torch and passed; `import torch` then failed to map
    libtorch_cpu.so (a traceback). Limit: room for numpy and half of torch's address space."""
    r = _torch_under(measured["base"] + measured["numpy"] + measured["torch"] // 2)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "address space" in lines[0] and "ulimit -v" in lines[0], lines


def test_a_torch_run_that_fits_the_address_space_is_let_through(measured):
    r = _torch_under(measured["base"] + int(1.5 * (measured["numpy"] + measured["torch"])) + 400 * 2**20)
    assert r.returncode == 0 and r.stderr == "", r.stderr[-2000:]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_torch_grad_estimate_is_within_1_to_1_5_of_the_measured_peak(cell, tmp_path):
    """Bug: torch --grad was estimated at 0.71-0.78 of its peak (the guard let through runs that
    then hit MemoryError). Peak RSS above the same command at the smallest size, as
    tests/test_memory.py measures it."""
    from rnn_cli.core.config import RunConfig
    from rnn_cli.core.guard import estimate_bytes
    from test_memory import _peak_bytes, _tiny

    cfg = RunConfig(cell=cell, seq_len=200, batch=256, hidden_size=64)
    args = ["torch", "--cell", cell, "--seq-len", "200", "--batch", "256", "--hidden-size", "64",
            "--input-size", str(cfg.input_size), "--grad", "--json", "--no-values"]
    held = _peak_bytes(args, tmp_path) - _peak_bytes(_tiny(args), tmp_path)
    ratio = estimate_bytes(cfg, "torch", json=True, values=False, grad=True) / held
    assert 1.0 <= ratio <= 1.5, ratio
