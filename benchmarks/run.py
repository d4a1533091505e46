"""rnn-cli's benchmark: start-up and the numpy forward vs torch and ONNX's reference -> RESULTS.md (memory: memory.py).

    python benchmarks/run.py                 # everything -> RESULTS.md, ~10 min on a 2-core machine
    python benchmarks/run.py --quick         # a subset -> RESULTS-quick.md, ~1 min, for development
    python benchmarks/run.py --cuda          # also torch on CUDA (cuDNN) in the matrix
    python benchmarks/run.py --only matrix --cell lstm --size 1,1000,64,64 --output /tmp/lstm.md

Measures, on this machine:
  (a) start-up: whole-process wall time (median of --startup-runs, commands interleaved,
      one untimed round first) of rnn-cli's commands against two baselines, and whether
      torch was imported (python's -X importtime list);
  (b) the matrix: the forward of `manual` (numpy), of torch on the CPU and of ONNX's own
      numpy reference (onnx.reference.ReferenceEvaluator on the same layer, see
      onnx_reference.py; its output is checked against manual's before it is timed), float32,
      same thread count for all: 15 cases (3 cells x 4 sizes, 1 layer, and a 2-layer
      bidirectional stack) and issue 26's three LSTM cases. It times exactly what
      `rnn-cli bench` times (rnn_cli.core.bench.implementations), but interleaves the
      implementations run by run so that load from elsewhere hits all alike, and sizes
      the number of runs to the case (--budget seconds per case, 3 to 200 runs);
and writes a markdown report with the machine and every target marked met or missed.
It also measures how much CPU time other processes took while it ran and warns in the
report when they took more than 3%: on a small machine any competitor distorts the ratios.

Thread count: --threads (default: the physical cores this process may use, which is
torch's own default) is put in OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS
before numpy or torch is imported (torch imports numpy), and torch.set_num_threads() is
called with it; both libraries then run with the same count. The script never imports
numpy or torch before that.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The matrix's sizes: (N, L, H_in, H), each 1 layer, unidirectional, plus STACK
SIZES = [(1, 10, 5, 8), (32, 100, 128, 256), (64, 200, 256, 512), (1, 1000, 64, 64)]
STACK = ((32, 100, 128, 256), 2, True)  # size, layers, bidirectional
# Issue 26's three LSTM cases, (N, L, H_in, H): I32 H64 L100 N8, I64 H256 L50 N32, I16 H32 L1000 N1
ISSUE_SIZES = [(8, 100, 32, 64), (32, 50, 64, 256), (1, 1000, 16, 32)]
CELLS = ("rnn", "lstm", "gru")
DTYPE = "float32"
STARTUP_TARGET = 1.3  # start-up: x `python -c "import numpy, typer, rich.table"`
FLOOR = "python benchmarks/startup_floor.py"  # numpy.random, rich.console and the default screen's tables, no rnn-cli
FLOOR_TARGET = 1.15  # `rnn-cli manual` (the human view): x the floor
JSON_TARGET = 1.2  # `rnn-cli manual --json`: x `python -c "import numpy, typer, rich.table"`
TORCH_TARGET = 1.15  # torch start-up: x `python -c "import torch"`
RATIO_TARGET = 1.5  # the forward: median over the matrix of manual / torch CPU, medians
ONNX_TARGET = 1.2  # the forward: onnx.reference / manual on every case, medians


# ---- machine ----------------------------------------------------------------------------


def physical_cores() -> int:
    """Physical cores among the CPUs this process may use (torch's default thread count)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        allowed = set(range(os.cpu_count() or 1))
    cores = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return len(allowed)
    for block in text.strip().split("\n\n"):
        fields = dict(
            (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in block.splitlines())
        )
        if "processor" in fields and int(fields["processor"]) in allowed:
            cores.add((fields.get("physical id", "0"), fields.get("core id", fields["processor"])))
    return len(cores) or len(allowed)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def code_version() -> str:
    """The commit measured, and the package files that differ from it."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False)
        return proc.stdout.rstrip() if proc.returncode == 0 else ""  # porcelain lines start with a space

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    changed = [line[3:] for line in git("status", "--porcelain", "--", "rnn_cli").splitlines()]
    return commit + (f" with uncommitted changes to {', '.join(changed)}" if changed else "")


class OthersShare:
    """How much of the machine other processes used while a phase ran: CPU time the kernel
    counts as busy (/proc/stat) minus this process's and its children's, over the phase's
    wall time times the number of CPUs. Load average cannot tell: it counts our own threads."""

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
        busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
        t = os.times()
        return busy, t.user + t.system + t.children_user + t.children_system, time.monotonic()

    def fraction(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None or end[2] <= self.start[2]:
            return None
        others = (end[0] - self.start[0]) - (end[1] - self.start[1])
        return max(0.0, others / ((end[2] - self.start[2]) * (os.cpu_count() or 1)))


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "unknown"


# ---- (a) start-up -----------------------------------------------------------------------


@dataclass
class Startup:
    label: str
    argv: list[str]
    baseline: str | None  # label of the baseline it is measured against
    target: float | None  # the most it may cost, x baseline
    target_name: str = ""  # "start-up": also never imports torch; "torch start-up"
    times: list[float] = field(default_factory=list)
    imports_torch: bool | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def rnn_cli_script() -> list[str]:
    """The installed console script next to this interpreter (not a pyenv/asdf shim,
    whose own start-up would be counted), else `python -m rnn_cli`."""
    beside = Path(sys.executable).parent / "rnn-cli"
    if beside.exists():
        return [str(beside)]
    return [sys.executable, "-m", "rnn_cli"]


def startup_commands() -> list[Startup]:
    py, cli = sys.executable, rnn_cli_script()
    base, torch_base = 'python -c "import numpy, typer, rich.table"', 'python -c "import torch"'
    return [
        Startup(base, [py, "-c", "import numpy, typer, rich.table"], None, None),
        Startup("rnn-cli --help", [*cli, "--help"], base, STARTUP_TARGET, "start-up"),
        Startup("rnn-cli manual --help", [*cli, "manual", "--help"], base, STARTUP_TARGET, "start-up"),
        Startup("rnn-cli manual", [*cli, "manual"], FLOOR, FLOOR_TARGET, "start-up"),
        Startup("rnn-cli manual --json", [*cli, "manual", "--json"], base, JSON_TARGET, "start-up"),
        # What any program that draws manual's screen pays before its own code: numpy.random
        # (the seeded draw) and rich.console (to draw), which the baseline does not import,
        # and rendering the default screen's tables.
        Startup(FLOOR, [py, str(Path(__file__).with_name("startup_floor.py"))], base, None),
        Startup(torch_base, [py, "-c", "import torch"], None, None),
        Startup("rnn-cli torch", [*cli, "torch"], torch_base, TORCH_TARGET, "torch start-up"),
    ]


def _run_quiet(argv: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    # As users run it: with bytecode caches (some shells set PYTHONDONTWRITEBYTECODE, which
    # makes every start compile rnn_cli's modules anew: ~20 ms more for `manual`).
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryFile() as stdout:  # what it prints is not looked at
        return subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, env=env, text=True, check=False)


def imports_torch(argv: list[str]) -> bool:
    """Whether the process imports torch at all, from python's -X importtime report."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = _run_quiet(argv, env)
    return bool(re.search(r"\|\s*torch\s*$", proc.stderr, re.MULTILINE))


def measure_startup(runs: int, log) -> list[Startup]:
    commands = startup_commands()
    for c in commands:  # one untimed round: file caches, .pyc files
        proc = _run_quiet(c.argv)
        if proc.returncode != 0:
            raise SystemExit(f"`{c.label}` failed ({proc.returncode}): {proc.stderr.strip()}")
    for i in range(runs):
        for c in commands:  # interleaved, so slow spells hit every command alike
            start = time.perf_counter()
            _run_quiet(c.argv)
            c.times.append(time.perf_counter() - start)
        log(f"start-up round {i + 1}/{runs}")
    for c in commands:
        if c.label.startswith("rnn-cli"):
            c.imports_torch = imports_torch(c.argv)
    return commands


# ---- (b) the forward matrix ---------------------------------------------------------------


@dataclass
class Case:
    cell: str
    size: tuple[int, int, int, int]  # N, L, H_in, H
    layers: int
    bidirectional: bool
    dtype: str = DTYPE
    group: str = "matrix"  # "matrix": the 15 cases of the manual / torch target; "issue": issue 26's LSTM cases
    repeat: int = 0
    flops: int = 0
    peer_diff: float = 0.0  # largest |onnx.reference - manual| over output, h_n (c_n), checked before timing
    times: dict[str, list[float]] = field(default_factory=dict)  # "manual", "manual before", "torch cpu", "onnx.reference", "torch cuda:0"
    # CPU time of this process (all its threads) over the same runs: less disturbed than wall
    # time by other processes on a busy machine, though a BLAS thread that spins waiting for
    # a descheduled partner counts too
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def median(self, key: str) -> float:
        return statistics.median(self.times[key])

    @property
    def ratio(self) -> float:
        """manual / torch CPU, medians."""
        return self.median("manual") / self.median("torch cpu")

    @property
    def onnx_ratio(self) -> float:
        """onnx.reference / manual, medians: how many times faster rnn-cli's reference is."""
        return self.median("onnx.reference") / self.median("manual")

    @property
    def onnx_cpu_ratio(self) -> float:
        """onnx.reference / manual, medians of CPU time."""
        return statistics.median(self.cpu["onnx.reference"]) / statistics.median(self.cpu["manual"])


def matrix_cases(quick: bool, sizes=None, cells=CELLS) -> list[Case]:
    """The 15 cases (each cell at the four sizes, 1 layer, and the 2-layer bidirectional
    stack) and issue 26's three LSTM cases; with --size, those sizes (1 layer) instead of
    all of them; quick: the four sizes at 1 layer only (12)."""
    if sizes:
        return [Case(c, s, 1, False) for s in sizes for c in cells]
    cases = [Case(c, s, 1, False) for s in SIZES for c in cells]
    if quick:
        return cases
    cases += [Case(c, STACK[0], STACK[1], STACK[2]) for c in cells]
    return cases + [Case("lstm", s, 1, False, group="issue") for s in ISSUE_SIZES if "lstm" in cells]


# The numpy forward as it was before issue 26 made it fast (the readable rewrite, one
# batched step for both directions), loaded from git history so that both can be timed in
# one run without keeping a copy of the old code in the tree.
BEFORE = "597b1e3"


def manual_before():
    import linecache
    import types

    source = subprocess.check_output(["git", "-C", str(HERE.parent), "show", f"{BEFORE}:rnn_cli/manual.py"], text=True)
    # written before the package's layers (issue 20): its imports name today's modules
    source = re.sub(r"\brnn_cli\.(config|sample|result)\b", r"rnn_cli.core.\1", source)
    name = f"{BEFORE}:rnn_cli/manual.py"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)  # inspect.getsource finds it
    module = sys.modules["manual_before"] = types.ModuleType("manual_before")  # dataclasses look it up
    exec(compile(source, name, "exec"), module.__dict__)
    return module


