"""bench's own timers against torch.utils.benchmark, on the forwards `rnn-cli bench` times (issue 10).

    PYTHONPATH=$PWD python benchmarks/timers.py [--rounds 3] [--min-run-time 0.5] [--imports 7]

For each configuration and each CPU implementation (rnn_cli.core.bench.implementations: the numpy
forward, torch on the CPU), three ways of timing the same forward, interleaved round by round
(the order rotates each round) inside the implementation's own context (inference mode, ...):

  (a) bench.measure(impl, repeat=20, warmup=3)              what `rnn-cli bench` does now
  (b) Timer(stmt="f()", globals={"f": f}, num_threads=torch.get_num_threads())
          .blocked_autorange(min_run_time=--min-run-time)
  (c) 3 untimed calls f(), then the same Timer's timeit(1) 20 times, Measurement.merge'd

f is the forward wrapped in a call counter: "calls" is how often the forward really ran per
round. median and IQR are over every timing of every round, computed the same way for all
three (linear quantiles, as Measurement does); (b)'s timings are block means (raw time /
number_per_run), not single runs. "others" is the share of the CPUs' time that other
processes took while an implementation's rounds ran (benchmarks/run.py's OthersShare): above
a few percent the timings compete with them and the ratios mean little. Then (3) the import of torch.utils.benchmark: whole-process
wall time of `python -c "import torch; import torch.utils.benchmark"` against
`python -c "import torch"`, interleaved, one untimed pair first, PYTHONDONTWRITEBYTECODE unset.

About 3 minutes on a 2-core machine. Speed is measured here, never asserted by a unit test.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.benchmark import Measurement, Timer

from rnn_cli.core import bench
from rnn_cli.core.config import RunConfig
from rnn_cli.core.sample import draw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import OthersShare  # noqa: E402 - benchmarks/run.py: other processes' share of the CPUs

REPEAT, WARMUP = 20, 3
MEDIUM = dict(batch=32, seq_len=100, input_size=128, hidden_size=256)
CONFIGS = [
    ("small lstm N=1 L=10 H_in=5 H=8", RunConfig(cell="lstm", batch=1, seq_len=10, hidden_size=8)),
    ("medium rnn N=32 L=100 H_in=128 H=256", RunConfig(cell="rnn", **MEDIUM)),
    ("medium lstm N=32 L=100 H_in=128 H=256", RunConfig(cell="lstm", **MEDIUM)),
    ("medium gru 2 layers bidirectional", RunConfig(cell="gru", num_layers=2, bidirectional=True, **MEDIUM)),
]
METHODS = ("a", "b", "c")


@dataclass
class Counted:
    """The forward, counting its calls."""

    forward: object
    calls: int = 0

    def __call__(self):
        self.calls += 1
        return self.forward()


@dataclass
class Result:
    times: list[float] = field(default_factory=list)  # seconds per call, every round
    calls: list[int] = field(default_factory=list)  # forwards run, one per round


def quartiles(times: list[float]) -> tuple[float, float, float]:
    """(p25, median, p75) with linear interpolation, as Measurement._lazy_init computes them."""
    p25, p50, p75 = np.quantile(np.asarray(times, dtype=np.float64), [0.25, 0.5, 0.75])
    return float(p25), float(p50), float(p75)


def by_measure(impl: bench.Implementation, f: Counted, dtype: str, _min_run_time: float) -> list[float]:
    return list(bench.measure(replace(impl, forward=f), dtype, REPEAT, WARMUP).times_s)


def by_autorange(impl: bench.Implementation, f: Counted, _dtype: str, min_run_time: float) -> list[float]:
    timer = Timer(stmt="f()", globals={"f": f}, num_threads=torch.get_num_threads())
    with impl.context():
        return timer.blocked_autorange(min_run_time=min_run_time).times


def by_timeit(impl: bench.Implementation, f: Counted, _dtype: str, _min_run_time: float) -> list[float]:
    timer = Timer(stmt="f()", globals={"f": f}, num_threads=torch.get_num_threads())
    with impl.context():
        for _ in range(WARMUP):
            f()
        merged = Measurement.merge(timer.timeit(1) for _ in range(REPEAT))
    assert len(merged) == 1 and merged[0].number_per_run == 1
    return merged[0].times


RUNNERS = {"a": by_measure, "b": by_autorange, "c": by_timeit}


def compare_timers(rounds: int, min_run_time: float) -> list[str]:
    lines = [
        "| configuration | impl | method | median ms | IQR ms | IQR/median | timings | calls/round | median / (a) | others |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for label, cfg in CONFIGS:
        sample = draw(cfg)
        for impl in bench.implementations(cfg, sample):
            results = {m: Result() for m in METHODS}
            share = OthersShare()
            for r in range(rounds):
                for m in METHODS[r % 3 :] + METHODS[: r % 3]:  # rotate the order each round
                    f = Counted(impl.forward)
                    results[m].times += RUNNERS[m](impl, f, cfg.dtype, min_run_time)
                    results[m].calls.append(f.calls)
            a_median = quartiles(results["a"].times)[1]
            others = share.fraction()
            others_shown = f"{others:.0%}" if others is not None else "?"
            for m in METHODS:
                res = results[m]
                p25, p50, p75 = quartiles(res.times)
                calls = sorted(set(res.calls))
                calls_shown = str(calls[0]) if len(calls) == 1 else f"{min(calls)}-{max(calls)}"
                lines.append(
                    f"| {label} | {impl.name} {impl.device} | ({m}) | {p50 * 1e3:.4f} | {(p75 - p25) * 1e3:.4f} "
                    f"| {(p75 - p25) / p50:.1%} | {len(res.times)} | {calls_shown} | {p50 / a_median:.3f} | {others_shown} |"
                )
            print(f"  done: {label} {impl.name}", file=sys.stderr, flush=True)
    return lines


def import_times(runs: int) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    commands = {
        "import torch": "import torch",
        "import torch; import torch.utils.benchmark": "import torch; import torch.utils.benchmark",
    }
    times: dict[str, list[float]] = {k: [] for k in commands}

    def once(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.perf_counter() - start

    for code in commands.values():  # one untimed pair: caches, .pyc files
        once(code)
    share = OthersShare()
    for _ in range(runs):
        for name, code in commands.items():
            times[name].append(once(code))
    others = share.fraction()
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["import torch"]
    lines = ["| command | median s | min s | max s | + over import torch |", "|---|---:|---:|---:|---:|"]
    for name, t in times.items():
        lines.append(
            f"| `python -c \"{name}\"` | {medians[name]:.3f} | {min(t):.3f} | {max(t):.3f} "
            f"| {(medians[name] - base) * 1e3:+.0f} ms |"
        )
    lines.append(f"\nother processes took {others:.0%} of the CPUs' time meanwhile" if others is not None else "")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a), (b), (c) per implementation")
    p.add_argument("--min-run-time", type=float, default=0.5, help="blocked_autorange's min_run_time, seconds")
    p.add_argument("--imports", type=int, default=7, help="runs of each import command")
    args = p.parse_args()

    print(
        f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"accelerator available: {torch.accelerator.is_available()}"
    )
    print(
        f"\n## (1) The forward: {args.rounds} interleaved rounds; (a) bench.measure repeat={REPEAT} "
        f"warmup={WARMUP}; (b) blocked_autorange(min_run_time={args.min_run_time}); "
        f"(c) {WARMUP} calls + {REPEAT} x timeit(1)\n"
    )
    print("\n".join(compare_timers(args.rounds, args.min_run_time)), flush=True)
    print(f"\n## (3) Import time: median of {args.imports}, interleaved\n")
    print("\n".join(import_times(args.imports)))


if __name__ == "__main__":
    main()
