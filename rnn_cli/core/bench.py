"""bench: how fast is this configuration here? Times the forward of every implementation
that can run it: the numpy memory cell on the CPU, torch on the CPU, torch on CUDA, and
onnxruntime on the layer as `rnn-cli onnx` exports it (bench_onnx.py; CPU, and CUDA with
torch's CUDA row) when the onnx extra is installed.

Every implementation gets the same seeded sample (the draw of `manual` and `torch`),
`warmup` untimed runs, then `repeat` timed runs of the forward alone: no import, no
module construction, no copy of the results. CPU runs are timed with time.perf_counter;
CUDA runs with a pair of CUDA events around the forward, after synchronising the device,
so each timing is one whole forward on an idle GPU. torch runs in inference mode, with
TF32 in cuDNN as asked (--no-tf32). With --lengths, torch packs, runs and pads (as
`rnn-cli torch` does) and the numpy cell masks.

Threads: torch uses torch.get_num_threads(); numpy's BLAS is held to the same number
when threadpoolctl is installed (it is not a dependency); otherwise the BLAS runs on its
own count (OPENBLAS_NUM_THREADS or OMP_NUM_THREADS, else one per CPU for OpenBLAS), and the
view says which library it is (numpy's build configuration) and what sets its count.
onnxruntime gets torch's count as its intra-op threads.

Sizes: without size flags bench times DEFAULT_SIZES (H_in 64, H 128, N 32, L 100), where
one forward is milliseconds for every cell, not the other commands' 10-step toy, whose
microseconds are mostly timer and call overhead. A row whose slowest timed run is more
than SPREAD_LIMIT times its fastest says so: something else was running; rerun.

Speed is measured here and in benchmarks/, never asserted by a unit test.
torch is imported only inside the functions that need it; the table and the JSON
document are drawn by views/bench.py and documents.py.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, Optional

from rnn_cli.core.config import RunConfig
from rnn_cli.core.timing import SPREAD_LIMIT, Implementation, Timing, cpu_time, cuda_timer, measure  # noqa: F401 - bench.X for callers

if TYPE_CHECKING:
    from rnn_cli.core.sample import Provenance

FLOP_FORMULA = "2 * macs + element-wise operations, per layer, direction and real step (rnn_cli.core.cost)"
# bench's sizes where the flags leave them unset: about 0.2 (rnn) to 0.6 (lstm) GFLOP a forward
DEFAULT_SIZES = {"input_size": 64, "hidden_size": 128, "seq_len": 100, "batch": 32}


def forward_flops(cfg: RunConfig) -> int:
    """Floating-point operations of one forward, as `--show cost` counts them (rnn_cli.core.cost):
    FLOPs = 2 * macs + element-wise operations, over the steps actually computed (padding
    is not work when packed). One definition of work for every command."""
    from rnn_cli.core.cost import forward_flops as cost_flops

    return cost_flops(cfg)


# ---- threads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Threads:
    torch: Optional[int]  # torch.get_num_threads(), None without torch
    numpy: Optional[int]  # threads of numpy's BLAS during the run, None when unknown
    numpy_source: str  # how numpy's count is known
    blas: Optional[str]  # numpy's BLAS library, as threadpoolctl names it, else from numpy's build configuration
    blas_env: tuple[str, ...] = ()  # OPENBLAS_NUM_THREADS=1 ...: the variables that set its count, without threadpoolctl
    cpus: Optional[int] = None  # CPUs this process may use (OpenBLAS's default count)


def _numpy_blas() -> tuple[Optional[int], Optional[str]]:
    """(threads, library) of numpy's BLAS via threadpoolctl, or (None, None) without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None, None
    import numpy  # noqa: F401 - its BLAS must be loaded to be seen

    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return int(info["num_threads"]), str(info.get("internal_api"))
    return None, None


def _numpy_build_blas() -> Optional[str]:
    """The BLAS numpy was built with ('scipy-openblas 0.3.31'), from its build configuration."""
    import numpy as np

    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):
        return None


def _numpy_backend() -> str:
    """numpy and the BLAS it was built with, from numpy's build configuration."""
    import numpy as np

    blas = _numpy_build_blas()
    return f"numpy {np.__version__}" + (f", {blas}" if blas else "")


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cpus() -> Optional[int]:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


