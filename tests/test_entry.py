"""rnn_cli.cli.entry.main: Ctrl-C at any moment (imports included) is exit 130 with the one line
`rnn-cli: interrupted` and no partial file; a MemoryError is exit 2 with one line. Real
processes (`python -m rnn_cli`, which goes through entry.main like the console script), real
signals. Also: compare's margin arithmetic never warns, however large the tolerances.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from rnn_cli.cli import entry
from rnn_cli.core.compare import Tolerance, check_tensor

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
INTERRUPTED = b"rnn-cli: interrupted\n"
# A forward that takes several seconds (3e6 Python-level steps) and saves at the end.
LONG = ["manual", "--seq-len", "3000000", "--hidden-size", "1", "--input-size", "1", "--no-values", "--json"]


# `python -m rnn_cli`, telling the test (a byte on inherited fd FD) when MODULE starts to be
# imported. Before entry.main's `try` (Python's start-up: site, .pth files; runpy; importing
# rnn_cli.cli.entry) no code of ours can catch a Ctrl-C: on a busy machine that takes anything from
# milliseconds to seconds, so the test waits for this event, not for a time.
WHEN_IMPORTED = (
    "import os, sys\n"
    "class Tell:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == {module!r}:\n"
    "            sys.meta_path.remove(self)\n"
    "            os.write({fd}, b'.'); os.close({fd})\n"
    "sys.meta_path.insert(0, Tell())\n"
    "import runpy; runpy.run_module('rnn_cli', run_name='__main__', alter_sys=True)\n"
)


def _default_sigint() -> None:
    """In the child before Python starts: SIGINT as a terminal's Ctrl-C finds it. A test runner
    started as a background job (`cmd &` in a script) inherits SIGINT ignored, and Python then
    never installs its KeyboardInterrupt handler: the signal would be lost, not the feature."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_told(args: list[str], cwd: Path, module: str) -> subprocess.Popen:
    """`python -m rnn_cli ARGS`, returned once it has begun importing `module` (inside entry.main's try)."""
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", WHEN_IMPORTED.format(fd=write, module=module), *args], cwd=cwd,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(write,),
                            preexec_fn=_default_sigint)  # fmt: skip
    os.close(write)
    try:
        assert os.read(read, 1) == b".", "the process ended before importing " + module
    finally:
        os.close(read)
    return proc


@pytest.mark.parametrize("delay", [0.02, 0.05, 0.12], ids=["20ms", "50ms", "120ms"])
def test_sigint_during_imports_is_one_line_and_130(tmp_path: Path, delay: float) -> None:
    """rnn-cli imports typer, rich and numpy for ~0.1 s (seconds on a busy machine) once
    entry.main has begun importing rnn_cli.cli.app: every delay lands in them or, later, in the run."""
    proc = start_told([*LONG, "--save", "run.npz"], tmp_path, "rnn_cli.cli.app")
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert (proc.returncode, err, out) == (130, INTERRUPTED, b"")
    assert list(tmp_path.iterdir()) == []


