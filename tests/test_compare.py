"""compare: the tolerance rule on hand-made arrays, the default tolerances, compare.run on
the CPU (and on CUDA where there is one), and the copy-pastable PyTorch snippet, executed."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from rnn_cli.core import compare
from rnn_cli.core import torch_run
from rnn_cli.views import code as views
from rnn_cli.core.compare import Tolerance, check_tensor, default_tolerance
from rnn_cli.core.config import RunConfig

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


LSTM = dict(cell="lstm", nonlinearity=None)
GRU = dict(cell="gru", nonlinearity=None)

CONFIGS = {
    "default": dict(),
    "rnn_relu_2layers_bidirectional_batch_first": dict(
        nonlinearity="relu", num_layers=2, bidirectional=True, batch_first=True, batch=3
    ),
    "unbatched_h0_random": dict(batch=None, h0="random", num_layers=2),
    "lstm_proj_2layers_bidirectional": dict(**LSTM, proj_size=3, num_layers=2, bidirectional=True, batch=2, h0="random"),
    "gru_packed_unsorted_batch_first": dict(
        **GRU, num_layers=2, bidirectional=True, batch=3, lengths=(4, 10, 1), batch_first=True, h0="random"
    ),
    "lstm_packed_no_bias": dict(**LSTM, bias=False, batch=3, lengths=(10, 7, 3), bidirectional=True),
}


# ---- check_tensor: the rule |got - ref| <= atol + rtol * |ref| -------------------------------


def test_check_tensor_shape_mismatch_is_not_ok():
    c = check_tensor("output", np.zeros((2, 3)), np.zeros((3, 2)), Tolerance(1.0, 1.0, "test"))
    assert c.ok is False
    assert (c.torch_shape, c.reference_shape) == ((2, 3), (3, 2))
    assert c.max_abs_diff is None and c.max_rel_diff is None


@pytest.mark.parametrize("side", ["got", "ref"])
def test_check_tensor_nan_is_not_ok(side):
    a, b = np.array([1.0, 2.0]), np.array([1.0, 2.0])
    (a if side == "got" else b)[1] = np.nan
    assert check_tensor("h_n", a, b, Tolerance(1e9, 1e9, "test")).ok is False


def test_check_tensor_identical_arrays_are_ok():
    a = np.array([[0.5, -0.25], [0.0, 3.0]])
    c = check_tensor("h_n", a.copy(), a, Tolerance(0.0, 0.0, "exact"))
    assert c.ok is True
    assert (c.max_abs_diff, c.max_rel_diff) == (0.0, 0.0)


# Binary-exact numbers: ref 2.0, atol 0.25, rtol 0.5 -> the bound is 0.25 + 0.5*2 = 1.25 exactly.
# The failing cases sit the smallest representable step outside it (got - ref stays exact).
@pytest.mark.parametrize(
    "got, ok",
    [
        pytest.param(3.25, True, id="upper_boundary_passes"),
        pytest.param(3.25 + 2**-51, False, id="just_above_fails"),
        pytest.param(0.75, True, id="lower_boundary_passes"),
        pytest.param(0.75 - 2**-52, False, id="just_below_fails"),
    ],
)
def test_check_tensor_boundary_is_inclusive(got, ok):
    assert check_tensor("output", np.array([got]), np.array([2.0]), Tolerance(0.25, 0.5, "test")).ok is ok


def test_check_tensor_rtol_scales_by_the_reference():
    """|3 - 1| = 2 > 0 + 1*|ref| = 1: fails, though it would pass if scaled by |got| = 3."""
    assert check_tensor("output", np.array([3.0]), np.array([1.0]), Tolerance(0.0, 1.0, "test")).ok is False
    assert check_tensor("output", np.array([1.0]), np.array([3.0]), Tolerance(0.0, 1.0, "test")).ok is True
    assert check_tensor("output", np.array([-3.0]), np.array([-2.0]), Tolerance(0.0, 0.5, "test")).ok is True  # |ref| = 2


def test_check_tensor_atol_covers_zero_reference():
    c = check_tensor("output", np.array([1e-6, 0.0]), np.array([0.0, 0.0]), Tolerance(1e-5, 1e-5, "test"))
    assert c.ok is True
    assert c.max_abs_diff == 1e-6
    # relative error is reported only where |ref| > atol, so a zero reference adds none
    assert c.max_rel_diff == 0.0


def test_check_tensor_reports_max_abs_and_rel_diff():
    c = check_tensor("output", np.array([1.0, 2.5]), np.array([1.5, 2.0]), Tolerance(1.0, 0.0, "test"))
    assert c.max_abs_diff == 0.5
    assert c.max_rel_diff == pytest.approx(1 / 3)  # 0.5/1.5 beats 0.5/2.0
    assert c.ok is True


def test_check_tensor_float32_against_float64():
    got = np.array([0.1], dtype=np.float32)  # 0.100000001490116...
    c = check_tensor("output", got, np.array([0.1]), Tolerance(0.0, 0.0, "exact"))
    assert c.ok is False
    assert c.max_abs_diff == pytest.approx(abs(float(got[0]) - 0.1))
    assert check_tensor("output", got, np.array([0.1]), Tolerance(1e-7, 0.0, "test")).ok is True


def test_check_tensor_empty_is_ok():
    assert check_tensor("batch_sizes", np.zeros((0, 3)), np.zeros((0, 3)), Tolerance(0.0, 0.0, "exact")).ok is True


# ---- default tolerances ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, on_cuda, tf32, expected",
    [
        pytest.param("float64", False, None, (1e-10, 1e-10), id="float64_cpu"),
        pytest.param("float64", True, None, (1e-10, 1e-10), id="float64_cuda"),
        pytest.param("float32", False, None, (1e-5, 1e-5), id="float32_cpu"),
        pytest.param("float32", True, False, (1e-4, 1e-4), id="float32_cuda_no_tf32"),
        pytest.param("float32", True, True, (5e-3, 5e-3), id="float32_cuda_tf32"),
    ],
)
def test_default_tolerance(dtype, on_cuda, tf32, expected):
    tol = default_tolerance(dtype, on_cuda, tf32)
    assert (tol.atol, tol.rtol) == expected
    assert tol.why  # printed next to the numbers


# ---- compare.run on the CPU ---------------------------------------------------------------------


def expected_names(cfg: RunConfig) -> list[str]:
    return ["output", "h_n"] + (["c_n"] if cfg.has_c else []) + (["batch_sizes"] if cfg.lengths else [])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", CONFIGS)
def test_compare_passes_on_cpu(name, dtype):
    cfg = RunConfig(**CONFIGS[name], dtype=dtype)
    cmp = compare.run(cfg)
    assert cmp.ok, [c for c in cmp.checks if not c.ok]
    assert [c.name for c in cmp.checks] == expected_names(cfg)
    assert cmp.tolerance == default_tolerance(dtype, False, None)
    assert (cmp.torch.device, cmp.torch.tf32) == ("cpu", None)
    assert cmp.reference.implementation == "manual" and cmp.reference.cfg.dtype == "float64"
    for c in cmp.checks:
        assert c.torch_shape == c.reference_shape
        assert c.max_abs_diff <= cmp.tolerance.atol + cmp.tolerance.rtol  # outputs are O(1)


def test_compare_exact_tolerance_reports_float32_rounding():
    cmp = compare.run(RunConfig(num_layers=2, bidirectional=True), atol=0.0, rtol=0.0)
    assert cmp.tolerance == Tolerance(0.0, 0.0, "atol: --atol; rtol: --rtol")
    assert cmp.ok is False
    assert not cmp.checks[0].ok and cmp.checks[0].max_abs_diff > 0  # float32 output vs float64


def test_compare_one_override_keeps_the_other_default():
    cmp = compare.run(RunConfig(), atol=0.5)
    assert cmp.tolerance == Tolerance(0.5, 1e-5, "atol: --atol; rtol: default (float32, CPU)")
    cmp = compare.run(RunConfig(dtype="float64"), rtol=0.25)
    assert cmp.tolerance == Tolerance(1e-10, 0.25, "atol: default (float64); rtol: --rtol")


@pytest.mark.parametrize(
    "cfg_kwargs, corrupt",
    [
        pytest.param(dict(num_layers=2, bidirectional=True), "h_n", id="rnn_h_n"),
        pytest.param(dict(**LSTM, proj_size=2), "c_n", id="lstm_c_n"),
        pytest.param(dict(**GRU, batch=2, lengths=(10, 4)), "output", id="gru_packed_output"),
    ],
)
def test_compare_catches_a_wrong_torch_result(monkeypatch, cfg_kwargs, corrupt):
    """A torch side that is off by 1e-3 in one element of one tensor fails that check only."""
    real_run = torch_run.run

    def off_by_a_little(*args, **kwargs):
        result = real_run(*args, **kwargs)
        result.tensors[corrupt] = result.tensors[corrupt].copy()
        result.tensors[corrupt].reshape(-1)[0] += 1e-3
        return result

    monkeypatch.setattr(torch_run, "run", off_by_a_little)
    cmp = compare.run(RunConfig(**cfg_kwargs))
    assert cmp.ok is False
    assert {c.name: c.ok for c in cmp.checks if not c.ok} == {corrupt: False}


# ---- the copy-pastable PyTorch snippet, executed ---------------------------------------------------

SNIPPETS = {
    "default": dict(),
    "rnn_relu_no_bias_2layers_bidirectional_batch_first_h0_random": dict(
        nonlinearity="relu", bias=False, num_layers=2, bidirectional=True, batch_first=True, batch=3, h0="random"
    ),
    "unbatched_gru_3layers_h0_random": dict(**GRU, batch=None, num_layers=3, h0="random"),
    "lstm_proj_2layers_bidirectional_h0_random": dict(**LSTM, proj_size=3, num_layers=2, bidirectional=True, h0="random"),
    "lstm_proj_packed_unsorted_batch_first_h0_random": dict(
        **LSTM, proj_size=2, batch=3, lengths=(3, 10, 6), batch_first=True, bidirectional=True, h0="random"
    ),
    "gru_packed_float64": dict(**GRU, batch=2, lengths=(5, 2), seq_len=5, dtype="float64"),
    "rnn_packed_all_ones_time_major": dict(batch=3, lengths=(1, 1, 1), num_layers=2),
    "unbatched_lstm": dict(**LSTM, batch=None, input_size=4, hidden_size=8),
}


def exec_snippet(code: str) -> dict:
    namespace: dict = {}
    torch.manual_seed(0)
    exec(compile(code, "<pytorch_code>", "exec"), namespace)
    return namespace


def shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@pytest.mark.parametrize("name", SNIPPETS)
def test_pytorch_code_runs_and_gives_the_shapes(name):
    cfg = RunConfig(**SNIPPETS[name])
    code = views.pytorch_code(cfg)
    ns = exec_snippet(code)
    shapes = cfg.shapes()
    assert tuple(ns["x"].shape) == shapes["input"]
    assert tuple(ns["output"].shape) == shapes["output"]
    assert tuple(ns["h_n"].shape) == shapes["h_n"]
    if cfg.has_c:
        assert tuple(ns["c_n"].shape) == shapes["c_n"]
    else:
        assert "c_n" not in ns
    if cfg.h0 == "random":
        assert tuple(ns["h_0"].shape) == shapes["h_0"]
        if cfg.has_c:
            assert tuple(ns["c_0"].shape) == shapes["c_0"]
    else:
        assert "h_0" not in ns
    assert ns["output"].dtype == getattr(torch, cfg.dtype)
    module = ns[cfg.cell]
    assert [(n, tuple(p.shape)) for n, p in module.named_parameters()] == list(cfg.parameter_shapes().items())
    assert module.batch_first == cfg.batch_first
    if cfg.cell == "rnn":
        assert module.nonlinearity == cfg.nonlinearity

    # the shape comments in the snippet agree with what the snippet itself produced
    result_line = f"# output {shape_text(ns['output'].shape)}, h_n {shape_text(ns['h_n'].shape)}"
    if cfg.has_c:
        result_line += f", c_n {shape_text(ns['c_n'].shape)}"
    assert result_line in code.splitlines()
    if cfg.lengths is not None:
        packed = ns["packed_out"]
        assert tuple(packed.data.shape) == shapes["packed_data"]
        assert packed.batch_sizes.tolist() == cfg.batch_sizes()
        assert f"# packed_out.data {shape_text(packed.data.shape)}" in code.splitlines()
        assert f"# packed_out.batch_sizes {packed.batch_sizes.tolist()}" in code.splitlines()
        # padding past each length is zero in the unpacked output, as the run shows it
        out = ns["output"].transpose(0, 1) if cfg.batch_first else ns["output"]
        for n, length in enumerate(cfg.lengths):
            assert torch.all(out[length:, n] == 0)


def test_pytorch_code_matches_our_torch_run_with_the_same_numbers():
    """Fed the run's own parameters, input and h_0, the snippet's module gives torch_run's numbers."""
    cfg = RunConfig(
        **LSTM, proj_size=2, num_layers=2, bidirectional=True, batch=3, lengths=(3, 10, 6), batch_first=True,
        h0="random", dtype="float64",
    )
    result = torch_run.run(cfg, keep_layers=False)
    ns = exec_snippet(views.pytorch_code(cfg))
    module = ns[cfg.cell]
    with torch.no_grad():
        for n, p in module.named_parameters():
            p.copy_(torch.from_numpy(result.params[n]))
    x = torch.from_numpy(result.tensors["input"])
    hx = (torch.from_numpy(result.tensors["h_0"]), torch.from_numpy(result.tensors["c_0"]))
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(cfg.lengths), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, (h_n, c_n) = module(packed, hx)
    output, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=cfg.seq_len)
    np.testing.assert_array_equal(output.numpy(), result.tensors["output"])
    np.testing.assert_array_equal(h_n.numpy(), result.tensors["h_n"])
    np.testing.assert_array_equal(c_n.numpy(), result.tensors["c_n"])