@contextmanager
def _blas_threads(n: Optional[int]) -> Iterator[None]:
    """Hold numpy's BLAS to n threads for the block, when threadpoolctl can."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield


# ---- implementations and timing -------------------------------------------------------------


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _cudnn_version(torch) -> Optional[str]:
    """torch.backends.cudnn.version() (91900) as 9.19.0; None without cuDNN."""
    if not torch.backends.cudnn.is_available():
        return None
    v = torch.backends.cudnn.version()
    base = 10000 if v >= 90000 else 1000  # cuDNN 9 packs major*10000, cuDNN 8 major*1000
    return f"{v // base}.{v % base // 100}.{v % 100}"


def _manual_implementation(cfg: RunConfig, sample, upstream, numpy_threads: Optional[int]) -> Implementation:
    """The numpy cell (with `upstream`: its forward and BPTT), numpy's BLAS held to numpy_threads."""
    from rnn_cli.core import backward, manual

    def manual_forward():
        if upstream is not None:
            return backward.gradients(cfg, sample.params, sample.x, sample.h_0, sample.c_0, upstream)
        return manual.forward(cfg, sample.params, sample.x, sample.h_0, sample.c_0)

    return Implementation(
        name="manual",
        device="cpu",
        backend=_numpy_backend(),
        forward=manual_forward,
        context=lambda: _blas_threads(numpy_threads),
        time_once=cpu_time,
    )


def _torch_forward(cfg: RunConfig, sample, device, upstream) -> Callable[[], object]:
    """torch's forward on `device` (with `upstream`: forward and backward through autograd),
    its module built and its inputs moved here, outside any timing."""
    from rnn_cli.core import torch_run

    module, x, hx = torch_run.prepare(cfg, sample, device)
    if upstream is None:
        return lambda: torch_run.forward(cfg, module, x, hx)
    from rnn_cli.core import torch_grad

    for t in (x, *(hx if isinstance(hx, tuple) else (hx,))):
        t.requires_grad_(True)
    G = torch_grad.upstream_tensors(cfg, upstream, device)

    def forward_backward():
        module.zero_grad(set_to_none=True)
        return torch_grad.forward_backward(cfg, module, x, hx, G)

    return forward_backward


def _torch_implementation(cfg: RunConfig, sample, device, upstream, tf32: bool, torch) -> Implementation:
    """torch on one device: inference mode (or autograd with `upstream`), cuDNN's TF32 as asked."""
    from rnn_cli.core import torch_run

    on_cuda = device.type == "cuda"

    def context() -> ContextManager:
        stack = ExitStack()
        stack.enter_context(torch.enable_grad() if upstream is not None else torch.inference_mode())
        stack.enter_context(torch_run.quiet_onednn())
        if on_cuda:
            stack.enter_context(torch.cuda.device(device))
            stack.enter_context(torch_run.cudnn_tf32(tf32))
        return stack

    if on_cuda:
        cudnn = _cudnn_version(torch)
        backend = (f"cuDNN {cudnn}" if cudnn else "CUDA") + f" on {torch.cuda.get_device_name(device)}"
    else:
        backend = f"torch {torch.__version__} (ATen)"
    return Implementation(
        name="torch",
        device=torch_run.device_name(device),
        backend=backend,
        forward=_torch_forward(cfg, sample, device, upstream),
        context=context,
        time_once=cuda_timer(torch, device) if on_cuda else cpu_time,
        tf32=tf32 if on_cuda and cfg.dtype == "float32" else None,
    )


def _torch_devices(cfg: RunConfig, torch) -> list:
    """The CPU, then the CUDA device when cfg.device is cuda[:N] (an RnnCliError when there is
    none) or auto (when there is one)."""
    from rnn_cli.core import torch_run

    devices = [torch.device("cpu")]
    if cfg.device != "cpu":
        resolved = torch_run.resolve_device(cfg.device)
        if resolved.type == "cuda":
            devices.append(resolved)
    return devices


def implementations(cfg: RunConfig, sample, tf32: bool = True, grad: Optional[str] = None) -> list[Implementation]:
    """The forwards bench times for cfg, first the numpy cell, then torch on the CPU, then
    torch on CUDA when cfg.device is cuda[:N] (an RnnCliError when there is none) or auto
    (when there is one). With `grad` (a loss), each one is a forward and a backward pass
    (rnn_cli.core.backward for numpy, autograd for torch). Builds modules and moves inputs here,
    outside any timing."""
    upstream = None
    if grad is not None:
        from rnn_cli.core.loss import draw_upstream

        upstream = draw_upstream(cfg, grad, sample)
    torch = _import_torch()
    numpy_threads = torch.get_num_threads() if torch is not None else None  # numpy's BLAS is held to torch's count
    impls = [_manual_implementation(cfg, sample, upstream, numpy_threads)]
    if torch is None:
        return impls
    return impls + [_torch_implementation(cfg, sample, d, upstream, tf32, torch) for d in _torch_devices(cfg, torch)]