def test_sigint_during_a_long_forward_is_one_line_130_and_no_file(tmp_path: Path) -> None:
    (tmp_path / "run.npz").write_bytes(b"old")
    proc = start_told([*LONG, "--save", "run.npz"], tmp_path, "rnn_cli.core.manual")
    time.sleep(1.5)  # into the forward (3e6 steps: several seconds on any machine), or still importing
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    assert (proc.returncode, err, out) == (130, INTERRUPTED, b"")
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]
    assert (tmp_path / "run.npz").read_bytes() == b"old"


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_out_of_memory_under_ulimit_v_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """5 GiB of output passes today's MemAvailable-only guard, then malloc fails under RLIMIT_AS.
    (A guard that reads the limit may refuse it first: also one line and exit 2.)"""
    proc = subprocess.run(
        ["prlimit", "--as=1500000000", sys.executable, "-m", "rnn_cli",
         "manual", "--no-values", "--seq-len", "20000", "--batch", "64", "--hidden-size", "1024"],
        cwd=tmp_path, env=ENV, capture_output=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.startswith(b"rnn-cli: error: ") and proc.stderr.count(b"\n") == 1, proc.stderr


def test_memory_error_anywhere_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import rnn_cli.cli.app

    def boom() -> None:
        raise MemoryError

    monkeypatch.setattr(rnn_cli.cli.app, "main", boom)
    with pytest.raises(SystemExit) as e:
        entry.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rnn-cli: error: out of memory") and err.count("\n") == 1


def test_keyboard_interrupt_from_a_command_reaches_entry(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """typer turns KeyboardInterrupt into a silent exit 130; the CLI must let it through."""
    import rnn_cli.core.manual

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rnn_cli.core.manual, "run", interrupted)
    monkeypatch.setattr(sys, "argv", ["rnn-cli", "manual", "--json"])
    hook = sys.unraisablehook
    with pytest.raises(SystemExit) as e:
        entry.main()
    assert (e.value.code, capsys.readouterr()) == (130, ("", "rnn-cli: interrupted\n"))
    assert sys.unraisablehook is hook  # the stop's quiet hook is not left behind for the caller


def test_keyboard_interrupt_while_typer_parses_the_flags_reaches_entry(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Bug: a Ctrl-C that landed while typer made the group's context (parsing the flags, before
    any command ran) became typer's Exit(130): exit 130 with nothing on stderr. Seen once in CI
    as test_sigint_during_imports_is_one_line_and_130[120ms] failing with (130, b'', b''), more
    likely once start-up got faster and 120 ms fell after the imports."""
    from rnn_cli.cli.registry import OneLineErrorGroup

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(OneLineErrorGroup, "make_context", interrupted)
    monkeypatch.setattr(sys, "argv", ["rnn-cli", "manual", "--json"])
    with pytest.raises(SystemExit) as e:
        entry.main()
    assert (e.value.code, capsys.readouterr()) == (130, ("", "rnn-cli: interrupted\n"))


# A run stopped by a signal while a third-party object (numpy's ZipFile inside np.savez, say)
# was half-way through closing: the object stays alive in the traceback, and its __del__ fails
# when Python frees it on the way out.
HALF_CLOSED = """
import sys
import rnn_cli.core.manual
from rnn_cli.cli.entry import main

class HalfClosed:
    def __del__(self):
        raise ValueError("write to closed file")

def stopped(*args, **kwargs):
    held = HalfClosed()  # noqa: F841 - kept alive by the traceback
    raise KeyboardInterrupt

rnn_cli.core.manual.run = stopped
sys.argv = ["rnn-cli", "manual", "--json"]
main()
"""


def test_what_python_frees_after_a_stop_adds_nothing_to_the_one_line(tmp_path: Path) -> None:
    """Bug: SIGTERM during --save (test_hostile_outputs, once, on a busy machine) printed
    `rnn-cli: terminated (SIGTERM)` and then `Exception ignored in: <function ZipFile.__del__ ...>`
    with a traceback: numpy's ZipFile, stopped while closing, failed in __del__ at exit."""
    r = subprocess.run([sys.executable, "-c", HALF_CLOSED], cwd=tmp_path, env=ENV, capture_output=True, timeout=600)
    assert (r.returncode, r.stderr, r.stdout) == (130, INTERRUPTED, b"")


def test_huge_tolerances_do_not_warn() -> None:
    ref = np.array([[2.0, -3.0], [0.5, 1e-3]])
    got = ref + 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        check = check_tensor("output", got, ref, Tolerance(1e308, 1e308, "--atol; --rtol"))
    assert check.ok and check.max_abs_diff == pytest.approx(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nan = check_tensor("output", np.full_like(ref, np.nan), ref, Tolerance(1e308, 1e308, "huge"))
    assert not nan.ok  # NaN still fails with an infinite margin


def test_compare_with_huge_tolerances_prints_no_warning() -> None:
    proc = subprocess.run([sys.executable, "-m", "rnn_cli", "compare", "--atol", "1e308", "--rtol", "1e308", "--json"],
                          env=ENV, capture_output=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == b""


# pip's console-script wrapper, as it writes `rnn-cli` into a venv's bin/
CONSOLE_SCRIPT = (
    "import re\nimport sys\nfrom rnn_cli.cli.entry import main\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
    "    sys.exit(main())\n"
)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize("how", ["console script", "python -m rnn_cli"])
@pytest.mark.parametrize("args", [["manual", "--json"], ["manual"]], ids=["json", "human"])
def test_start_up_does_not_thrash_cpythons_frame_stack(tmp_path: Path, how: str, args: list[str]) -> None:
    """Bug: CPython 3.11/3.12 frees a 16 KiB frame-stack chunk as soon as the call that opened it
    returns (python/cpython#142183): `rnn-cli manual` mapped and unmapped one 681 to 1,691 times,
    15-30 ms of its ~200 ms start-up, because its loops happened to run at a depth on a chunk's
    edge. entry._with_room runs everything below main in one 1 MiB chunk. Counted with strace:
    each such chunk is one `mmap(NULL, 16384, ...)`; a Python that caches a chunk passes too."""
    script = tmp_path / "rnn-cli"
    script.write_text(CONSOLE_SCRIPT)
    run = [str(script)] if how == "console script" else ["-m", "rnn_cli"]
    log = tmp_path / "strace.txt"
    proc = subprocess.run(["strace", "-f", "-e", "trace=mmap", "-o", str(log), sys.executable, *run, *args],
                          cwd=tmp_path, env=ENV, capture_output=True, timeout=600)  # fmt: skip
    if not log.exists() or b"ptrace" in proc.stderr:  # a container that forbids ptrace
        pytest.skip(f"strace cannot trace here: {proc.stderr[-300:]!r}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    chunks = log.read_text().count("mmap(NULL, 16384,")
    assert chunks < 50, f"{chunks} frame-stack chunks mapped"
