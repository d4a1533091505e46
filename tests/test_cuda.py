"""CUDA: the compare matrix on the GPU, with TF32 allowed and forbidden, and a clean error
for a CUDA device this machine does not have. Skipped without CUDA.

Each case's largest |cuDNN - float64 reference| is recorded and printed at the end of the
module as a table (straight to the terminal, so `pytest -q` on a GPU machine shows it).
"""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from rnn_cli.core import compare
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CELLS = ["rnn", "lstm", "gru"]
LAYERS = [1, 2]
LENGTHS = [None, (10, 7, 3)]  # unsorted is covered by the property suite; packed here
# dtype, TF32 allowed, the default tolerance compare must pick (see compare.default_tolerance)
MODES = [("float32", True, 5e-3), ("float32", False, 1e-4), ("float64", False, 1e-10)]

RECORDED: list[tuple[str, float, float, float]] = []


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest):
    yield
    if not RECORDED:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        _write_summary(print)
        return
    with capture.global_and_fixture_disabled():  # past pytest's capture, onto the terminal
        _write_summary(reporter.write_line)


def _write_summary(write) -> None:
    name = torch.cuda.get_device_name(0)
    write("")
    write(f"CUDA compare matrix on {name}, torch {torch.__version__}: largest |torch - float64 reference|")
    write(f"{'case':58} {'max abs diff':>13} {'atol':>8} {'rtol':>8}")
    for case, diff, atol, rtol in RECORDED:
        write(f"{case:58} {diff:13.3e} {atol:8.0e} {rtol:8.0e}")
    worst = {}
    for case, diff, _, _ in RECORDED:
        mode = case.rsplit(" ", 1)[-1]
        worst[mode] = max(worst.get(mode, 0.0), diff)
    write("worst per mode: " + ", ".join(f"{mode} {diff:.3e}" for mode, diff in worst.items()))


@pytest.mark.parametrize("dtype, tf32, tolerance", MODES, ids=["float32-tf32", "float32-no-tf32", "float64"])
@pytest.mark.parametrize("lengths", LENGTHS, ids=["padded", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("layers", LAYERS, ids=lambda n: f"layers{n}")
@pytest.mark.parametrize("cell", CELLS)
def test_compare_passes_on_cuda(cell, layers, bidirectional, lengths, dtype, tf32, tolerance) -> None:
    cfg = RunConfig(
        cell=cell,
       
        input_size=5,
        hidden_size=8,
        num_layers=layers,
        bidirectional=bidirectional,
        seq_len=10,
        batch=3,
        lengths=lengths,
        dtype=dtype,
        device="cuda",
    )
    cmp = compare.run(cfg, tf32=tf32)
    assert cmp.torch.device.startswith("cuda")
    assert cmp.torch.tf32 == (tf32 if dtype == "float32" else None)
    assert (cmp.tolerance.atol, cmp.tolerance.rtol) == (tolerance, tolerance)
    diff = max(c.max_abs_diff for c in cmp.checks if c.max_abs_diff is not None)
    mode = dtype + ("-tf32" if tf32 else "-no-tf32" if dtype == "float32" else "")
    case = f"{cell} layers={layers} {'bi' if bidirectional else 'uni'} {'packed' if lengths else 'padded'} {mode}"
    RECORDED.append((case, diff, cmp.tolerance.atol, cmp.tolerance.rtol))
    failed = [(c.name, c.max_abs_diff, c.max_rel_diff) for c in cmp.checks if not c.ok]
    assert cmp.ok, f"{case}: outside {cmp.tolerance}: {failed}"


@pytest.mark.skipif(torch.cuda.device_count() >= 8, reason="this machine has a cuda:7")
@pytest.mark.parametrize("command", ["torch", "compare"])
def test_a_cuda_device_this_machine_lacks_is_a_clean_error(command: str) -> None:
    count = torch.cuda.device_count()
    result = CliRunner().invoke(app, [command, "--device", "cuda:7"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        f"rnn-cli: error: --device cuda:7: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}\n",
    )


def test_cli_compare_on_cuda_reports_tf32_and_passes() -> None:
    for flags, tf32 in (([], True), (["--no-tf32"], False)):
        result = CliRunner().invoke(app, ["compare", "--device", "cuda", "--json", "--no-values", *flags])
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        assert doc["ok"] is True
        assert doc["config"]["device"].startswith("cuda")
        assert doc["config"]["tf32"] is tf32
