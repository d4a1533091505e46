"""Does a wavefront over the layers, or a cheaper LSTM step, pay in the numpy reference?

    python benchmarks/wavefront.py                 # everything, markdown on stdout (~13 min on a shared 2-core VM)
    python benchmarks/wavefront.py --quick         # small sizes, few runs, for development
    python benchmarks/wavefront.py --only sigmoid  # one part: check, wavefront, lstm or sigmoid
    python benchmarks/wavefront.py --only wavefront --size 1 --threads 1  # SIZES[1] only, 1 thread

An experiment, not product code: rnn_cli/core/manual.py is unchanged by it. It runs on manual.py
as it was at commit run.BEFORE (597b1e3, before issue 26 rewrote the step loop). Four parts:

check      the variants below against manual.forward / manual.lstm_cell in float64
           (max abs difference), with and without lengths, with proj_size.
wavefront  for a unidirectional stack (D = 1, num_layers = K >= 2) the layers step together.
           At wave step s, layer k works on time t = s - k, so the input it needs (layer
           k-1's output at t) is what layer k-1 produced at wave s-1. Per wave, the
           recurrent products h_{t-1} W_hh^T of every active layer are one batched product
           (the layers' W_hh^T stacked on the leading axis where manual.py stacks
           directions), and the input projections of the active layers k >= 1 are one more
           (their W_ih^T are all (H_out, G*H_cell)); layer 0's stays hoisted over all L steps.
           L + K - 1 waves instead of K * L steps. Timed against manual.forward, float32.
lstm       lstm_cell with fewer, larger elementwise calls, swapped into manual.run_layer,
           against manual.lstm_cell: num_layers 1, uni- and bidirectional, float32.
sigmoid    sigmoid(z) = 0.5 * (1 + tanh(z / 2)) against manual.sigmoid and an exact
           reference (decimal, 50 digits), near z = -30: relative error.

Threads: --threads (default 2) goes into OMP/OPENBLAS/MKL_NUM_THREADS before numpy is
imported. Timing: the implementations alternate run by run after one untimed round, and
the medians are reported; the share of the CPUs other processes took is printed.
numpy only, plus rnn_cli.
"""

from __future__ import annotations

import argparse
import inspect
import os
import statistics
import sys
import time
from decimal import Decimal, getcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run.py: OthersShare, load_average (stdlib only)
sys.path.insert(0, str(HERE.parent))  # rnn_cli from this checkout

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--quick", action="store_true")
parser.add_argument("--only", choices=("check", "wavefront", "lstm", "sigmoid"), default=None)
parser.add_argument("--size", type=int, action="append", help="only SIZES[i] (repeatable)")
ARGS = parser.parse_args() if __name__ == "__main__" else parser.parse_args([])
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)  # before numpy is imported

import numpy as np  # noqa: E402

from rnn_cli.core.config import RunConfig  # noqa: E402
from rnn_cli.core.sample import draw, step_mask  # noqa: E402
from run import OthersShare, load_average, manual_before  # noqa: E402

# The experiment was written against manual.py as it was before issue 26 (directions
# batched in 3-D stacks, Layer, cells taking b_hh): it runs on that version, from git.
manual = manual_before()
Forward, Layer, gru_cell, lstm_cell, rnn_cell, sigmoid = (
    manual.Forward, manual.Layer, manual.gru_cell, manual.lstm_cell, manual.rnn_cell, manual.sigmoid)

# (N, L, H_in, H) and timed runs per implementation. The first three are the issue's; the
# last is benchmarks/run.py's long thin case, where per-step overhead dominates (--size 3).
SIZES = [((1, 10, 5, 8), 41), ((32, 100, 128, 256), 15), ((64, 200, 256, 512), 5), ((1, 1000, 64, 64), 15)]
QUICK_SIZES = [((1, 10, 5, 8), 15), ((8, 20, 16, 32), 7)]
CELLS = ("rnn", "lstm", "gru")


# ---- (1) the wavefront ----------------------------------------------------------------


