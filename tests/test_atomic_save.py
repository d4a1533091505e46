"""--save is all or nothing: a failing or killed run never leaves a partial file behind and
never clobbers an existing one; a run that succeeds replaces the file whole.

(a) Failures simulated in-process at each step of rnn_cli.formats.save.write_with (the write, the
    fsync, the rename; Ctrl-C): the old file must be intact byte for byte and nothing else
    may be in the directory (the temporary is removed).
(b) Real processes killed with SIGKILL: the CLI in a process that announces each fsync and
    dawdles in it, killed at the 1st, 2nd, ... fsync of its save until one run gets through
    (the file's fsync comes before the rename: killed there, the old file is still PATH);
    and `python -m rnn_cli` killed while it holds the file it writes open (watched through
    /proc/PID/fd) and at random moments of a run. PATH must then be the old file (or absent,
    if there was none) or a complete .npz. The plain write path (mkstemp, write, fsync,
    os.replace) cannot clean up after SIGKILL: one `.rnn-cli.*.tmp` may be left beside PATH,
    never a partial PATH; nothing else may be in the directory.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app

OLD = b"the previous run's file, which a failed save must leave exactly as it was\n"
SMALL = ["manual", "--seq-len", "3", "--hidden-size", "4", "--json", "--no-values"]


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def assert_complete_npz(path: Path, expected: dict | None = None) -> dict:
    """Loads with allow_pickle=False, every array reads in full, config is the JSON of the run."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    assert {"input", "h_0", "output", "h_n", "config"} <= set(arrays)
    config = json.loads(str(arrays["config"]))
    if expected is not None:
        assert {k: config[k] for k in expected} == expected
    for name in ("output", "h_n"):
        assert np.isfinite(arrays[name]).all()
    return config


# ---- (a) failures simulated in-process ------------------------------------------------------


