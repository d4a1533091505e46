"""What --save and --export-svg do to what is already at the path (issue 12, part 1).

Replace only a regular file, keep what the user set: a symlink stays a symlink (its target is
replaced), a FIFO or a character device is written as a stream and stays what it is, a
read-only file is refused (root included), an existing file keeps its mode and owner, a new
one gets 0666 & ~umask. Bad paths are refused before anything runs, each with its own line.
Never the real /dev/null: a pty, a FIFO, or a private device node made with mknod.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
import tty
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rnn_cli.cli.app import app
from rnn_cli.errors import RnnCliError
from rnn_cli.formats.save import check_paths, check_writable, save_npz, write_atomic, write_with

OLD = b"the old file\n"
ARRAYS = {"output": np.arange(6, dtype=np.float32).reshape(3, 1, 2)}
ROOT = os.geteuid() == 0
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def read_all(fd: int, into: list[bytes]) -> None:
    while chunk := os.read(fd, 65536):
        into.append(chunk)


def load(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


# ---- streams: a FIFO, a terminal, a device node --------------------------------------------


def test_a_fifo_is_written_as_a_stream_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    thread = threading.Thread(target=reader, daemon=True)  # never holds pytest up
    thread.start()
    save_npz(fifo, ARRAYS, {"cell": "rnn"})  # a zip written to a stream that cannot seek
    thread.join(timeout=600)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]  # no temporary beside it
    np.testing.assert_array_equal(load(got[0])["output"], ARRAYS["output"])


def test_a_fifo_whose_reader_leaves_is_one_error_line(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def reader() -> None:
        with open(fifo, "rb") as f:
            f.read(1)  # then goes away: the writer gets EPIPE

    thread = threading.Thread(target=reader, daemon=True)  # never holds pytest up
    thread.start()
    with pytest.raises(RnnCliError, match=r"^--save .*pipe: could not write \(Broken pipe\)$"):
        write_atomic(fifo, b"x" * (1 << 22))
    thread.join(timeout=600)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_terminal_stays_a_character_device(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        tty.setraw(slave)  # bytes through unchanged (no \n -> \r\n)
        path = os.ttyname(slave)
        write_atomic(path, b"to the terminal\n", "--export-svg")
        assert stat.S_ISCHR(os.stat(path).st_mode)
        assert os.read(master, 100) == b"to the terminal\n"
    finally:
        os.close(slave)
        os.close(master)


@pytest.mark.skipif(not ROOT, reason="mknod of a character device needs root")
def test_save_to_a_null_device_node_leaves_it_a_device(tmp_path: Path) -> None:
    """`rnn-cli manual --save /dev/null` as root, on a private node of the same device (1, 3)."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as e:
        pytest.skip(f"mknod refused here: {e}")
    proc = subprocess.run([sys.executable, "-m", "rnn_cli", "manual", "--json", "--save", str(null)],
                          capture_output=True, env=ENV, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    st = os.lstat(null)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["null"]


def stdout_link(tmp_path: Path) -> str:
    """What /dev/stdout is on Linux (a link to /proc/self/fd/1), made in the test's own
    directory: the test writes through it to its own pipe, never through the real /dev."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    return str(link)


def test_save_to_dev_stdout_on_a_pipe_writes_the_npz_to_the_reader(tmp_path: Path) -> None:
    """/dev/stdout -> /proc/self/fd/1 -> pipe:[...]: not a path to rename onto, a stream to write."""
    code = (
        "import sys; import numpy as np; from rnn_cli.formats.save import save_npz, writes_to_stdout\n"
        "assert writes_to_stdout(sys.argv[1])\n"
        "save_npz(sys.argv[1], {'output': np.arange(6, dtype=np.float32).reshape(3, 1, 2)}, {'cell': 'rnn'})\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, stdout_link(tmp_path)], capture_output=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(load(proc.stdout)["output"], ARRAYS["output"])
    assert os.path.islink(tmp_path / "stdout")  # written through, not replaced


def test_cli_save_to_dev_stdout_piped_is_a_loadable_npz(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "rnn_cli", "manual", "--no-values", "--save", stdout_link(tmp_path)],
                          capture_output=True, env=ENV, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {"output", "h_n", "config"} <= set(load(proc.stdout))
    # stdout is the .npz and nothing else: it ends with the zip's end record (np.load alone
    # would also read a zip followed by the human output)
    assert proc.stdout[-22:-18] == b"PK\x05\x06"
    assert sorted(os.listdir(tmp_path)) == ["stdout"]  # no temporary beside the link


def test_writes_to_stdout_knows_the_file_stdout_goes_to(tmp_path: Path) -> None:
    out, other = tmp_path / "out.npz", tmp_path / "other.npz"
    other.write_bytes(b"")
    code = "import sys; from rnn_cli.formats.save import writes_to_stdout as w; sys.stderr.write(' '.join(str(w(p)) for p in sys.argv[1:]))"
    with open(out, "wb") as f:
        proc = subprocess.run([sys.executable, "-c", code, str(out), str(other), str(tmp_path / "new")],
                              stdout=f, stderr=subprocess.PIPE, env=ENV, timeout=600)  # fmt: skip
    assert proc.stderr.decode() == "True False False"


# ---- links --------------------------------------------------------------------------------


def test_a_symlink_stays_and_its_target_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "run.npz"
    target.write_bytes(OLD)
    link = tmp_path / "latest.npz"
    link.symlink_to(Path("data") / "run.npz")
    save_npz(link, ARRAYS, {})
    assert link.is_symlink() and os.readlink(link) == os.path.join("data", "run.npz")
    np.testing.assert_array_equal(load(target.read_bytes())["output"], ARRAYS["output"])
    assert sorted(os.listdir(tmp_path / "data")) == ["run.npz"]


def test_a_dangling_symlink_creates_the_file_it_names(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    link = tmp_path / "latest.npz"
    link.symlink_to(tmp_path / "data" / "new.npz")
    write_atomic(link, b"new")
    assert link.is_symlink() and (tmp_path / "data" / "new.npz").read_bytes() == b"new"


def test_a_dangling_symlink_into_a_missing_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "latest.npz"
    link.symlink_to(tmp_path / "gone" / "new.npz")
    with pytest.raises(RnnCliError, match="does not exist"):
        check_writable(link, "--save")


def test_a_symlink_loop_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(RnnCliError) as e:
        check_writable(tmp_path / "a", "--save")
    assert str(e.value) == f"--save {tmp_path / 'a'}: symbolic link loop; give a file path"


# ---- modes and owners -----------------------------------------------------------------------


def test_a_read_only_file_is_refused_even_as_root(tmp_path: Path) -> None:
    path = tmp_path / "out.npz"
    path.write_bytes(OLD)
    path.chmod(0o444)
    res = CliRunner().invoke(app, ["manual", "--json", "--save", str(path)])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == f"rnn-cli: error: --save {path}: out.npz is read-only (mode 0444)\n"
    with pytest.raises(RnnCliError, match="read-only"):
        write_atomic(path, b"new")  # checked again at write time, not only up front
    assert path.read_bytes() == OLD


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_an_existing_file_keeps_its_mode(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "run.npz"
    path.write_bytes(OLD)
    path.chmod(mode)
    save_npz(path, ARRAYS, {})
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert path.read_bytes() != OLD


@pytest.mark.skipif(not ROOT, reason="only root may give a file to another owner")
def test_an_existing_file_keeps_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "run.npz"
    path.write_bytes(OLD)
    os.chown(path, 1234, 5678)
    save_npz(path, ARRAYS, {})
    st = path.stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678) and path.read_bytes() != OLD


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_the_umask_gives_on_both_write_paths(tmp_path: Path, umask: int) -> None:
    before = os.umask(umask)
    try:
        save_npz(tmp_path / "run.npz", ARRAYS, {})
        write_atomic(tmp_path / "run.svg", b"<svg/>", "--export-svg")
        with open(tmp_path / "by-open", "w"):  # what any program would create here
            pass
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "run.npz").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "run.svg").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "by-open").stat().st_mode) == 0o666 & ~umask


def test_a_failing_writer_leaves_nothing_and_the_old_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "run.npz"
    path.write_bytes(OLD)

    def half(f) -> None:
        f.write(b"half of it")
        raise OSError(28, "No space left on device")

    with pytest.raises(RnnCliError, match=r"could not write \(No space left on device\)$"):
        write_with(path, "--save", half)
    assert os.listdir(tmp_path) == ["run.npz"] and path.read_bytes() == OLD


# ---- paths refused before anything runs -------------------------------------------------------


@pytest.mark.parametrize(
    "save, svg, message",
    [
        ("out/", None, "--save out/: names a directory; give a file path like out/run.npz"),
        (None, "out/", "--export-svg out/: names a directory; give a file path like out/run.svg"),
        ("", None, "--save '': empty path; give a file path like run.npz"),
        ("out.npz/run.npz", None, "--save out.npz/run.npz: parent out.npz is a file, not a directory"),
        ("newdir/run.npz", None, "--save newdir/run.npz: directory newdir does not exist"),
        ("sub", None, "--save sub: is a directory; give a file path like sub/run.npz"),
        ("out.npz", "./out.npz", "--save out.npz and --export-svg ./out.npz are the same file; "
                                 "the SVG would replace the saved run: give two paths"),
        ("run.npz", "sub/../link.npz", "--save run.npz and --export-svg sub/../link.npz are the same file; "
                                       "the SVG would replace the saved run: give two paths"),
        ("run.npz", "hard.npz", "--save run.npz and --export-svg hard.npz are the same file; "
                                "the SVG would replace the saved run: give two paths"),
    ],
    ids=["trailing_slash", "trailing_slash_svg", "empty", "parent_is_a_file", "missing_directory",
         "a_directory", "same_path_via_dot", "same_file_via_symlink", "same_file_via_hard_link"],
)  # fmt: skip
def test_bad_paths_are_one_line_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save, svg, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out.npz").write_bytes(OLD)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.npz").symlink_to("run.npz")
    (tmp_path / "run.npz").write_bytes(OLD)
    os.link(tmp_path / "run.npz", tmp_path / "hard.npz")
    with pytest.raises(RnnCliError) as e:
        check_paths(save, svg)
    assert str(e.value) == message
    assert (tmp_path / "out.npz").read_bytes() == OLD


def test_two_different_paths_pass(tmp_path: Path) -> None:
    check_paths(tmp_path / "run.npz", tmp_path / "run.svg")
    check_paths(tmp_path / "run.npz", None)
    check_paths(None, None)
