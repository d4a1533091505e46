"""Peak RSS of real runs against the memory guard's estimate (rnn_cli.core.config.estimate_bytes).

Each case runs `python -m rnn_cli COMMAND ...` in a subprocess with stdout drained through a
pipe; its peak RSS (os.wait4's ru_maxrss) minus the peak of the same command, cell and
output at the smallest size (the interpreter and its imports, which the estimate leaves out)
is what the run itself held. Goal: estimate / peak in [1.0, 1.5] for every case.

    PYTHONPATH=$PWD python benchmarks/memory.py [--quick] [--out benchmarks/MEMORY.md]

About 5 minutes on 2 cores; --quick runs the first few cases only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from rnn_cli.core.config import RunConfig, estimate_bytes

MiB = 2**20
TINY = dict(seq_len=1, batch=1, hidden_size=2, input_size=1, num_layers=1, proj_size=0, lengths=None)


@dataclass(frozen=True)
class Case:
    command: str
    cfg: RunConfig
    json: bool = False
    values: bool = True

    def args(self, cfg: RunConfig | None = None) -> list[str]:
        c = cfg or self.cfg
        args = [self.command, "--cell", c.cell, "--seq-len", str(c.seq_len), "--batch", str(c.N),
                "--hidden-size", str(c.hidden_size), "--input-size", str(c.input_size),
                "--layers", str(c.num_layers), "--dtype", c.dtype]
        if c.bidirectional:
            args.append("--bidirectional")
        if c.proj_size:
            args += ["--proj-size", str(c.proj_size)]
        if c.lengths is not None:
            args += ["--lengths", ",".join(map(str, c.lengths))]
        if self.json:
            args.append("--json")
        if not self.values and self.command != "bench":
            args.append("--no-values")
        if self.command == "bench":
            args += ["--repeat", "1", "--warmup", "0"]
        return args

    def baseline_key(self) -> tuple:
        return (self.command, self.cfg.cell, self.cfg.dtype, self.json, self.values)

    def label(self) -> str:
        args = self.args()
        if self.cfg.lengths is not None:
            i = args.index("--lengths") + 1
            args[i] = f"{args[i][:12]}...({len(self.cfg.lengths)} values)"
        return " ".join(args)


@dataclass
class Row:
    case: Case
    peak: int = 0
    baseline: int = 0
    seconds: float = 0.0
    out_bytes: int = 0
    estimate: int = field(init=False)

    def __post_init__(self) -> None:
        c = self.case
        self.estimate = estimate_bytes(c.cfg, c.command, c.json, c.values)

    @property
    def held(self) -> int:
        return max(self.peak - self.baseline, 1)

    @property
    def ratio(self) -> float:
        return self.estimate / self.held


def peak_rss(args: list[str]) -> tuple[int, int, float]:
    """(peak RSS in bytes, bytes written on stdout, seconds) of `python -m rnn_cli ARGS`."""
    start = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "rnn_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    written = 0
    while chunk := p.stdout.read(1 << 20):
        written += len(chunk)
    err = p.stderr.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        raise RuntimeError(f"rnn-cli {' '.join(args)} exited {code}: {err[-500:]}")
    return usage.ru_maxrss * 1024, written, time.perf_counter() - start


def cases() -> list[Case]:
    """Sizes where the arrays dominate the measurement (~60 MiB to ~2 GiB held)."""
    wide = dict(input_size=8, hidden_size=32)
    out: list[Case] = []
    for cell in ("rnn", "lstm", "gru"):
        mid = RunConfig(cell=cell, seq_len=500, batch=2048, **wide)  # output 125 MiB
        out += [
            Case("manual", mid),
            Case("manual", mid, values=False),
            Case("torch", mid),
            Case("torch", mid, values=False),
            Case("compare", replace(mid, seq_len=250)),
        ]
        if cell != "lstm":
            out.append(Case("torch", replace(mid, num_layers=3, bidirectional=True)))
        if cell == "rnn":
            out.append(Case("manual", replace(mid, num_layers=3, bidirectional=True)))
        if cell != "lstm":
            out.append(Case("manual", RunConfig(cell=cell, seq_len=200000, batch=8, hidden_size=16, input_size=1), json=True))
        out.append(Case("torch", RunConfig(cell=cell, seq_len=50000, batch=16, hidden_size=16, input_size=1), json=True))
    big = RunConfig(cell="lstm", seq_len=2000, batch=4096, input_size=8, hidden_size=32)  # output 1 GiB
    out += [
        Case("manual", big, values=False),
        Case("torch", big, values=False),
        Case("manual", RunConfig(cell="gru", seq_len=1, batch=1_000_000, hidden_size=64, input_size=64)),
        Case("manual", RunConfig(cell="rnn", seq_len=1_000_000, batch=1, hidden_size=16, input_size=4)),
        Case("torch", RunConfig(cell="lstm", seq_len=500, batch=2048, hidden_size=64, proj_size=16, input_size=8)),
        Case("torch", RunConfig(cell="gru", seq_len=500, batch=1024, hidden_size=32, input_size=8, dtype="float64")),
        Case("torch", RunConfig(cell="rnn", seq_len=500, batch=1024, hidden_size=64, input_size=8,
                                lengths=tuple(500 - i % 300 for i in range(1024)))),
        Case("compare", RunConfig(cell="lstm", seq_len=250, batch=1024, hidden_size=32, input_size=8, num_layers=2), json=True),
        Case("bench", RunConfig(cell="gru", seq_len=500, batch=2048, **wide)),
    ]
    return out


def measure(rows: list[Row], jobs: int = 2) -> None:
    baselines: dict[tuple, int] = {}
    for row in rows:  # one at a time: the floors are small and quick
        key = row.case.baseline_key()
        if key not in baselines:
            baselines[key] = peak_rss(row.case.args(replace(row.case.cfg, **TINY)))[0]
        row.baseline = baselines[key]

    def one(row: Row) -> Row:
        row.peak, row.out_bytes, row.seconds = peak_rss(row.case.args())
        print(f"{row.ratio:5.2f}  {row.held / MiB:8.1f} MiB held  {row.estimate / MiB:8.1f} MiB est  "
              f"{row.seconds:5.1f}s  {row.case.label()}", flush=True)
        return row

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, rows))


def report(rows: list[Row], command_line: str) -> str:
    ratios = [r.ratio for r in rows]
    lines = [
        "# Memory: the guard's estimate against measured peak RSS",
        "",
        f"Produced by `{command_line}` (benchmarks/memory.py). Each run's peak RSS (ru_maxrss of",
        "the `python -m rnn_cli` subprocess, stdout drained through a pipe) minus the peak of the",
        "same command, cell, dtype and output at the smallest size (interpreter and imports) is",
        "*held*; *estimate* is `rnn_cli.core.config.estimate_bytes(cfg, command, json, values)`.",
        "check_memory adds the torch import (TORCH_IMPORT) for commands that need it.",
        "",
        f"**estimate / held: {min(ratios):.2f} to {max(ratios):.2f}** over {len(rows)} runs "
        f"(goal: within [1.0, 1.5]; {sum(1.0 <= x <= 1.5 for x in ratios)} of {len(rows)} are).",
        "",
        "`--json` is streamed array by array (documents.write_document): before it, json.dumps of",
        "the whole document held ~90 bytes per number (`manual --json --seq-len 20000 --batch 8",
        "--hidden-size 16`: 306 MiB held for 13 MiB of arrays; streamed: 33 MiB, the same bytes).",
        "",
        "| command | held MiB | estimate MiB | ratio | stdout MiB | s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r.case.label()}` | {r.held / MiB:.1f} | {r.estimate / MiB:.1f} | {r.ratio:.2f} | "
            f"{r.out_bytes / MiB:.1f} | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 4 cases only")
    parser.add_argument("--only", default="", help="run the cases whose label contains this")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown report here")
    args = parser.parse_args()
    rows = [Row(c) for c in cases() if args.only in c.label()]
    if args.quick:
        rows = rows[:4]
    start = time.perf_counter()
    measure(rows)
    print(f"{time.perf_counter() - start:.0f}s; ratio {min(r.ratio for r in rows):.2f} to {max(r.ratio for r in rows):.2f}")
    if args.out is not None:
        args.out.write_text(report(rows, "PYTHONPATH=$PWD python " + " ".join(sys.argv)))


if __name__ == "__main__":
    main()