def wavefront_forward(cfg: RunConfig, params: dict[str, np.ndarray], x: np.ndarray, h_0: np.ndarray,
                      c_0: np.ndarray | None = None) -> Forward:
    """manual.forward for D = 1, num_layers = K >= 2, the layers stepping as a wavefront."""
    L, N, H_in = x.shape  # time-major
    K = cfg.num_layers
    assert cfg.D == 1 and K >= 2
    layers = [Layer.of(cfg, params, k) for k in range(K)]  # each stacked over D = 1

    def stack(name: str, first: int = 0):  # (K - first, ...): the layers on the leading axis
        parts = [getattr(w, name) for w in layers[first:]]
        return None if parts[0] is None else np.concatenate(parts)

    W_ih_T, W_hh_T = stack("W_ih_T", first=1), stack("W_hh_T")  # (K-1, H_out, G*H_cell), (K, H_out, G*H_cell)
    b_ih, b_hh, W_hr_T = stack("b_ih"), stack("b_hh"), stack("W_hr_T")  # (K, 1, G*H_cell), ..., (K, H_cell, proj_size)
    x_proj = x.reshape(L * N, H_in) @ layers[0].W_ih_T[0]  # (L*N, G*H_cell): layer 0, all steps
    if b_ih is not None:
        x_proj += b_ih[0]
    x_proj = x_proj.reshape(L, N, -1)  # (L, N, G*H_cell)
    mask = step_mask(cfg)[:, :, 0] if cfg.packed else None  # (L, N)
    output = np.zeros((L, N, cfg.H_out), x.dtype)  # (L, N, H_out)
    h = h_0.copy()  # (K, N, H_out)
    c = None if c_0 is None else c_0.copy()  # (K, N, H_cell)
    for s in range(L + K - 1):
        lo, hi = max(0, s - L + 1), min(K - 1, s)  # the active layers: 0 <= t = s - k < L
        a, up = slice(lo, hi + 1), slice(max(lo, 1), hi + 1)  # active, and active above layer 0
        parts = [x_proj[s][None]] if lo == 0 else []  # (1, N, G*H_cell)
        if up.start <= hi:  # layer k reads h[k-1]: layer k-1's output at t = s - k, made at wave s-1
            above = h[up.start - 1:hi] @ W_ih_T[up.start - 1:hi]  # (K', N, G*H_cell)
            parts.append(above if b_ih is None else above + b_ih[up])
        x_t = np.concatenate(parts) if len(parts) > 1 else parts[0]  # (A, N, G*H_cell)
        b = None if b_hh is None else b_hh[a]  # (A, 1, G*H_cell)
        if cfg.cell == "rnn":
            h_new, c_new = rnn_cell(x_t, h[a], W_hh_T[a], b, cfg.nonlinearity), None
        elif cfg.cell == "lstm":
            h_new, c_new = lstm_cell(x_t, h[a], c[a], W_hh_T[a], b, None if W_hr_T is None else W_hr_T[a])
        else:
            h_new, c_new = gru_cell(x_t, h[a], W_hh_T[a], b), None
        if mask is not None:
            real = mask[s - np.arange(lo, hi + 1)][:, :, None]  # (A, N, 1): each layer's own t
            h_new = np.where(real, h_new, h[a])
            c_new = None if c is None else np.where(real, c_new, c[a])
        h[a] = h_new
        if c is not None:
            c[a] = c_new
        if hi == K - 1:  # the top layer made output step t = s - (K-1)
            top = h_new[-1] if mask is None else np.where(real[-1], h_new[-1], 0)  # zero past the end
            output[s - K + 1] = top
    return Forward(output=output, h_n=h, c_n=c, layer_outputs=[])


# ---- (2) cheaper LSTM steps -----------------------------------------------------------


def lstm_cell_one_sigmoid(x_proj, h, c, W_hh_T, b_hh, W_hr_T):
    """lstm_cell with one sigmoid over all four gates and one tanh over g (sigmoid(g) unused)."""
    gates = x_proj + h @ W_hh_T  # (D, N, 4*H_cell)
    if b_hh is not None:
        gates += b_hh
    g = np.tanh(gates[..., 2 * c.shape[-1]:3 * c.shape[-1]])  # (D, N, H_cell)
    i, f, _, o = np.split(sigmoid(gates), 4, axis=-1)  # torch's order
    c = f * c + i * g  # (D, N, H_cell)
    h = o * np.tanh(c)  # (D, N, H_cell)
    if W_hr_T is not None:
        h = h @ W_hr_T  # (D, N, proj_size)
    return h, c


def lstm_cell_one_tanh(x_proj, h, c, W_hh_T, b_hh, W_hr_T):
    """lstm_cell with one tanh over all four gates: sigmoid(z) = 0.5 * (1 + tanh(z / 2)).
    Not accurate in relative terms for z << 0 (see part 4)."""
    gates = x_proj + h @ W_hh_T  # (D, N, 4*H_cell)
    if b_hh is not None:
        gates += b_hh
    H = c.shape[-1]
    scale = np.full(4 * H, 0.5, gates.dtype)
    scale[2 * H:3 * H] = 1  # g is tanh(g); i, f, o are 0.5 * (1 + tanh(z / 2))
    t = np.tanh(gates * scale)  # (D, N, 4*H_cell)
    i, f, g, o = np.split(t, 4, axis=-1)
    i, f, o = 0.5 * (1 + i), 0.5 * (1 + f), 0.5 * (1 + o)
    c = f * c + i * g  # (D, N, H_cell)
    h = o * np.tanh(c)  # (D, N, H_cell)
    if W_hr_T is not None:
        h = h @ W_hr_T  # (D, N, proj_size)
    return h, c