def onnx_peer(cfg, sample, impl):
    """onnx.reference's forward as an Implementation like manual's, after checking that its
    output, h_n (c_n) match manual's within compare's tolerances for the dtype."""
    from contextlib import nullcontext

    from onnx_reference import Peer

    from rnn_cli.core import manual
    from rnn_cli.core.compare import default_tolerance

    peer = Peer(cfg, sample)
    fwd = manual.forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0)
    tol = default_tolerance(cfg.dtype, on_cuda=False, tf32=None)
    expected = [fwd.output, fwd.h_n] + ([fwd.c_n] if cfg.has_c else [])
    diff = peer.check(expected, tol.atol, tol.rtol)  # ValueError: a wrong peer is not timed
    return replace(impl, name="onnx.reference", backend="onnx.reference", forward=peer.forward,
                   context=nullcontext), diff


def run_case(case: Case, budget: float, cuda: bool, tf32: bool, min_repeat: int, max_repeat: int) -> None:
    """One untimed run of each implementation (two when that is cheap) to warm up and size
    the number of runs to the budget, then timed runs in rounds: manual, before, torch, onnx, [cuda], ..."""
    from contextlib import ExitStack

    from rnn_cli.core import bench
    from rnn_cli.core.config import RunConfig
    from rnn_cli.core.sample import draw

    N, L, H_in, H = case.size
    cfg = RunConfig(
        cell=case.cell,
        input_size=H_in,
        hidden_size=H,
        num_layers=case.layers,
        bidirectional=case.bidirectional,
        seq_len=L,
        batch=N,
        dtype=case.dtype,
        device="cuda" if cuda else "cpu",
    )
    case.flops = bench.forward_flops(cfg)
    sample = draw(cfg)
    impls = bench.implementations(cfg, sample, tf32=tf32)
    old = manual_before()
    impls.insert(1, replace(impls[0], name="manual before", forward=lambda: old.forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0)))
    peer, case.peer_diff = onnx_peer(cfg, sample, impls[0])
    impls.insert(3, peer)
    keys = [i.name if i.name.startswith(("manual", "onnx")) else f"torch {i.device}" for i in impls]
    with ExitStack() as stack:
        for impl in impls:
            stack.enter_context(impl.context())
        first = [impl.time_once(impl.forward) for impl in impls]  # warm-up and calibration
        if sum(first) < 0.1 * budget:  # cheap: warm up once more and calibrate on that
            first = [impl.time_once(impl.forward) for impl in impls]
        case.repeat = max(min_repeat, min(max_repeat, math.ceil(budget / max(sum(first), 1e-9))))
        case.times = {k: [] for k in keys}
        case.cpu = {k: [] for k in keys}
        for _ in range(case.repeat):
            for key, impl in zip(keys, impls):
                cpu = time.process_time()
                case.times[key].append(impl.time_once(impl.forward))
                case.cpu[key].append(time.process_time() - cpu)