class HalfThenFail:
    """A file object that writes half of what it is given, then fails like a full disk."""

    def __init__(self, real, error: BaseException):
        self.real, self.error = real, error

    def write(self, data) -> int:
        self.real.write(bytes(data[: len(data) // 2]))
        self.real.flush()
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.real.close()

    def __getattr__(self, name):
        return getattr(self.real, name)


def failing(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


def half_written(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    real_fdopen = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return HalfThenFail(f, error) if "w" in mode else f

    monkeypatch.setattr(os, "fdopen", fdopen)


ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
EIO = OSError(errno.EIO, os.strerror(errno.EIO))
EACCES = OSError(errno.EACCES, os.strerror(errno.EACCES))


def _disk_full(mp):
    half_written(mp, ENOSPC)


def _fsync_fails(mp):
    mp.setattr(os, "fsync", failing(EIO))


def _rename_fails(mp):
    mp.setattr(os, "replace", failing(EACCES))


def _chmod_fails(mp):
    mp.setattr(os, "fchmod", failing(EIO))  # keeping the old file's mode is part of the write


FAILURES = {
    "disk_full_halfway": (_disk_full, "No space left on device"),
    "fsync_fails": (_fsync_fails, "Input/output error"),
    "rename_fails": (_rename_fails, "Permission denied"),
    "chmod_fails": (_chmod_fails, "Input/output error"),
}


def invoke_in(directory: Path, args: list[str]):
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        return CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("existing", [True, False], ids=["over_an_existing_file", "new_file"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failing_write_leaves_the_old_file_and_nothing_else(
    failure: str, existing: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if existing:
        (tmp_path / "run.npz").write_bytes(OLD)
    arrange, reason = FAILURES[failure]
    arrange(monkeypatch)
    result = invoke_in(tmp_path, [*SMALL, "--save", "run.npz"])
    monkeypatch.undo()
    assert (result.exit_code, result.stdout, result.stderr) == (
        2, "", f"rnn-cli: error: --save run.npz: could not write ({reason})\n"
    )
    if existing:
        assert listing(tmp_path) == ["run.npz"]
        assert (tmp_path / "run.npz").read_bytes() == OLD
    else:
        assert listing(tmp_path) == []


def test_ctrl_c_while_writing_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C goes on, past the CLI, to rnn_cli.cli.entry (exit 130, tested in test_entry.py)."""
    (tmp_path / "run.npz").write_bytes(OLD)
    half_written(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        invoke_in(tmp_path, [*SMALL, "--save", "run.npz"])
    monkeypatch.undo()
    assert listing(tmp_path) == ["run.npz"]
    assert (tmp_path / "run.npz").read_bytes() == OLD


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_a_successful_save_replaces_the_old_file_whole(command: str, tmp_path: Path) -> None:
    (tmp_path / "run.npz").write_bytes(OLD)
    umask = os.umask(0o022)
    try:
        result = invoke_in(tmp_path, [command, "--seq-len", "4", "--hidden-size", "3", "--cell", "lstm",
                                      "--json", "--save", "run.npz"])
    finally:
        os.umask(umask)
    assert result.exit_code == 0, result.stderr
    assert listing(tmp_path) == ["run.npz"]
    assert (tmp_path / "run.npz").read_bytes() != OLD
    assert_complete_npz(tmp_path / "run.npz", {"seq_len": 4, "hidden_size": 3, "cell": "lstm"})
    # An ordinary file, as np.save would make it, not a private temporary's 0600.
    assert (tmp_path / "run.npz").stat().st_mode & 0o777 == 0o644


# ---- (b) a real process killed with SIGKILL while it saves ------------------------------------

# About 17 MB of float32 parameters: a save that takes a moment, a run that stays short.
BIG = ["manual", "--hidden-size", "2048", "--seq-len", "4", "--json", "--no-values"]
BIG_CONFIG = {"cell": "rnn", "hidden_size": 2048, "seq_len": 4}
# The same CLI in a process that announces each fsync on stderr and then dawdles in it, so
# the test can kill it at the k-th fsync of its save, whatever route the save takes.
FSYNC_HOOK = (
    "import os, sys, time\n"
    "_fsync = os.fsync\n"
    "def fsync(fd):\n"
    "    sys.stderr.write('fsync\\n'); sys.stderr.flush()\n"
    "    time.sleep(0.5)\n"
    "    _fsync(fd)\n"
    "os.fsync = fsync\n"
    "sys.argv[0] = 'rnn-cli'\n"
    "from rnn_cli.cli.entry import main\n"
    "main()\n"
)


def rnn_cli_command() -> list[str]:
    return [sys.executable, "-m", "rnn_cli"]  # this checkout's code, whatever `rnn-cli` is installed


def start(path: Path, fsync_hook: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-c", FSYNC_HOOK] if fsync_hook else rnn_cli_command()
    with tempfile.TemporaryFile() as stdout:  # what it prints is not looked at (and never the real /dev/null)
        return subprocess.Popen(
            [*command, *BIG, "--save", str(path)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )


def files_open_in(pid: int, directory: str) -> bool:
    """Whether the process holds a file in `directory` open: the save is under way."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(directory + "/"):
                return True
        except OSError:
            continue
    return False


def kill_once_saving(proc: subprocess.Popen, directory: str) -> bool:
    """SIGKILL the process as soon as it has a file open in `directory`; False if it ended first."""
    while proc.poll() is None and not files_open_in(proc.pid, directory):
        time.sleep(0.0005)
    caught = proc.poll() is None
    if caught:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=600)
    return caught


def stale_temporaries(directory: Path, path: Path) -> list[str]:
    return [n for n in listing(directory) if n != path.name and n.startswith(".rnn-cli.") and n.endswith(".tmp")]


def assert_old_or_complete(directory: Path, path: Path, old: bool) -> str:
    """PATH is the old file (or absent) or a complete .npz; besides it at most one stale
    temporary, which SIGKILL can leave and the plain write path cannot remove."""
    stale = stale_temporaries(directory, path)
    names = [n for n in listing(directory) if n not in stale]
    allowed = [[path.name]] if old else [[], [path.name]]
    assert names in allowed and len(stale) <= 1, f"left behind: {listing(directory)}"
    for name in stale:
        (directory / name).unlink()  # so that the next run's leftovers are counted alone
    if not names:
        return "absent"
    if path.read_bytes() == OLD:
        return "old"
    assert_complete_npz(path, BIG_CONFIG)
    return "new"


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to watch the save")


@needs_proc
@pytest.mark.parametrize("old", [True, False], ids=["over_an_existing_file", "new_file"])
def test_sigkill_at_each_fsync_of_the_save_leaves_the_old_file_or_a_complete_one(old: bool, tmp_path: Path) -> None:
    directory = os.path.realpath(tmp_path)
    path = Path(directory) / "run.npz"
    for k in range(1, 5):  # kill at the 1st, 2nd, ... fsync until a run gets through all of them
        if old:
            path.write_bytes(OLD)
        elif path.exists():
            path.unlink()
        proc = start(path, fsync_hook=True)
        seen = 0
        for line in proc.stderr:
            seen += line == b"fsync\n"
            if seen == k:
                proc.send_signal(signal.SIGKILL)
                break
        _, err = proc.communicate(timeout=600)
        if seen < k:  # it saved with fewer fsyncs than k: the run must be whole
            assert proc.returncode == 0, err.decode(errors="replace")
            assert assert_old_or_complete(Path(directory), path, old) == "new"
            break
        assert proc.returncode == -signal.SIGKILL
        outcome = assert_old_or_complete(Path(directory), path, old)
        if k == 1:
            # The file's fsync, every byte written but not yet renamed: the old file or nothing.
            assert outcome == ("old" if old else "absent")
        else:  # the directory's fsync, after the rename: the new file, whole
            assert outcome == "new"
    else:
        pytest.fail("the save never finished")
    assert k >= 2, "the save was never interrupted"


@needs_proc
def test_sigkill_of_the_console_script_leaves_the_old_file_or_a_complete_one(tmp_path: Path) -> None:
    directory = os.path.realpath(tmp_path)
    path = Path(directory) / "run.npz"

    # A whole run: it replaces the old file, and gives the time scale for the random kills.
    path.write_bytes(OLD)
    began = time.monotonic()
    proc = start(path)
    _, err = proc.communicate(timeout=600)
    whole = time.monotonic() - began
    assert proc.returncode == 0, err.decode(errors="replace")
    assert assert_old_or_complete(Path(directory), path, True) == "new"

    # Killed while it holds the file it writes open (if the watch catches it in time).
    path.write_bytes(OLD)
    kill_once_saving(start(path), directory)
    assert assert_old_or_complete(Path(directory), path, True) in ("old", "new")

    # Killed at random moments of a run.
    rng = random.Random(6)
    for _ in range(2):
        path.write_bytes(OLD)
        proc = start(path)
        try:
            proc.communicate(timeout=rng.uniform(0.4, 1.1) * whole)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=600)
        assert assert_old_or_complete(Path(directory), path, True) in ("old", "new")


def test_the_npz_check_rejects_a_truncated_file(tmp_path: Path) -> None:
    """assert_complete_npz is the judge above: it must refuse a file cut short."""
    buf = io.BytesIO()
    np.savez(buf, input=np.ones(3), h_0=np.ones(3), output=np.ones(3), h_n=np.ones(3), config=np.array("{}"))
    data = buf.getvalue()
    (tmp_path / "whole.npz").write_bytes(data)
    assert_complete_npz(tmp_path / "whole.npz")
    (tmp_path / "cut.npz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(Exception):  # noqa: B017 - zipfile or numpy, whichever notices first
        assert_complete_npz(tmp_path / "cut.npz")