LSTM_VARIANTS = {"one sigmoid": lstm_cell_one_sigmoid, "one tanh": lstm_cell_one_tanh}


class cell_swapped:
    """manual.run_layer calls manual's module-level lstm_cell: swap it for a variant."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        self.saved, manual.lstm_cell = manual.lstm_cell, self.fn

    def __exit__(self, *exc):
        manual.lstm_cell = self.saved


# ---- checks, timing, tables -----------------------------------------------------------


def plain(cfg: RunConfig, sample) -> Forward:
    return manual.forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0)


def max_diff(a: Forward, b: Forward) -> float:
    pairs = [(a.output, b.output), (a.h_n, b.h_n)] + ([(a.c_n, b.c_n)] if a.c_n is not None else [])
    return max(float(np.max(np.abs(x - y))) for x, y in pairs)


CHECK_CONFIGS = [
    dict(cell="rnn", num_layers=2),
    dict(cell="rnn", num_layers=3, nonlinearity="relu", bias=False),
    dict(cell="lstm", num_layers=2),
    dict(cell="lstm", num_layers=4, proj_size=3),
    dict(cell="gru", num_layers=3),
    dict(cell="gru", num_layers=2, seq_len=3),  # K close to L: ramp up meets ramp down
    dict(cell="rnn", num_layers=5, seq_len=2),  # K > L
    dict(cell="lstm", num_layers=3, batch=4, lengths=(7, 10, 1, 4), h0="random"),
    dict(cell="gru", num_layers=2, batch=3, lengths=(2, 10, 5), h0="random"),
    dict(cell="lstm", num_layers=2, batch=3, lengths=(10, 3, 6), proj_size=4, h0="random"),
]


def check() -> None:
    print("### Checks: max |variant - manual|, float64\n")
    print("| config | wavefront | lstm one sigmoid | lstm one tanh |")
    print("|---|---|---|---|")
    worst = 0.0
    for kw in CHECK_CONFIGS:
        kw = dict(kw)  # CHECK_CONFIGS stays as written
        cfg = RunConfig(dtype="float64", batch=kw.pop("batch", 2), **kw)
        sample = draw(cfg)
        ref = plain(cfg, sample)
        cols = [max_diff(wavefront_forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0), ref)]
        for fn in LSTM_VARIANTS.values():
            if cfg.cell != "lstm":
                cols.append(None)
                continue
            with cell_swapped(fn):
                cols.append(max_diff(plain(cfg, sample), ref))
        worst = max(worst, *(v for v in cols if v is not None))
        print(f"| {cfg.cell} layers={cfg.num_layers} L={cfg.seq_len} N={cfg.N}"
              + (f" proj={cfg.proj_size}" if cfg.proj_size else "")
              + (f" lengths={list(cfg.lengths)}" if cfg.lengths else "")
              + (f" {cfg.nonlinearity} bias={cfg.bias}" if cfg.cell == "rnn" else "")
              + " | " + " | ".join("-" if v is None else f"{v:.1e}" for v in cols) + " |")
    print(f"\nworst: {worst:.1e}" + ("" if worst < 1e-12 else "  ** ABOVE 1e-12 **") + "\n")
    if worst >= 1e-12:
        sys.exit("a variant disagrees with manual.forward")


def timed(fns: dict[str, callable], runs: int) -> dict[str, float]:
    """Median ms of each fn, the fns alternating run by run, after one untimed round; and
    "others": the % of the CPUs' time other processes took meanwhile."""
    others = OthersShare()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    share = others.fraction()
    return {k: 1e3 * statistics.median(v) for k, v in times.items()} | {"others": -1 if share is None else 100 * share}


def size_name(size) -> str:
    N, L, H_in, H = size
    return f"N={N} L={L} H_in={H_in} H={H}"