# ---- (d) the report -------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    from rnn_cli.views.bench import format_ms

    return format_ms(seconds * 1e3)


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _size_label(size: tuple[int, int, int, int]) -> str:
    N, L, H_in, H = size
    return f"N={N} L={L} H_in={H_in} H={H}"


def _forward_report(cases: list[Case], verdicts: list[str]) -> list[str]:
    """The forward's tables, and its two verdicts appended to `verdicts`."""
    cuda_keys = sorted({k for c in cases for k in c.times if k.startswith("torch cuda")})
    lines = [
        "",
        "### Forward: manual (numpy) vs torch on the CPU and ONNX's numpy reference",
        "",
        f"Median ms of each implementation, {DTYPE}, all on the same thread count, interleaved run by run "
        "after one untimed run each; `runs` is the number of timed runs. `onnx.reference` is "
        "onnx.reference.ReferenceEvaluator running the same layer built with onnx.helper (benchmarks/"
        "onnx_reference.py); `max diff` is its largest difference from manual's output, h_n (c_n), checked "
        "within compare's tolerances before it was timed. `before` is manual.py at commit "
        f"{BEFORE} (before issue 26), timed in the same rounds. GFLOP/s counts the matrix products only "
        "(`rnn_cli.core.bench.forward_flops`). `CPU` is the same ratio of median CPU time (this process, all its "
        "threads, over the same runs): steadier than wall time when other processes compete.",
    ]
    matrix = [c for c in cases if c.group == "matrix"]
    if matrix:
        ratios = [c.ratio for c in matrix]
        median = statistics.median(ratios)
        verdicts.append(f"forward, median of manual / torch CPU over the {len(matrix)} cases <= {RATIO_TARGET}: "
                        f"{_met(median <= RATIO_TARGET)} ({median:.2f}x; best {min(ratios):.2f}x, worst {max(ratios):.2f}x)")
    onnx = [c.onnx_ratio for c in cases]
    cpu = [c.onnx_cpu_ratio for c in cases]
    slow = sum(r < ONNX_TARGET for r in onnx)
    verdicts.append(f"forward, onnx.reference / manual >= {ONNX_TARGET} on every case: {_met(slow == 0)} "
                    f"({min(onnx):.2f}x to {max(onnx):.2f}x, median {statistics.median(onnx):.2f}x; "
                    f"{slow} of {len(cases)} cases below; in CPU time {min(cpu):.2f}x to {max(cpu):.2f}x, "
                    f"{sum(r < ONNX_TARGET for r in cpu)} below)")
    head = ("| cell | N | L | H_in | H | layers | D | manual ms | before ms | manual / before | torch CPU ms | "
            "manual / torch | onnx.reference ms | onnx.reference / manual | CPU | max diff | manual GFLOP/s | torch GFLOP/s |")
    rule = "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    head += "".join(f" {k} ms | CPU torch / {k.split(' ')[1]} |" for k in cuda_keys) + " runs |"
    rule += "---|---|" * len(cuda_keys) + "---|"
    titles = {"matrix": f"#### The {len(matrix)} cases (target: median manual / torch <= {RATIO_TARGET})",
              "issue": "#### Issue 26's LSTM cases"}
    for group, title in titles.items():
        rows = [c for c in cases if c.group == group]
        if not rows:
            continue
        lines += ["", title, "", head, rule]
        for c in rows:
            m, t, b, o = c.median("manual"), c.median("torch cpu"), c.median("manual before"), c.median("onnx.reference")
            ratio = f"{c.ratio:.2f}" if c.ratio <= RATIO_TARGET else f"**{c.ratio:.2f}**"
            onnx_ratio = f"{c.onnx_ratio:.2f}" if c.onnx_ratio >= ONNX_TARGET else f"**{c.onnx_ratio:.2f}**"
            N, L, H_in, H = c.size
            row = (
                f"| {c.cell} | {N} | {L} | {H_in} | {H} | {c.layers} | {2 if c.bidirectional else 1} | {_ms(m)} | "
                f"{_ms(b)} | {m / b:.2f} | {_ms(t)} | {ratio} | {_ms(o)} | {onnx_ratio} | {c.onnx_cpu_ratio:.2f} | {c.peer_diff:.1e} | "
                f"{c.flops / m / 1e9:.3g} | {c.flops / t / 1e9:.3g} |"
            )
            for k in cuda_keys:
                g = c.median(k)
                row += f" {_ms(g)} | {t / g:.1f}x |"
            lines.append(row + f" {c.repeat} |")
    return lines


