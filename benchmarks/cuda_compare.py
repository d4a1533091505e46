"""How far cuDNN is from the float64 numpy reference, with TF32 allowed and forbidden.

Runs `compare` (the same code as `rnn-cli compare`) over a matrix of cells and shapes on
CUDA and prints a markdown table of the largest |torch - reference| per configuration,
with the default tolerance and the verdict. This is where compare's CUDA default
tolerances come from; the README quotes its output.

    python benchmarks/cuda_compare.py > cuda-compare.md     # needs a CUDA GPU
"""

from __future__ import annotations

import itertools
import platform
import sys

import torch

from rnn_cli.core import compare
from rnn_cli.core.config import RunConfig

SHAPES = [  # (N, L, H_in, H, layers, bidirectional)
    (4, 10, 5, 8, 1, False),
    (32, 100, 128, 256, 2, True),
    (64, 200, 256, 512, 2, False),
]


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 1
    print(f"# cuDNN vs the float64 numpy reference ({torch.cuda.get_device_name(0)})\n")
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
        f"Python {platform.python_version()}; seed 0; largest |torch - reference| over output, h_n and c_n.\n"
    )
    print("| cell | N L H_in H layers bidir | lengths | dtype | TF32 | max abs diff | tolerance (atol = rtol) | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    failures = 0
    for cell, shape, lengths, dtype, tf32 in itertools.product(
        ("rnn", "lstm", "gru"), SHAPES, (False, True), ("float32", "float64"), (True, False)
    ):
        if dtype == "float64" and not tf32:
            continue  # TF32 never applies to float64
        N, L, H_in, H, layers, bidir = shape
        lens = tuple(max(1, L - (i * L) // N) for i in range(N)) if lengths else None
        cfg = RunConfig(
            cell=cell,
           
            input_size=H_in,
            hidden_size=H,
            num_layers=layers,
            bidirectional=bidir,
            seq_len=L,
            batch=N,
            lengths=lens,
            dtype=dtype,
            device="cuda",
        )
        result = compare.run(cfg, tf32=tf32)
        worst = max((c.max_abs_diff or 0.0) for c in result.checks if c.name != "batch_sizes")
        failures += not result.ok
        tf32_text = "-" if result.torch.tf32 is None else ("on" if result.torch.tf32 else "off")
        print(
            f"| {cell} | {N} {L} {H_in} {H} {layers} {'yes' if bidir else 'no'} | {'yes' if lengths else 'no'} "
            f"| {dtype} | {tf32_text} | {worst:.2e} | {result.tolerance.atol:g} | {'pass' if result.ok else 'FAIL'} |",
            flush=True,
        )
    print(f"\n{failures} configuration(s) outside the default tolerance.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