def bench_wavefront(sizes) -> None:
    print("### Wavefront vs manual.forward (float32, D=1)\n")
    print("| size | cell | layers | runs | plain ms | wavefront ms | wavefront / plain | others % |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for size, runs in sizes:
        N, L, H_in, H = size
        for cell in CELLS:
            for K in (2, 4):
                cfg = RunConfig(cell=cell, input_size=H_in, hidden_size=H, num_layers=K, seq_len=L, batch=N)
                s = draw(cfg)
                ms = timed({"plain": lambda: plain(cfg, s),
                            "wave": lambda: wavefront_forward(cfg, s.params, s.x, s.h_0, s.c_0)}, runs)
                print(f"| {size_name(size)} | {cell} | {K} | {runs} | {ms['plain']:.3f} | {ms['wave']:.3f} "
                      f"| {ms['wave'] / ms['plain']:.2f} | {ms['others']:.0f} |", flush=True)
    print()


def bench_lstm(sizes) -> None:
    print("### LSTM step variants vs manual.lstm_cell (float32, num_layers=1, manual.forward)\n")
    names = list(LSTM_VARIANTS)
    print("| size | D | runs | lstm_cell ms | " + " | ".join(f"{n} ms | {n} / lstm_cell" for n in names)
          + " | others % |")
    print("|---|---:|---:|---:|" + "---:|---:|" * len(names) + "---:|")
    for size, runs in sizes:
        N, L, H_in, H = size
        for bidirectional in (False, True):
            cfg = RunConfig(cell="lstm", input_size=H_in, hidden_size=H, seq_len=L, batch=N,
                            bidirectional=bidirectional)
            s = draw(cfg)

            def swapped(fn):
                def go():
                    with cell_swapped(fn):
                        plain(cfg, s)
                return go

            fns = {"lstm_cell": lambda: plain(cfg, s)} | {n: swapped(fn) for n, fn in LSTM_VARIANTS.items()}
            ms = timed(fns, runs)
            cols = " | ".join(f"{ms[n]:.3f} | {ms[n] / ms['lstm_cell']:.2f}" for n in names)
            print(f"| {size_name(size)} | {cfg.D} | {runs} | {ms['lstm_cell']:.3f} | {cols} | {ms['others']:.0f} |",
                  flush=True)
    print()


def exact_sigmoid(z: float) -> Decimal:
    getcontext().prec = 50
    return 1 / (1 + (-Decimal(z)).exp())


def sigmoid_accuracy() -> None:
    print("### sigmoid(z) = 0.5 * (1 + tanh(z / 2)) vs manual.sigmoid: relative error against exact\n")
    print("| z | dtype | exact | manual.sigmoid rel. error | via tanh | via tanh rel. error |")
    print("|---:|---|---:|---:|---:|---:|")
    for dtype in (np.float32, np.float64):
        for z in (-5.0, -10.0, -15.0, -20.0, -30.0, -40.0):
            zz = np.array([z], dtype)
            exact = exact_sigmoid(float(zz[0]))
            ours = sigmoid(zz)[0]
            via_tanh = (0.5 * (1 + np.tanh(zz / 2)))[0]

            def rel(v) -> str:
                return f"{float(abs((Decimal(float(v)) - exact) / exact)):.1e}"

            print(f"| {z:g} | {np.dtype(dtype).name} | {float(exact):.4e} | {rel(ours)} | {float(via_tanh):.4e} "
                  f"| {rel(via_tanh)} |")
    print()


def lines_of(*fns) -> int:
    """Non-blank source lines of the functions: what they would add to rnn_cli/core/manual.py."""
    return sum(1 for fn in fns for line in inspect.getsource(fn).splitlines() if line.strip())


def main() -> None:
    sizes = QUICK_SIZES if ARGS.quick else SIZES
    if ARGS.size is not None and max(ARGS.size) >= len(sizes):
        raise SystemExit(f"--size takes 0 to {len(sizes) - 1}{' with --quick' if ARGS.quick else ''}")
    sizes = sizes[:3] if ARGS.size is None else [sizes[i] for i in ARGS.size]
    print(f"`python benchmarks/wavefront.py{' --quick' if ARGS.quick else ''}"
          f"{' --only ' + ARGS.only if ARGS.only else ''}{''.join(f' --size {i}' for i in ARGS.size or [])}"
          f"{f' --threads {ARGS.threads}' if ARGS.threads != 2 else ''}` — numpy {np.__version__}, "
          f"{ARGS.threads} threads, load {load_average()} at start\n")
    others = OthersShare()
    parts = {"check": check, "wavefront": lambda: bench_wavefront(sizes), "lstm": lambda: bench_lstm(sizes),
             "sigmoid": sigmoid_accuracy}
    for name, part in parts.items():
        if ARGS.only in (None, name):
            part()
    print("### Lines each variant would add to rnn_cli/core/manual.py (non-blank, with docstrings)\n")
    print(f"- wavefront_forward: {lines_of(wavefront_forward)} (plus a branch in manual.forward to choose it)")
    for n, fn in LSTM_VARIANTS.items():
        print(f"- lstm_cell {n}: {lines_of(fn) - lines_of(lstm_cell):+d} against lstm_cell's {lines_of(lstm_cell)}")
    share = others.fraction()
    print(f"\nload {load_average()} at end; other processes took "
          f"{'unknown' if share is None else f'{100 * share:.0f}%'} of the CPUs' time while this ran")


if __name__ == "__main__":
    main()