def report(machine: dict, startup: list[Startup], cases: list[Case], seconds: float) -> str:
    lines = ["## rnn-cli benchmark results", ""]
    lines.append(
        f"Written by `{machine['command']}` on {machine['date']} in {seconds / 60:.1f} min. "
        "Regenerate with the same command; numbers elsewhere (README) come from this file."
    )
    lines += ["", "### Machine", "", "| | |", "|---|---|"]
    keys = ("code", "cpu", "cores", "threads", "python", "numpy", "blas", "torch", "cuda", "load", "others")
    for key in (*keys, "interrupted"):
        if machine.get(key):
            lines.append(f"| {key} | {machine[key]} |")
    verdicts: list[str] = []
    if machine.get("busy"):
        lines += ["", f"**Warning:** {machine['busy']}"]

    if startup:
        by_label = {c.label: c for c in startup}
        lines += [
            "",
            "### Start-up",
            "",
            f"Whole-process wall time, median of {len(startup[0].times)} interleaved runs after one untimed round; "
            "`python` is this interpreter and `rnn-cli` its console script. "
            f"`{FLOOR}` is the floor under `rnn-cli manual`'s human view, with no rnn-cli code: numpy.random "
            "(the seeded draw) and rich.console (to print at all), which the baseline does not import, and a "
            "screen of rich tables the size of manual's default one.",
            "",
            "| command | median ms | min ms | max ms | x baseline | baseline | target | imports torch | result |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in startup:
            if c.baseline is None:
                lines.append(f"| `{c.label}` | {c.median * 1e3:.0f} | {min(c.times) * 1e3:.0f} | "
                             f"{max(c.times) * 1e3:.0f} | baseline | | | | |")
                continue
            ratio = c.median / by_label[c.baseline].median
            if c.target is None:  # measured for reference, no goal
                lines.append(f"| `{c.label}` | {c.median * 1e3:.0f} | {min(c.times) * 1e3:.0f} | "
                             f"{max(c.times) * 1e3:.0f} | {ratio:.2f} | `{c.baseline}` | | | |")
                continue
            ok = ratio <= c.target and not (c.target_name == "start-up" and c.imports_torch)  # start-up: never torch
            verdict = _met(ok)
            torch_col = "-" if c.imports_torch is None else ("yes" if c.imports_torch else "no")
            verdicts.append(f"{c.target_name} `{c.label}`: {verdict} ({ratio:.2f}x `{c.baseline}`, imports torch: {torch_col})")
            lines.append(
                f"| `{c.label}` | {c.median * 1e3:.0f} | {min(c.times) * 1e3:.0f} | {max(c.times) * 1e3:.0f} | "
                f"{ratio:.2f} | `{c.baseline}` | <= {c.target} | {torch_col} | {verdict} |"
            )

    if cases:
        lines += _forward_report(cases, verdicts)
        if machine.get("interrupted"):
            verdicts.append(f"**incomplete**: the matrix was interrupted {machine['interrupted']}; "
                            "the forward's verdicts cover only the cases done")

    lines += ["", "### Memory", "", "Peak memory against the guard's estimate is measured by `benchmarks/memory.py` "
              "(report: `benchmarks/MEMORY.md`)."]

    lines[3:3] = ["", "### Verdict", ""] + [f"- {v}" for v in verdicts]
    return "\n".join(lines) + "\n"


# ---- main -----------------------------------------------------------------------------------


def _size(text: str) -> tuple[int, int, int, int]:
    try:
        N, L, H_in, H = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,L,H_in,H such as 32,100,128,256, got {text!r}") from None
    return N, L, H_in, H


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a subset: one layer, one direction, float32; short budgets")
    p.add_argument("--cuda", action="store_true", help="also time torch on CUDA (cuDNN) in the matrix")
    p.add_argument("--no-tf32", action="store_true", help="with --cuda: forbid TF32 in cuDNN's float32 kernels")
    p.add_argument("--threads", type=int, default=None, help="threads for numpy and torch [default: physical cores]")
    p.add_argument("--startup-runs", type=int, default=None, help="runs per start-up command [default: 15, quick 5]")
    p.add_argument(
        "--budget", type=float, default=None, help="seconds of timed runs per matrix case [default: 2, quick 0.5]"
    )
    p.add_argument("--min-repeat", type=int, default=5)  # the large cases: a median of 3 moved by 10% between runs
    p.add_argument("--max-repeat", type=int, default=200)
    p.add_argument("--size", action="append", type=_size, metavar="N,L,H_in,H",
                   help="matrix sizes (1 layer) instead of the default cases (repeatable)")
    p.add_argument("--cell", action="append", choices=CELLS, help="matrix cells (repeatable) [default: all]")
    p.add_argument("--only", choices=("startup", "matrix"), action="append",
                   help="run only these parts (repeatable) [default: all]")
    p.add_argument("--output", type=Path, default=None,
                   help="markdown report [default: benchmarks/RESULTS.md; --quick: benchmarks/RESULTS-quick.md]")
    p.add_argument("--json", type=Path, default=None, help="also write every timing as JSON here")
    args = p.parse_args(argv)
    if args.startup_runs is None:
        args.startup_runs = 5 if args.quick else 15  # 9 idle runs: the baseline's median moved by 40 ms between runs
    if args.startup_runs < 5:
        p.error("--startup-runs must be at least 5")
    if args.budget is None:
        args.budget = 0.5 if args.quick else 2.0
    if args.output is None:
        args.output = HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    return args


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # `timeout` sends SIGTERM: stop the matrix and still write the report


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    threads = args.threads or physical_cores()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)  # before numpy (and torch, which imports it) is loaded
    assert "numpy" not in sys.modules and "torch" not in sys.modules
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    import numpy as np
    import torch

    torch.set_num_threads(threads)
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    cuda = ""
    if args.cuda:
        if not torch.cuda.is_available():
            raise SystemExit("--cuda: CUDA is not available here")
        from rnn_cli.core.bench import _cudnn_version

        cuda = (f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, cuDNN {_cudnn_version(torch)}, "
                f"TF32 {'off' if args.no_tf32 else 'on (torch default)'}")
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])
    machine = {
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "code": code_version(),
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} logical, {physical_cores()} physical usable",
        "threads": f"{threads} for both: torch.get_num_threads() = {torch.get_num_threads()}, "
        f"OMP/OPENBLAS/MKL_NUM_THREADS = {threads} set before numpy was imported",
        "python": f"{platform.python_version()} ({platform.platform()})",
        "numpy": np.__version__,
        "blas": f"{blas.get('name', '?')} {blas.get('version', '')}".strip(),
        "torch": torch.__version__,
        "cuda": cuda,
    }
    parts = set(args.only or ("startup", "matrix"))
    load_before = load_average()
    log(f"threads {threads}, load average {load_before}")
    others: dict[str, float | None] = {}

    share = OthersShare()
    startup = measure_startup(args.startup_runs, log) if "startup" in parts else []
    if startup:
        others["start-up"] = share.fraction()
    cases: list[Case] = []
    if "matrix" in parts:
        share = OthersShare()
        planned = matrix_cases(args.quick, args.size, args.cell or CELLS)
        for i, case in enumerate(planned, 1):
            try:
                run_case(case, args.budget, args.cuda, not args.no_tf32, args.min_repeat, args.max_repeat)
            except KeyboardInterrupt:
                log(f"interrupted: the report covers the {len(cases)} case(s) done")
                machine["interrupted"] = f"after {len(cases)} of {len(planned)} matrix cases"
                break
            cases.append(case)
            extra = "".join(f"  {k} {_ms(case.median(k))} ms" for k in case.times if k.startswith("torch cuda"))
            log(
                f"{i}/{len(planned)} {case.cell} {_size_label(case.size)} layers={case.layers} "
                f"D={2 if case.bidirectional else 1} {case.dtype}: manual {_ms(case.median('manual'))} ms, "
                f"torch {_ms(case.median('torch cpu'))} ms, onnx.reference {_ms(case.median('onnx.reference'))} ms: "
                f"manual / torch {case.ratio:.2f}, onnx.reference / manual {case.onnx_ratio:.2f} (CPU time {case.onnx_cpu_ratio:.2f})"
                f"{extra} ({case.repeat} runs)"
            )
        others["matrix"] = share.fraction()
    seconds = time.perf_counter() - started
    machine["load"] = f"{load_before} at start, {load_average()} at end (1, 5, 15 min)"
    known = {phase: f for phase, f in others.items() if f is not None}
    if known:
        machine["others"] = f"other processes took this share of the {os.cpu_count()} CPUs' time: " + ", ".join(
            f"{f:.0%} during the {phase}" for phase, f in known.items()
        )
        if max(known.values()) > 0.03:  # 2-thread BLAS and OpenMP suffer badly from any competitor
            machine["busy"] = (
                f"{machine['others']}. They competed with the timed code: timings are noisy and ratios "
                "unreliable. Rerun on an idle machine."
            )

    text = report(machine, startup, cases, seconds)
    args.output.write_text(text)
    log(f"wrote {args.output}")
    if args.json is not None:
        doc = {
            "machine": machine,
            "startup": [{"command": c.label, "argv": c.argv, "times_s": c.times, "imports_torch": c.imports_torch}
                        for c in startup],
            "matrix": [
                {"cell": c.cell, "N": c.size[0], "L": c.size[1], "H_in": c.size[2], "H": c.size[3],
                 "layers": c.layers, "bidirectional": c.bidirectional, "dtype": c.dtype, "group": c.group, "flops": c.flops,
                 "onnx_reference_max_diff": c.peer_diff,
                 "times_s": c.times, "cpu_s": c.cpu}
                for c in cases
            ],
        }
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        log(f"wrote {args.json}")
    print(args.output)


if __name__ == "__main__":
    main()
