"""Calibration of the memory guard (issue 20, issue 23): for every command and major flag, the
guard's estimate (guard.estimate_bytes, which asks each runner's peak_bytes) must be within
[1.0, 1.5] of the peak the run really reaches, measured at a small and a medium size.

Bug each case catches: a runner whose code allocates an array its formula leaves out (the
guard lets through runs that then hit MemoryError or the OOM killer: the ratio falls below
1.0), or a formula that counts an array the code no longer makes (the guard refuses runs
that fit: above 1.5). This is how the estimate stays right when someone changes a runner.
Each formula was broken on purpose once and its cases seen failing (the report of the
memory branch lists them).

The peak is peak RSS above the same command at the smallest size, in a child process forked
from one that imported numpy, torch and rnn-cli once (tests/memory_peak.py). Sizes: the
arrays dominate (about 90 to 400 MiB held), yet each run takes about a second of CPU.
benchmarks/memory.py runs these same cases and writes benchmarks/MEMORY.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from memory_peak import Peaks
from rnn_cli.core.config import RunConfig
from rnn_cli.core.guard import estimate_bytes

# One worker runs them all: one measuring server, and no two big runs beside each other.
pytestmark = pytest.mark.xdist_group("memory_calibration")

MEDIUM = 2.5  # the medium size: N (and lengths) times this


def _lengths(L: int, N: int) -> tuple[int, ...]:
    """Unequal lengths, L down to L - 59, so padding and packing matter."""
    return tuple(L - i % 60 for i in range(N))


@dataclass(frozen=True)
class Case:
    command: str
    cfg: RunConfig
    flags: tuple[str, ...] = ()

    @property
    def json(self) -> bool:
        return "--json" in self.flags

    @property
    def values(self) -> bool:
        """view.values: the value tables (and so the lower layers' outputs) are kept."""
        return self.command in ("manual", "torch") and "--no-values" not in self.flags

    @property
    def grad(self) -> bool:
        return "--grad" in self.flags

    def sized(self, size: str) -> "Case":
        if size == "small":
            return self
        N = int(self.cfg.N * MEDIUM)
        lengths = None if self.cfg.lengths is None else _lengths(self.cfg.seq_len, N)
        return replace(self, cfg=replace(self.cfg, batch=N, lengths=lengths))

    def estimate(self) -> int:
        return estimate_bytes(self.cfg, self.command, self.json, self.values, self.grad)


def _cfg(cell: str, L: int, N: int, H: int, H_in: int = 16, packed: bool | None = None, **kw) -> RunConfig:
    lengths = None if packed is None else _lengths(L, N)
    return RunConfig(cell=cell, seq_len=L, batch=N, hidden_size=H, input_size=H_in, lengths=lengths,
                     pack=packed is not False, **kw)


# id -> case at the small size. Formula each one leans on, in parentheses.
CASES = {
    # manual.peak_bytes: the output, the lower layers' outputs, x_proj's block buffers
    "manual-rnn": Case("manual", _cfg("rnn", 100, 1024, 128)),
    "manual-lstm-json": Case("manual", _cfg("lstm", 100, 512, 256, proj_size=128), ("--json",)),
    "manual-gru-float64": Case("manual", _cfg("gru", 100, 384, 64, dtype="float64")),
    "manual-gru-2-layers-bidirectional": Case("manual", _cfg("gru", 50, 768, 64, num_layers=2, bidirectional=True)),
    "manual-gru-packed": Case("manual", _cfg("gru", 100, 512, 64, packed=True)),
    # runs.peak_bytes: the packed rerun beside the result (the under- and over-count)
    "manual-rnn-no-pack": Case("manual", _cfg("rnn", 100, 1024, 128, packed=False)),
    "manual-lstm-no-pack-json": Case("manual", _cfg("lstm", 100, 384, 256, proj_size=128, packed=False), ("--json",)),
    # backward.peak_bytes: every step's cache
    "manual-lstm-grad": Case("manual", _cfg("lstm", 50, 512, 64), ("--grad", "--json")),
    "manual-gru-grad": Case("manual", _cfg("gru", 50, 768, 64), ("--grad",)),
    # torch_peak.forward_bytes: ATen's projection, step outputs and stack; oneDNN's LSTM
    # (torch's output is above glibc's largest mmap threshold, 32 MiB, at both sizes: below it a
    # freed block may be reused or not, and the same small run measured 81 or 103 MiB)
    "torch-rnn": Case("torch", _cfg("rnn", 100, 768, 128)),
    "torch-lstm": Case("torch", _cfg("lstm", 100, 1024, 128)),
    "torch-lstm-packed": Case("torch", _cfg("lstm", 100, 1024, 64, packed=True)),
    "torch-gru-float64": Case("torch", _cfg("gru", 100, 256, 64, dtype="float64")),
    "torch-rnn-no-pack-json": Case("torch", _cfg("rnn", 100, 768, 128, packed=False), ("--json", "--no-values")),
    # torch_peak.grad_bytes: autograd's saved tensors
    "torch-lstm-grad": Case("torch", _cfg("lstm", 50, 512, 64), ("--grad", "--json", "--no-values")),
    "torch-gru-grad": Case("torch", _cfg("gru", 50, 512, 64), ("--grad",)),
    # compare.peak_bytes: the float64 reference beside torch's result, the checks
    "compare-gru": Case("compare", _cfg("gru", 100, 256, 64)),
    "compare-lstm-grad": Case("compare", _cfg("lstm", 50, 512, 64), ("--grad",)),
    # bench.peak_bytes: one run at a time beside onnxruntime's session
    "bench-gru": Case("bench", _cfg("gru", 100, 256, 64)),
    "bench-lstm-grad": Case("bench", _cfg("lstm", 50, 512, 64), ("--grad",)),
}


@pytest.fixture(scope="module")
def peaks(tmp_path_factory):
    with Peaks(str(tmp_path_factory.mktemp("memory"))) as server:
        yield server


@pytest.mark.parametrize("size", ["small", "medium"])
@pytest.mark.parametrize("name", list(CASES))
def test_estimate_is_within_1_to_1_5_of_the_measured_peak(name, size, peaks):
    case = CASES[name].sized(size)
    held = peaks.held(case.command, case.cfg, case.flags)
    ratio = case.estimate() / held
    print(f"\nRATIO {ratio:.2f} held {held / 2**20:.1f} MiB estimate {case.estimate() / 2**20:.1f} MiB  {name} ({size})")
    assert 1.0 <= ratio <= 1.5, (
        f"{name} ({size}): estimate {case.estimate() / 2**20:.1f} MiB, measured peak {held / 2**20:.1f} MiB: "
        f"ratio {ratio:.2f}")
