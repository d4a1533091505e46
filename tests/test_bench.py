"""rnn-cli bench: the FLOP count, the timing loop's bookkeeping, the JSON and human views.

Speed itself is never asserted here (it is measured in benchmarks/): only that every
implementation ran, the times are positive and consistent, and the numbers reach the views.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import subprocess
import sys
import warnings
from contextlib import contextmanager
from dataclasses import replace
from math import prod

import pytest
from rich.console import Console
from typer.testing import CliRunner

from rnn_cli.core import bench
from rnn_cli import documents
from rnn_cli.views import bench as views
from rnn_cli.views.progress import LazyProgress
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig
from rnn_cli.core.cost import cost
from rnn_cli.core.sample import Provenance

TINY = dict(input_size=3, hidden_size=4, seq_len=5, batch=2)
# onnxruntime rows come with the onnx extra (onnx, onnxruntime, onnxscript)
HAVE_ORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "onnxscript"))
ROWS = ["manual", "torch"] + (["onnxruntime"] if HAVE_ORT else [])


def cfg_of(**kw) -> RunConfig:
    if kw.get("cell", "rnn") != "rnn":
        kw.setdefault("nonlinearity", None)
    return RunConfig(**kw)


# ---- the FLOP formula, against hand counts ----------------------------------------------


@pytest.mark.parametrize(
    "scenario, cfg, expected",
    [
        # x_t W_ih^T: 8x5 and h W_hh^T: 8x8 multiply-adds per step; 10 steps; 2 FLOPs each
        ("defaults", cfg_of(), 2 * 10 * (8 * 5 + 8 * 8)),
        # 3 gates of 3: W_ih 9x2, W_hh 9x3 per step; N*L = 4*3 = 12 steps
        ("gru", cfg_of(cell="gru", input_size=2, hidden_size=3, batch=4, seq_len=3), 2 * 12 * (9 * 2 + 9 * 3)),
        # lstm, 2 layers, bidirectional, H_in 3, H 4, N 2, L 5:
        # layer 0: 16x3 + 16x4 = 112 per direction; layer 1 reads 2*4 = 8: 16x8 + 16x4 = 192
        (
            "lstm_2_layers_bidirectional",
            cfg_of(cell="lstm", num_layers=2, bidirectional=True, **TINY),
            2 * 10 * 2 * (112 + 192),
        ),
        # lstm with proj_size 2 (H_out 2), 2 layers, bidirectional, N 1, L 2:
        # layer 0: 16x3 + 16x2 + W_hr 2x4 = 88; layer 1 reads 2*2 = 4: 16x4 + 16x2 + 2x4 = 104
        (
            "projection",
            cfg_of(cell="lstm", input_size=3, hidden_size=4, proj_size=2, num_layers=2, bidirectional=True, seq_len=2),
            2 * 2 * 2 * (88 + 104),
        ),
        # packed: only the real steps count, 10 + 4 + 7 = 21 of the 30
        ("seq_length", cfg_of(batch=3, lengths=(10, 4, 7)), 2 * 21 * (8 * 5 + 8 * 8)),
        # unbatched: N is 1
        ("unbatched", cfg_of(batch=None, seq_len=7), 2 * 7 * (8 * 5 + 8 * 8)),
    ],
)
def test_forward_flops_hand_count(scenario, cfg, expected):
    """The matrix products' share of the work: 2 FLOPs per multiply-add (rnn_cli.core.cost)."""
    assert 2 * cost(cfg).total.macs == expected


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True), (3, False)])
def test_forward_flops_uses_every_weight_once_per_step(cell, layers, bidirectional):
    """Each weight element is one multiply-add per step and sequence: 2 * T * weights."""
    cfg = cfg_of(cell=cell, num_layers=layers, bidirectional=bidirectional, bias=False, **TINY)
    weights = sum(prod(shape) for shape in cfg.parameter_shapes().values())
    assert 2 * cost(cfg).total.macs == 2 * cfg.N * cfg.seq_len * weights


