"""One forward, timed: what bench times (an Implementation: the forward, the context it runs
in, its timer) and what it measured (a Timing). bench.py builds the numpy and torch rows and
formats/bench_onnx.py the onnxruntime rows from these; neither imports the other's rows.

CPU runs are timed with time.perf_counter; CUDA runs with a pair of CUDA events around the
forward, after synchronising the device, so each timing is one whole forward on an idle GPU.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Optional

SPREAD_LIMIT = 1.5  # max / min of a row's timed runs above this: the machine was busy


@dataclass(frozen=True)
class Implementation:
    """One way to run the forward, ready to be timed."""

    name: str  # "manual" or "torch"
    device: str  # "cpu", "cuda:0", ...
    backend: str  # what does the work, for people: "numpy 2.4.6, scipy-openblas ...", "aten", "cuDNN 9.19.0 on ..."
    forward: Callable[[], Any]  # one forward pass; its result is dropped
    context: Callable[[], ContextManager]  # entered once around warm-up and timed runs
    time_once: Callable[[Callable[[], Any]], float]  # seconds of one call
    tf32: Optional[bool] = None  # cuDNN TF32 allowed (CUDA float32 only)


def cpu_time(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cuda_timer(torch, device) -> Callable[[Callable[[], Any]], float]:
    """Time one call with CUDA events on an idle device: synchronise, record, run, record,
    wait for the end event. The events sit on the device's current stream, where the
    forward's kernels go, so the time covers its kernels and any gaps between them."""

    def time_once(fn: Callable[[], Any]) -> float:
        torch.cuda.synchronize(device)
        stream = torch.cuda.current_stream(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # elapsed_time is in ms

    return time_once


@dataclass(frozen=True)
class Timing:
    name: str
    device: str
    dtype: str
    backend: str
    tf32: Optional[bool]
    times_s: tuple[float, ...]  # each timed run, in order

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def max_s(self) -> float:
        return max(self.times_s)

    @property
    def spread(self) -> Optional[float]:
        """Slowest / fastest timed run (None if the clock read zero)."""
        return self.max_s / self.min_s if self.min_s > 0 else None

    @property
    def busy(self) -> bool:
        """The runs spread more than SPREAD_LIMIT: something else took the machine."""
        return self.spread is None or self.spread > SPREAD_LIMIT

    def gflops(self, flops: int) -> Optional[float]:
        """GFLOP/s at the median time (None if the clock read zero)."""
        return flops / self.median_s / 1e9 if self.median_s > 0 else None


def measure(
    impl: Implementation,
    dtype: str,
    repeat: int,
    warmup: int,
    on_run: Callable[[], None] = lambda: None,
) -> Timing:
    """`warmup` untimed then `repeat` timed forwards of impl; on_run() after each."""
    times = []
    with impl.context():
        for _ in range(warmup):
            impl.time_once(impl.forward)
            on_run()
        for _ in range(repeat):
            times.append(impl.time_once(impl.forward))
            on_run()
    return Timing(impl.name, impl.device, dtype, impl.backend, impl.tf32, tuple(times))