# ---- CUDA -----------------------------------------------------------------------------------------

CUDA_CONFIGS = {
    "rnn_2layers_bidirectional": dict(num_layers=2, bidirectional=True, batch=4),
    "lstm_proj_batch_first": dict(**LSTM, proj_size=3, batch=4, batch_first=True, h0="random"),
    "gru_packed_unsorted": dict(**GRU, num_layers=2, bidirectional=True, batch=3, lengths=(4, 10, 7), h0="random"),
}


@pytest.mark.parametrize(
    "dtype, tf32",
    [
        pytest.param("float32", True, id="float32_tf32"),
        pytest.param("float32", False, id="float32_no_tf32"),
        pytest.param("float64", True, id="float64"),
    ],
)
@pytest.mark.parametrize("name", CUDA_CONFIGS)
@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compare_passes_on_cuda_with_default_tolerance(name, dtype, tf32):
    cfg = RunConfig(**CUDA_CONFIGS[name], dtype=dtype, device="cuda")
    cmp = compare.run(cfg, tf32=tf32)
    assert cmp.torch.device.startswith("cuda")
    reported_tf32 = tf32 if dtype == "float32" else None
    assert cmp.torch.tf32 == reported_tf32
    assert cmp.tolerance == default_tolerance(dtype, True, reported_tf32)
    assert [c.name for c in cmp.checks] == expected_names(cfg)
    assert cmp.ok, [c for c in cmp.checks if not c.ok]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compare_on_cuda_restores_tf32_setting():
    before = torch.backends.cudnn.rnn.fp32_precision
    compare.run(RunConfig(device="cuda"), tf32=before != "tf32")
    assert torch.backends.cudnn.rnn.fp32_precision == before


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pytorch_code_runs_on_cuda():
    cfg = RunConfig(
        **LSTM, proj_size=2, num_layers=2, bidirectional=True, batch=3, lengths=(3, 10, 6), h0="random", device="cuda"
    )
    ns = exec_snippet(views.pytorch_code(cfg, device="cuda"))
    assert ns["output"].device.type == "cuda"
    assert (tuple(ns["output"].shape), tuple(ns["h_n"].shape), tuple(ns["c_n"].shape)) == (
        cfg.shapes()["output"],
        cfg.shapes()["h_n"],
        cfg.shapes()["c_n"],
    )