def test_bench_work_is_the_cost_flops():
    """One definition of work: bench divides `--show cost`'s flops (products and element-wise)."""
    cfg = cfg_of(cell="gru", **TINY)
    # GRU, no layers above: macs 2*5 steps * (12*3 + 12*4) = 840; element-wise 17*H = 68 per step
    assert bench.forward_flops(cfg) == 2 * 840 + 10 * 68


# ---- the timing loop ---------------------------------------------------------------------


def test_measure_runs_warmup_then_repeat_inside_one_context():
    calls, entered = [], []

    @contextmanager
    def context():
        entered.append("in")
        yield
        entered.append("out")

    fake_times = iter([9.0, 9.0, 3.0, 1.0, 2.0])  # two warm-ups (dropped), then three timed runs
    impl = bench.Implementation(
        name="fake",
        device="cpu",
        backend="test",
        forward=lambda: calls.append(1),
        context=context,
        time_once=lambda fn: (fn(), next(fake_times))[1],
    )
    ticks = []
    t = bench.measure(impl, "float64", repeat=3, warmup=2, on_run=lambda: ticks.append(1))
    assert len(calls) == 5 and len(ticks) == 5
    assert entered == ["in", "out"]
    assert t.times_s == (3.0, 1.0, 2.0)
    assert (t.min_s, t.median_s, t.max_s) == (1.0, 2.0, 3.0)
    assert t.gflops(4_000_000_000) == pytest.approx(2.0)


def test_real_cpu_timers_run_the_forward_exactly_warmup_plus_repeat_times():
    """--warmup W --repeat N promise W + N forwards and N times with the real timers, not a
    fake: torch.utils.benchmark's Timer.timeit(1) would run 3 forwards per time (two
    warm-ups of its own) and blocked_autorange as many as its time budget allows
    (benchmarks/TIMERS.md)."""
    from rnn_cli.core.sample import draw

    cfg = cfg_of(**TINY)
    impls = bench.implementations(cfg, draw(cfg))
    assert [i.name for i in impls] == ["manual", "torch"]
    for impl in impls:
        calls = []

        def counted(forward=impl.forward):
            calls.append(1)
            return forward()

        t = bench.measure(replace(impl, forward=counted), cfg.dtype, repeat=3, warmup=2)
        assert len(calls) == 5, impl.name
        assert len(t.times_s) == 3 and all(s > 0 for s in t.times_s)


@pytest.fixture(scope="module")
def tiny_bench():
    return bench.run(cfg_of(cell="lstm", **TINY), repeat=4, warmup=1)


def test_run_times_both_cpu_implementations(tiny_bench):
    rows = [(t.name, t.device, t.dtype) for t in tiny_bench.timings]
    assert rows == [(name, "cpu", "float32") for name in ROWS]
    for t in tiny_bench.timings:
        assert len(t.times_s) == 4
        assert all(s > 0 for s in t.times_s)
        assert t.min_s <= t.median_s <= t.max_s
    assert tiny_bench.flops == bench.forward_flops(tiny_bench.cfg)
    assert tiny_bench.threads.torch >= 1


def test_run_packed_batch_first_float64():
    cfg = cfg_of(cell="gru", num_layers=2, bidirectional=True, batch_first=True, lengths=(5, 2), dtype="float64", **{
        k: v for k, v in TINY.items()
    })
    result = bench.run(cfg, repeat=2, warmup=0)
    assert [t.name for t in result.timings][:2] == ["manual", "torch"]  # onnxruntime runs float64 GRUs or says why not
    assert [t.name for t in result.timings] + [n.name for n in result.not_timed] == ROWS
    assert all(t.dtype == "float64" and len(t.times_s) == 2 for t in result.timings)