@dataclass
class Bench:
    cfg: RunConfig
    provenance: Provenance  # where the timed sample's numbers came from (seed or the user's files)
    repeat: int
    warmup: int
    flops: int
    threads: Threads
    timings: list[Timing] = field(default_factory=list)
    versions: dict[str, Optional[str]] = field(default_factory=dict)
    grad: Optional[str] = None  # the loss when forward and backward were timed
    not_timed: list = field(default_factory=list)  # bench_onnx.NotTimed: rows that could not be timed, and why
    notes: list[str] = field(default_factory=list)  # one line each, under the table: how to add the onnx extra

    @property
    def busy(self) -> list[Timing]:
        """The rows whose runs spread more than SPREAD_LIMIT."""
        return [t for t in self.timings if t.busy]

    def gflops(self, t: Timing) -> Optional[float]:
        """The forward's GFLOP/s; None with --grad (the backward's work is not counted)."""
        return None if self.grad else t.gflops(self.flops)

    def relative_speed(self, t: Timing) -> Optional[float]:
        """Speed relative to the first row: its median / this median (2.0 = twice as fast)."""
        first = self.timings[0].median_s
        return first / t.median_s if t.median_s > 0 else None


def _threads(torch_threads: Optional[int]) -> Threads:
    """What is known of each library's thread count while timing."""
    import os

    numpy_threads, blas = _numpy_blas()
    if numpy_threads is not None:
        if torch_threads is not None:
            numpy_threads = torch_threads  # what _blas_threads holds numpy's BLAS to while timing
        return Threads(torch_threads, numpy_threads, "threadpoolctl", blas)
    env = tuple(f"{k}={os.environ[k]}" for k in BLAS_THREAD_VARIABLES if k in os.environ)
    return Threads(torch_threads, None, "numpy's build configuration", _numpy_build_blas(), env, _cpus())


# on_run(label, runs done, runs in all): called after every warm-up and timed run.
OnRun = Callable[[str, int, int], None]


def run(
    cfg: RunConfig,
    repeat: int = 20,
    warmup: int = 3,
    tf32: bool = True,
    on_run: Optional[OnRun] = None,
    sample=None,
    grad: Optional[str] = None,
) -> Bench:
    """Time every implementation that can run cfg here (on `sample`, else the seeded draw);
    with `grad`, forward and backward. Progress is reported through on_run; this module
    shows nothing."""
    import numpy as np

    from rnn_cli.core.sample import draw

    sample = sample if sample is not None else draw(cfg)
    impls = implementations(cfg, sample, tf32, grad)  # imports torch: not timed
    torch = _import_torch() if len(impls) > 1 else None
    torch_threads = torch.get_num_threads() if torch is not None else None
    threads = _threads(torch_threads)
    versions = {"numpy": np.__version__, "torch": torch.__version__ if torch is not None else None}
    bench = Bench(cfg, sample.provenance, repeat, warmup, forward_flops(cfg), threads, versions=versions, grad=grad)
    if grad is None and torch is not None:
        from rnn_cli.formats import bench_onnx

        extra, bench.not_timed, bench.notes = bench_onnx.implementations(
            cfg, sample, torch_threads, [i.device for i in impls if i.name == "torch"]
        )
        impls += extra
    elif grad is not None:
        bench.notes.append("onnxruntime: not timed with --grad (forward only: it has no backward)")
    total, done = len(impls) * (warmup + repeat), 0
    for impl in impls:
        label = f"{impl.name} {impl.device}"

        def advance(label: str = label) -> None:
            nonlocal done
            done += 1
            if on_run is not None:
                on_run(label, done, total)

        bench.timings.append(measure(impl, cfg.dtype, repeat, warmup, advance))
    return bench


# ---- memory: what run() holds at its peak (the guard asks; tests/test_memory_calibration.py measures) ----


# onnxruntime's row: what its import and session hold beyond the arrays session_bytes names
# (measured by tests/test_memory_calibration.py with and without the onnx extra).
ORT_SLACK = 16 * 1024**2


def peak_bytes(cfg: RunConfig, grad: bool = False) -> int:
    """Bytes run() holds at its peak beyond the sample, for the memory guard: torch's module
    (its copy of the parameters), then one timed run at a time, its result dropped before
    the next (manual.peak_bytes against torch_peak.forward_bytes; with grad, the upstream and
    backward.peak_bytes against torch_peak.grad_bytes); without grad, onnxruntime's row
    (bench_onnx, the onnx extra), whose session lives through every row's runs: the exported
    weights three times (the ModelProto, its bytes, the session's copy) and the session's
    arena, which keeps what its run allocated (onnx_export.session_bytes)."""
    from rnn_cli.core import backward, manual, torch_peak
    from rnn_cli.core.config import ITEMSIZE

    item, params = ITEMSIZE[cfg.dtype], cfg.num_parameters()
    if grad:
        return item * params + max(backward.peak_bytes(cfg), torch_peak.grad_bytes(cfg))
    import importlib.util

    from rnn_cli.formats.onnx_export import session_bytes

    one = max(manual.peak_bytes(cfg), torch_peak.forward_bytes(cfg))
    if importlib.util.find_spec("onnxruntime") is None:  # no onnx extra: no onnxruntime row
        return item * params + one
    return item * params + one + 3 * item * params + session_bytes(cfg) + ORT_SLACK
