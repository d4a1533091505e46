"""Issue 23: hard stops and outputs. A signal cleans up like Ctrl-C; a closed or non-UTF-8
stdout is one line or escaped output; no output names an input; a failing run writes none of
its outputs; root obeys the mode bits; a FIFO never hangs. Everything happens in tmp_path
(FIFOs and device nodes too: mknod in a tmp dir, never the real /dev)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from test_hostile_files import cli, lstm_state, one_line

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
# A forward that takes several seconds and saves at the end (as tests/test_entry.py's).
LONG = ["manual", "--seq-len", "3000000", "--hidden-size", "1", "--input-size", "1", "--no-values", "--json"]


# ---- every way a run can stop cleans up --------------------------------------------------------


def _files_open_in(pid: int, directory: Path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(directory)) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("when", ["running", "saving"])
def test_sigterm_and_sighup_are_one_line_128_plus_signal_and_leave_no_temporary(sig, when, tmp_path):
    """Bug: SIGTERM/SIGHUP during --save left `.rnn-cli.*.tmp` files (one of 37 MB), no message."""
    (tmp_path / "run.npz").write_bytes(b"old")
    args = [*LONG, "--save", "run.npz"] if when == "running" else [
        "manual", "--seq-len", "200000", "--hidden-size", "64", "--no-values", "--json", "--save", "run.npz"]
    proc = subprocess.Popen([sys.executable, "-m", "rnn_cli", *args], cwd=tmp_path, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    if when == "saving":  # wait for the temporary to be open
        while not _files_open_in(proc.pid, tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        time.sleep(3)
    if proc.poll() is not None:
        pytest.skip("the run ended before the signal could be sent")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert err.decode().splitlines() == [f"rnn-cli: {'terminated' if sig == signal.SIGTERM else 'hung up'} ({sig.name})"]
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]
    assert (tmp_path / "run.npz").read_bytes() == b"old"


def test_closed_stdout_is_one_line_and_exit_2(tmp_path):
    """Bug: `rnn-cli manual >&-` ended in a traceback."""
    r = subprocess.run(["sh", "-c", f"exec {sys.executable} -m rnn_cli manual >&-"], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "rnn-cli: error: stdout is closed; redirect it to a file instead (> out.txt)"]


@pytest.mark.parametrize("args", [["manual", "--seq-len", "2"], ["inspect", "ü/m.pt", "--export-svg", "v.svg"]])
def test_an_ascii_stdout_gets_ascii_output_and_exit_0(args, tmp_path):
    """Bug: PYTHONIOENCODING=ascii with box characters or a non-ASCII file name: a traceback,
    after --export-svg was written. Chosen behaviour: ASCII boxes, other characters escaped."""
    (tmp_path / "ü").mkdir()
    torch.save(lstm_state(), tmp_path / "ü" / "m.pt")
    r = subprocess.run([sys.executable, "-m", "rnn_cli", *args], cwd=tmp_path, capture_output=True, timeout=120,
                       env={**ENV, "PYTHONIOENCODING": "ascii", "COLUMNS": "100"})
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    text = r.stdout.decode("ascii")  # raises if anything else came out
    if args[0] == "inspect":
        assert "\\xfc/m.pt" in text and (tmp_path / "v.svg").exists()


# ---- no output names an input ----------------------------------------------------------------


def _inputs(tmp_path: Path) -> None:
    torch.save(lstm_state(), tmp_path / "a.pt")
    torch.save(lstm_state(), tmp_path / "b.pt")
    np.save(tmp_path / "in.npy", np.zeros((2, 1, 3), np.float32))
    np.save(tmp_path / "h.npy", np.zeros((1, 1, 4), np.float32))
    np.save(tmp_path / "c.npy", np.zeros((1, 1, 4), np.float32))
    os.link(tmp_path / "a.pt", tmp_path / "hard.pt")
    os.symlink("in.npy", tmp_path / "link.npy")


OVER_INPUTS = [
    ["inspect", "a.pt", "--export-svg", "a.pt"],
    ["inspect", "a.pt", "--export-svg", "./a.pt"],
    ["inspect", "a.pt", "--export-svg", "hard.pt"],
    ["inspect", "b.pt", "--against", "a.pt", "--export-svg", "a.pt"],
    ["inspect", "b.pt", "a.pt", "--export-svg", "hard.pt"],
    ["manual", "--input", "in.npy", "--export-svg", "in.npy"],
    ["manual", "--input", "in.npy", "--save", "link.npy"],
    ["manual", "--params", "a.pt", "--save", "hard.pt"],
    ["torch", "--params", "a.pt", "--input", "in.npy", "--h0", "h.npy", "--c0", "c.npy", "--save", "h.npy"],
    ["compare", "--params", "a.pt", "--input", "in.npy", "--h0", "h.npy", "--c0", "c.npy", "--export-svg", "c.npy"],
    ["onnx", "--params", "a.pt", "--save-onnx", "a.pt"],
]


@pytest.mark.parametrize("args", OVER_INPUTS, ids=[" ".join(a) for a in OVER_INPUTS])
def test_an_output_that_is_an_input_is_refused_and_nothing_is_written(args, tmp_path, monkeypatch):
    """Bug: `inspect a.pt --export-svg a.pt` replaced the checkpoint with an SVG (exit 0)."""
    _inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    one_line(*cli(*args)[::2], "same file as", "destroy the input")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# ---- all or nothing ------------------------------------------------------------------------


def test_when_the_svg_cannot_be_written_the_save_keeps_its_old_file(tmp_path, monkeypatch):
    """Bug: with --save keep.npz --export-svg /full/x.svg the SVG hit a full disk, exit 2, but
    keep.npz had already been replaced."""
    (tmp_path / "keep.npz").write_bytes(b"old")
    (tmp_path / "x.svg").write_bytes(b"old svg")
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".svg"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    one_line(*cli("manual", "--save", str(tmp_path / "keep.npz"), "--export-svg", str(tmp_path / "x.svg"))[::2],
             "--export-svg", "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.npz", "x.svg"]
    assert (tmp_path / "keep.npz").read_bytes() == b"old" and (tmp_path / "x.svg").read_bytes() == b"old svg"


def test_a_new_save_is_removed_when_the_svg_fails(tmp_path, monkeypatch):
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError(28, "No space left on device"))
                        if str(d).endswith(".svg") else real_replace(s, d))
    one_line(*cli("manual", "--save", str(tmp_path / "new.npz"), "--export-svg", str(tmp_path / "x.svg"))[::2], "x.svg")
    assert list(tmp_path.iterdir()) == []


# ---- root follows the mode bits -------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="root's os.access is what is tested")
def test_a_read_only_directory_is_refused_even_as_root(tmp_path):
    """Bug: as root, --save rodir/new.npz into a 0555 directory succeeded."""
    ro = tmp_path / "rodir"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_line(*cli("manual", "--save", str(ro / "new.npz"))[::2], "not writable", "0555")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_read_only_character_device_is_refused_even_as_root(tmp_path):
    """Bug: a 0444 character device was written to. A null device (1, 3) made in tmp_path."""
    dev = tmp_path / "null"
    try:
        os.mknod(dev, 0o444 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as e:
        pytest.skip(f"mknod not allowed here: {e}")
    one_line(*cli("manual", "--save", str(dev))[::2], "not writable", "0444")


# ---- FIFOs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--save", "--export-svg"])
def test_an_output_fifo_without_a_reader_fails_after_the_timeout(flag, tmp_path):
    """Bug: --save f.npz / --export-svg on a FIFO with no reader blocked forever."""
    fifo = tmp_path / "f.out"
    os.mkfifo(fifo)
    start = time.monotonic()
    one_line(*cli("manual", flag, str(fifo))[::2], "FIFO", "no reader", "1 s")
    assert time.monotonic() - start < 60


def test_an_input_fifo_without_a_writer_fails_after_the_timeout(tmp_path):
    fifo = tmp_path / "x.npy"
    os.mkfifo(fifo)
    one_line(*cli("manual", "--input", str(fifo))[::2], "--input", "FIFO", "no writer", "1 s")


def test_onnx_model_and_svg_are_all_or_nothing(tmp_path, monkeypatch):
    """--save-onnx was written during the export, before the SVG: a failing SVG left it."""
    pytest.importorskip("onnxruntime")
    (tmp_path / "m.onnx").write_bytes(b"old model")
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda s, d: (_ for _ in ()).throw(OSError(28, "No space left on device"))
                        if str(d).endswith(".svg") else real_replace(s, d))
    one_line(*cli("onnx", "--seq-len", "3", "--save-onnx", str(tmp_path / "m.onnx"),
                  "--export-svg", str(tmp_path / "x.svg"))[::2], "x.svg")
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"] and (tmp_path / "m.onnx").read_bytes() == b"old model"