def test_cuda_timer_synchronises_and_times_with_events():
    """The CUDA protocol without a GPU: idle device, events on its stream around the call,
    wait for the end event, elapsed_time (ms) -> seconds."""
    log = []

    class FakeEvent:
        def __init__(self, enable_timing):
            assert enable_timing
            self.name = "start" if not any(e.startswith("new") for e in log) else "end"
            log.append(f"new {self.name}")

        def record(self, stream):
            log.append(f"record {self.name} on {stream}")

        def synchronize(self):
            log.append(f"wait {self.name}")

        def elapsed_time(self, end):
            log.append("elapsed")
            return 12.5

    class Cuda:
        Event = FakeEvent

        @staticmethod
        def synchronize(device):
            log.append(f"synchronize {device}")

        @staticmethod
        def current_stream(device):
            return f"stream of {device}"

    class FakeTorch:
        cuda = Cuda

    time_once = bench.cuda_timer(FakeTorch, "cuda:1")
    seconds = time_once(lambda: log.append("forward"))
    assert seconds == pytest.approx(0.0125)
    assert log == [
        "synchronize cuda:1",
        "new start",
        "new end",
        "record start on stream of cuda:1",
        "forward",
        "record end on stream of cuda:1",
        "wait end",
        "elapsed",
    ]


