"""The real peak of an rnn-cli run, for the memory calibration (tests/test_memory_calibration.py)
and benchmarks/memory.py: what the guard's estimate (guard.estimate_bytes) must cover.

Measured as tests/test_memory.py measures it, by peak RSS (VmHWM) above the interpreter and
its imports, with one change that saves the imports' time: a server process imports numpy,
torch and rnn-cli once, then forks a child per run. The child runs the same command at the
smallest size first (the imports made lazily, BLAS and allocator buffers: what the estimate
leaves out), resets its peak (`5` into /proc/self/clear_refs), runs the command asked, and
reports VmHWM minus the VmRSS it started from. stdout goes to a file.

One thread for numpy's BLAS and torch (as tests/test_memory.py's address-limit tests): with
more, each thread's allocator arena adds slack that changed the same run's peak by up to
25 MiB from one run to the next on a loaded machine; the estimate counts the arrays, and
check_memory's TORCH_IMPORT margin (256 MiB against ~195 measured) covers torch's threads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from rnn_cli.core.config import RunConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SERVER = r"""
import contextlib, json, os, sys
import numpy, torch  # noqa: F401 - imported once, before the forks
import rnn_cli.core.manual, rnn_cli.core.backward, rnn_cli.core.compare, rnn_cli.core.bench  # noqa: F401
from rnn_cli.cli.app import app

def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) * 1024

def run(args, out):
    with open(out, 'w') as f, contextlib.redirect_stdout(f):
        try:
            app(args, standalone_mode=False)
        except SystemExit as e:
            if e.code not in (None, 0, 1):
                raise

def measure(tiny, args, out):
    run(tiny, out)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
    base = status('VmRSS')
    run(args, out)
    return {"held": status('VmHWM') - base}

for line in sys.stdin:
    tiny, args, out = json.loads(line)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            reply = measure(tiny, args, out)
        except BaseException as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(reply).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        reply = f.read()
    os.waitpid(pid, 0)
    print(reply or '{"error": "the child died"}', flush=True)
"""


def args_of(command: str, cfg: RunConfig, flags: tuple[str, ...] = ()) -> list[str]:
    """The command line that runs cfg (sizes, cell, dtype, lengths) with `flags`."""
    args = [command, "--cell", cfg.cell, "--seq-len", str(cfg.seq_len), "--batch", str(cfg.N),
            "--hidden-size", str(cfg.hidden_size), "--input-size", str(cfg.input_size),
            "--layers", str(cfg.num_layers), "--dtype", cfg.dtype]
    if cfg.bidirectional:
        args.append("--bidirectional")
    if cfg.proj_size:
        args += ["--proj-size", str(cfg.proj_size)]
    if cfg.lengths is not None:
        args += ["--lengths", ",".join(map(str, cfg.lengths))]
    if not cfg.pack:
        args.append("--no-pack")
    if command == "bench":
        args += ["--repeat", "1", "--warmup", "0"]
    return args + list(flags)


def tiny(cfg: RunConfig) -> RunConfig:
    """The same configuration at the smallest size."""
    return replace(cfg, seq_len=2, batch=1, hidden_size=2, input_size=1, proj_size=min(cfg.proj_size, 1),
                   lengths=None if cfg.lengths is None else (1,))


class Peaks:
    """The measuring server: `with Peaks() as peaks: peaks.held(command, cfg, flags)`."""

    def __init__(self, out_dir: str) -> None:
        self.out = os.path.join(out_dir, "stdout")

    def __enter__(self) -> "Peaks":
        env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=ROOT, env=env)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)

    def held(self, command: str, cfg: RunConfig, flags: tuple[str, ...] = ()) -> int:
        """Peak bytes the run holds above the same command at the smallest size."""
        request = [args_of(command, tiny(cfg), flags), args_of(command, cfg, flags), self.out]
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"rnn-cli {' '.join(request[1])}: {reply['error']}")
        return reply["held"]