def test_run_lstm_projection_warns_nothing():
    """torch's CPU LSTM with proj_size warns on every call; bench hides it, as `torch` does."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = bench.run(cfg_of(cell="lstm", proj_size=2, **TINY), repeat=1, warmup=1)
    assert [t.name for t in result.timings][:2] == ["manual", "torch"]


@pytest.mark.cuda
def test_run_on_cuda_when_asked():
    import torch
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    result = bench.run(cfg_of(cell="lstm", device="cuda", **TINY), repeat=3, warmup=1, tf32=False)
    assert [(t.name, t.device[:4]) for t in result.timings] == [("manual", "cpu"), ("torch", "cpu"), ("torch", "cuda")]
    gpu = result.timings[2]
    assert gpu.tf32 is False and "cuDNN" in gpu.backend
    assert all(s > 0 for s in gpu.times_s)


# ---- progress bar ------------------------------------------------------------------------


def _terminal() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=80)


def test_progress_only_on_a_terminal():
    shown = LazyProgress(_terminal(), after_s=0.0)  # every job is "long"
    shown("manual cpu", 1, 3)
    assert shown.progress is not None
    shown.close()
    piped = LazyProgress(Console(file=io.StringIO(), force_terminal=False), after_s=0.0)
    piped("manual cpu", 1, 3)
    assert piped.progress is None
    assert LazyProgress(None).console is None


def test_no_progress_for_short_runs():
    p = LazyProgress(_terminal(), after_s=math.inf)
    for done in range(1, 4):
        p("manual cpu", done, 3)
    assert p.progress is None
    assert p.console.file.getvalue() == ""


def test_bench_reports_every_run_to_its_callback():
    calls = []
    bench.run(cfg_of(**TINY), repeat=2, warmup=1, on_run=lambda *a: calls.append(a))
    runs = 3 * len(ROWS)  # each implementation: 1 warm-up + 2 timed runs
    assert [done for _, done, _ in calls] == list(range(1, runs + 1))
    assert {total for _, _, total in calls} == {runs}
    assert [label for label, _, _ in calls] == [label for name in ROWS for label in [f"{name} cpu"] * 3]


# ---- views -------------------------------------------------------------------------------


def test_document_has_the_table_numbers(tiny_bench):
    doc = documents.bench_document(tiny_bench)
    json.dumps(doc, allow_nan=False)  # valid JSON, no NaN
    assert doc["command"] == "bench"
    assert doc["config"]["cell"] == "lstm"
    assert doc["flops"] == tiny_bench.flops
    assert set(doc["threads"]) == {"torch", "numpy", "numpy_source", "blas", "blas_env"}
    assert [r["implementation"] for r in doc["results"]] == ROWS
    first, second = doc["results"][:2]
    assert first["relative_speed"] == 1.0
    for r, t in zip(doc["results"], tiny_bench.timings):
        assert r["median_ms"] == pytest.approx(t.median_s * 1e3)
        assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        assert r["gflops"] == pytest.approx(tiny_bench.flops / t.median_s / 1e9)
        assert len(r["times_ms"]) == 4
        assert r["spread"] == pytest.approx(max(t.times_s) / min(t.times_s))
        assert r["busy"] == (r["spread"] > 1.5)
    assert doc["spread_limit"] == 1.5
    assert second["relative_speed"] == pytest.approx(first["median_ms"] / second["median_ms"])


def test_show_prints_one_row_per_implementation(tiny_bench):
    console = Console(file=io.StringIO(), width=100)
    views.show_bench(console, tiny_bench)
    text = console.file.getvalue()
    for header in ("implementation", "device", "dtype", "median ms", "min ms", "max ms", "GFLOP/s", "speed"):
        assert header in text
    rows = [line.split() for line in text.splitlines() if line.split()[:1] in [[name] for name in ROWS]]
    rows = [r for r in rows if r[2:3] == ["float32"]]  # not the Backends line, wrapped
    assert [r[:3] for r in rows] == [[name, "cpu", "float32"] for name in ROWS]
    assert rows[0][-1] == "1.00x"


@pytest.mark.parametrize("flops, shown", [(2080, "2.08 kFLOP"), (27_110_000_000, "27.1 GFLOP"), (12, "12 FLOP")])
def test_format_flops(flops, shown):
    assert views.format_flops(flops) == shown


@pytest.mark.parametrize("ms, shown", [(1234.5, "1234"), (61.04, "61.0"), (6.191, "6.19"), (0.0912, "0.091")])
def test_format_ms(ms, shown):
    assert views.format_ms(ms) == shown


# ---- the command -------------------------------------------------------------------------

runner = CliRunner()
BENCH = ["bench", "--repeat", "2", "--warmup", "1"]
SMALL = ["--input-size", "5", "--hidden-size", "8", "--seq-len", "10", "--batch", "2"]  # not bench's default size: quick


def test_cli_bench_json_schema():
    result = runner.invoke(app, [*BENCH, "--json", "--cell", "gru", "--batch", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)  # one document and nothing else on stdout
    assert set(doc) == {
        "command", "config", "grad", "repeat", "warmup", "flops", "flop_formula", "threads", "versions", "results",
        "not_timed", "notes", "spread_limit",
    }
    assert (doc["repeat"], doc["warmup"]) == (2, 1)
    assert doc["config"]["cell"] == "gru" and doc["config"]["batch"] == 2
    assert isinstance(doc["threads"]["torch"], int)
    keys = {"implementation", "device", "dtype", "backend", "tf32", "median_ms", "min_ms", "max_ms", "gflops",
            "relative_speed", "times_ms", "spread", "busy"}
    assert [set(r) for r in doc["results"]] == [keys] * len(ROWS)
    assert [(r["implementation"], r["device"]) for r in doc["results"]] == [(name, "cpu") for name in ROWS]
    assert all(len(r["times_ms"]) == 2 and r["median_ms"] > 0 for r in doc["results"])


def test_cli_bench_table():
    result = runner.invoke(app, [*BENCH, *SMALL, "--cell", "lstm", "--layers", "2", "--bidirectional"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "rnn-cli bench: nn.LSTM forward, float32, seed 0" in out
    assert "median ms" in out and "GFLOP/s" in out
    assert "Threads: torch" in out
    assert "2 timed run(s) after 1 warm-up run(s)" in out
    assert "\x1b[" not in out  # not a terminal: no colour codes, no progress bar
    assert "{" not in out  # no JSON
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--repeat", "0"], "--repeat must be between 1 and 100000"),
        (["--warmup", "-1"], "--warmup must be between 0 and 10000"),
    ],
)
def test_cli_bench_rejects_bad_counts(flags, message):
    result = runner.invoke(app, ["bench", *flags])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_cli_bench_cuda_without_cuda_is_one_line():
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    result = runner.invoke(app, [*BENCH, "--device", "cuda"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "CUDA is not available" in result.stderr


def test_installed_command_bench_json():
    proc = subprocess.run(
        [sys.executable, "-m", "rnn_cli", *BENCH, *SMALL, "--json"], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["implementation"] for r in json.loads(proc.stdout)["results"]] == ROWS
    assert proc.stderr == ""  # not a terminal: no progress bar


def test_bench_json_reports_the_device_used_not_auto():
    """Bug caught: `bench --json --device auto` wrote "auto" into config.device."""
    import torch

    tiny = ["--input-size", "3", "--hidden-size", "4", "--seq-len", "5", "--batch", "2"]
    result = CliRunner().invoke(app, ["bench", "--device", "auto", "--repeat", "1", "--warmup", "0", "--json", *tiny])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert doc["config"]["device"] == expected
    assert doc["results"][-1]["device"] == expected


# ---- onnxruntime rows --------------------------------------------------------------------

needs_ort = pytest.mark.skipif(not HAVE_ORT, reason="needs the onnx extra (onnx, onnxruntime, onnxscript)")


def _torch_forward(cfg, sample):
    """torch's nn.LSTM/GRU/RNN on the sample, built here from the parameters: the independent
    implementation the onnxruntime row must agree with (time-major, no packing)."""
    import torch

    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cfg.cell](
        cfg.input_size, cfg.hidden_size, cfg.num_layers, bidirectional=cfg.bidirectional)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(sample.params[name]))
        hx = torch.from_numpy(sample.h_0)
        if cfg.cell == "lstm":
            hx = (hx, torch.from_numpy(sample.c_0))
        output, state = module(torch.from_numpy(sample.x), hx)
    states = state if isinstance(state, tuple) else (state,)
    return [t.numpy() for t in (output, *states)]


@needs_ort
@pytest.mark.parametrize("cell, layers, bidirectional", [("lstm", 1, False), ("gru", 2, True), ("rnn", 1, True)])
def test_onnxruntime_row_matches_torch(cell, layers, bidirectional):
    """Bug caught: a row timed on a graph that computes something else (wrong weights, wrong
    initial state, outputs in another order). Checked here against nn.LSTM/GRU/RNN built in
    the test, on what the timed forward returns."""
    from rnn_cli.formats import bench_onnx
    from rnn_cli.core.sample import draw

    cfg = cfg_of(cell=cell, num_layers=layers, bidirectional=bidirectional, h0="random", **TINY)
    sample = draw(cfg)
    assert abs(sample.h_0).max() > 0.1  # a wrong initial state would show
    impls, not_timed, notes = bench_onnx.implementations(cfg, sample, 1, ["cpu"])
    assert (not_timed, notes) == ([], [])
    [impl] = impls
    assert (impl.name, impl.device) == ("onnxruntime", "cpu")
    got = impl.forward()
    want = _torch_forward(cfg, sample)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert abs(g - w).max() <= 1e-5 + 1e-5 * abs(w).max()


@needs_ort
def test_onnxruntime_row_that_disagrees_with_torch_is_not_timed(monkeypatch):
    """Bug caught: the check before timing compares nothing (or ignores its verdict): here
    torch's reference outputs are shifted by 1e-3, far beyond float32's 1e-5 tolerance."""
    from rnn_cli.formats import onnx_check

    real = onnx_check.torch_cpu_outputs
    monkeypatch.setattr(onnx_check, "torch_cpu_outputs",
                        lambda cfg, sample: {k: v + 1e-3 for k, v in real(cfg, sample).items()})
    result = bench.run(cfg_of(cell="lstm", **TINY), repeat=2, warmup=0)
    assert [t.name for t in result.timings] == ["manual", "torch"]
    [row] = result.not_timed
    assert (row.name, row.device, row.status) == ("onnxruntime", "cpu", "mismatch")
    assert "off by 0.001" in row.reason
    console = Console(file=io.StringIO(), width=120)
    views.show_bench(console, result)
    text = console.file.getvalue()
    assert [line.split()[:4] for line in text.splitlines() if line.startswith("onnxruntime")][0] == [
        "onnxruntime", "cpu", "float32", "mismatch"]


def test_without_the_onnx_extra_one_line_says_how_to_add_it(monkeypatch):
    """Bug caught: bench failing, or silent, when onnxruntime is not installed."""
    import builtins

    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name.split(".")[0] == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    result = bench.run(cfg_of(**TINY), repeat=1, warmup=0)
    assert [t.name for t in result.timings] == ["manual", "torch"]
    assert result.notes == ["onnxruntime: not installed; add it with pip install 'rnn-cli[onnx]'"]
    console = Console(file=io.StringIO(), width=100)
    views.show_bench(console, result)
    assert console.file.getvalue().count("pip install 'rnn-cli[onnx]'") == 1


# ---- the spread warning, the default size, the BLAS line ------------------------------------


def _timing(*times):
    return bench.Timing("manual", "cpu", "float32", "numpy", None, tuple(times))


@pytest.mark.parametrize("times, busy", [
    ((1.0, 1.2, 1.5), False),  # max / min = 1.5: at the limit, not above
    ((2.0, 2.0, 2.0), False),
    ((1.0, 1.51), True),
    ((0.010, 0.500, 0.011), True),  # one run in the middle took 50x longer
])
def test_spread_above_one_and_a_half_says_the_machine_was_busy(times, busy):
    """Bug caught: the warning missing when one run is 50x the others (median/min would not
    show it), or shown for an ordinary 1.2x spread."""
    t = _timing(*times)
    assert t.busy is busy
    result = bench.Bench(cfg_of(**TINY), Provenance(), repeat=len(times), warmup=0, flops=1000,
                         threads=bench.Threads(1, 1, "threadpoolctl", "openblas"), timings=[t])
    console = Console(file=io.StringIO(), width=100)
    views.show_bench(console, result)
    text = " ".join(console.file.getvalue().split())
    warned = "the machine was busy; rerun" in text
    assert warned is busy
    if busy:
        assert f"manual cpu {max(times) / min(times):.1f}x" in text


def test_default_size_is_not_the_toy():
    """Bug caught: bench timing the other commands' 10-step toy (2 kFLOP, microseconds of
    timer noise) when no size is given; flags that are given still win."""
    result = runner.invoke(app, ["bench", "--json", "--repeat", "1", "--warmup", "0", "--cell", "gru"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    c = doc["config"]
    assert (c["input_size"], c["hidden_size"], c["seq_len"], c["batch"]) == (64, 128, 100, 32)
    # GRU: 2 FLOPs x N*L steps x 3 gates x H x (H_in + H), plus 17 element-wise operations per
    # unit and step (r, z: 2 bias adds, 1 sum, 1 sigmoid each; n: 2 bias adds, 1 product, 1 sum,
    # 1 tanh; h': 1 - z, 2 products, 1 sum)
    assert doc["flops"] == 2 * 32 * 100 * 3 * 128 * (64 + 128) + 32 * 100 * 17 * 128
    given = runner.invoke(app, ["bench", "--json", "--repeat", "1", "--warmup", "0", "--hidden-size", "16",
                                "--lengths", "7,3"])
    assert given.exit_code == 0, given.output
    c = json.loads(given.stdout)["config"]
    assert (c["input_size"], c["hidden_size"], c["batch"], c["lengths"]) == (64, 16, 2, [7, 3])


@pytest.mark.parametrize("threads, shown", [
    (bench.Threads(2, None, "numpy's build configuration", "scipy-openblas 0.3.31", (), 2),
     "numpy scipy-openblas 0.3.31, its default: one per CPU (2 here)"),
    (bench.Threads(2, None, "numpy's build configuration", "scipy-openblas 0.3.31", ("OPENBLAS_NUM_THREADS=1",), 2),
     "numpy scipy-openblas 0.3.31, as set by OPENBLAS_NUM_THREADS=1"),
    (bench.Threads(2, None, "numpy's build configuration", "accelerate", (), 8), "numpy accelerate, its default"),
    (bench.Threads(2, 2, "threadpoolctl", "openblas"), "numpy 2 (openblas, via threadpoolctl)"),
])
def test_blas_line_says_what_is_known_without_a_missing_package_hint(threads, shown):
    line = views._threads_line(threads)
    assert line == f"Threads: torch 2, {shown}"
    assert "install" not in line
