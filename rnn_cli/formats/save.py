"""Writing --save and --export-svg files: replace only what is a regular file, keep what the user set.

- A regular file (or a new one) is written the plain, well-known way: a temporary file in the
  target's directory, write, flush, fsync, os.replace, fsync the directory. A failure leaves an
  existing file byte-identical and removes the temporary. An existing file keeps its mode (and
  its owner where the process may set it); a new one gets 0666 & ~umask, as open() would give.
  A run killed with SIGKILL between mkstemp and os.replace leaves one `.rnn-cli.*.tmp` beside
  the target (never a partial target).
- A symlink is followed: the link stays, the file it names is replaced (a dangling link creates
  the file it names).
- A FIFO or character device (/dev/null, a terminal, /dev/stdout on a pipe) is written to as a
  stream: opened for writing, no temporary, no rename, so it stays what it is.
- A read-only target, a directory without write permission and a device without write
  permission are refused, root included: the mode bits decide (os.access says yes to root).
- Several outputs of one run (--save and --export-svg) are all or nothing (write_all): every
  temporary is written first, then all are renamed, each old file kept as a hard link until
  the last rename succeeded and put back if one failed. FIFOs and devices cannot be taken
  back, so they are written after every regular file is in place. A SIGKILL in the middle
  can leave `.rnn-cli.*.tmp` files (a temporary, or the hard link to an old file).
- A FIFO with no reader fails after RNN_CLI_FIFO_TIMEOUT seconds (default 10), never hangs.
- An output that is the same file as an input (after links, ./ and hard links) is refused
  (refuse_outputs_over_inputs), before anything runs.

Every refusal is an RnnCliError whose one-line message starts with the flag and the path.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from contextlib import suppress
from dataclasses import dataclass
from typing import BinaryIO, Callable, Optional, Union

import numpy as np

from rnn_cli.errors import RnnCliError
from rnn_cli.stops import held

PathArg = Union[str, "os.PathLike[str]"]
EXAMPLE = {"--save": "run.npz", "--export-svg": "run.svg"}


@dataclass(frozen=True)
class Target:
    path: str  # what the user gave
    real: str  # links and ./ resolved: the file that is replaced (for a stream: the path to open)
    stream: bool  # FIFO or character device: written in place
    existing: Optional[os.stat_result]  # the regular file being replaced, None for a new one


def _fail(flag: str, path: str, why: str) -> RnnCliError:
    return RnnCliError(f"{flag} {path}: {why}")


def _parent_problem(flag: str, path: str) -> RnnCliError:
    """Why the directory part of `path` cannot hold a file: missing, or a file in the way."""
    parent = os.path.dirname(path)
    while parent:
        try:
            st = os.stat(parent)
        except FileNotFoundError:
            up = os.path.dirname(parent)
            if up == parent:
                break
            parent = up
            continue
        except OSError as e:
            return _fail(flag, path, f"cannot be written ({e.strerror or e})")
        if not stat.S_ISDIR(st.st_mode):
            return _fail(flag, path, f"parent {parent} is a file, not a directory")
        break
    return _fail(flag, path, f"directory {os.path.dirname(path)} does not exist")


def resolve(path: PathArg, flag: str = "--save") -> Target:
    """What writing `path` would do, or the one-line reason it cannot be written."""
    text = os.fspath(path)
    if text == "":
        raise _fail(flag, "''", f"empty path; give a file path like {EXAMPLE.get(flag, 'run.npz')}")
    if text.endswith(os.sep):
        name = text.rstrip(os.sep) or os.sep
        raise _fail(flag, text, f"names a directory; give a file path like {os.path.join(name, EXAMPLE.get(flag, 'run.npz'))}")
    try:
        st: Optional[os.stat_result] = os.stat(text)  # follows links, /proc's magic ones included
    except FileNotFoundError:
        st = None  # a new file, or a dangling link: the file it names is created
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _fail(flag, text, "symbolic link loop; give a file path") from None
        if e.errno == errno.ENOTDIR:
            raise _parent_problem(flag, text) from None
        raise _fail(flag, text, f"cannot be written ({e.strerror or e})") from None

    if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        # Mode bits too: os.access says yes to root for a 0444 device.
        if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(text, os.W_OK):
            raise _fail(flag, text, f"is not writable (mode {stat.S_IMODE(st.st_mode):04o})")
        # Opened by the name given: /dev/stdout -> /proc/self/fd/1 -> pipe:[...] has no real path.
        return Target(text, text, True, None)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _fail(flag, text, f"is a directory; give a file path like {os.path.join(text, EXAMPLE.get(flag, 'run.npz'))}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise _fail(flag, text, "is not a regular file, FIFO or character device")

    real = os.path.realpath(text)
    directory = os.path.dirname(real)
    if st is None:
        try:
            dst = os.stat(directory)
        except FileNotFoundError:
            raise _parent_problem(flag, text) from None
        except OSError as e:
            if e.errno == errno.ENOTDIR:
                raise _parent_problem(flag, text) from None
            raise _fail(flag, text, f"cannot be written ({e.strerror or e})") from None
        if not stat.S_ISDIR(dst.st_mode):
            raise _parent_problem(flag, text)
    else:
        # Mode bits, not os.access: root may write anything, but a 0444 file says "keep".
        if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise _fail(flag, text, f"{os.path.basename(text)} is read-only (mode {stat.S_IMODE(st.st_mode):04o})")
        if not os.access(real, os.W_OK):
            raise _fail(flag, text, "is not writable by this user")
    dir_mode = os.stat(directory).st_mode
    # Mode bits first: root may write into a 0555 directory, but its owner said no (as for files).
    if not dir_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(directory, os.W_OK | os.X_OK):
        raise _fail(flag, text, f"directory {directory} is not writable (mode {stat.S_IMODE(dir_mode):04o})")
    return Target(text, real, False, st)


def check_writable(path: PathArg, flag: str) -> None:
    """Refuse a path that cannot be written, before any work is done."""
    resolve(path, flag)


def _same_file(a: Target, b: Target) -> bool:
    if a.real == b.real:
        return True
    try:
        return os.path.samestat(os.stat(a.path), os.stat(b.path))  # hard links, /dev/stdout twice
    except OSError:
        return False


def check_paths(save: Optional[PathArg], export_svg: Optional[PathArg]) -> None:
    """Both output paths writable and not the same file, before anything runs."""
    save_t = resolve(save, "--save") if save is not None else None
    svg_t = resolve(export_svg, "--export-svg") if export_svg is not None else None
    if save_t is not None and svg_t is not None and _same_file(save_t, svg_t):
        raise RnnCliError(
            f"--save {save_t.path} and --export-svg {svg_t.path} are the same file; "
            "the SVG would replace the saved run: give two paths"
        )


def refuse_outputs_over_inputs(outputs: dict[str, PathArg], inputs: dict[str, PathArg]) -> None:
    """An output that is the same file as an input (after links, ./ and hard links: the same
    st_dev and st_ino) would destroy what the run reads: refused before anything runs."""
    seen = {}
    for flag, path in inputs.items():
        with suppress(OSError, ValueError):
            seen[flag] = (path, os.stat(os.fspath(path)))
    for out_flag, out_path in outputs.items():
        try:
            st = os.stat(os.fspath(out_path))
        except (OSError, ValueError):
            continue  # a new file cannot be an input
        if stat.S_ISCHR(st.st_mode):
            continue  # /dev/null as input and output destroys nothing
        for in_flag, (in_path, in_st) in seen.items():
            if os.path.samestat(st, in_st):
                raise RnnCliError(f"{out_flag} {os.fspath(out_path)} is the same file as {in_flag} {os.fspath(in_path)}: "
                                  "writing it would destroy the input; give another path")


def writes_to_stdout(path: PathArg) -> bool:
    """Whether writing `path` writes this process's stdout (`--save /dev/stdout`, or the file
    stdout is redirected to): then stdout must carry nothing else, or the .npz is corrupted."""
    try:
        return os.path.samestat(os.fstat(1), os.stat(os.fspath(path)))
    except (OSError, ValueError):
        return False


def _umask() -> int:
    """The process's umask, read without changing it where /proc says it."""
    with suppress(OSError, ValueError):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _keep_mode_and_owner(fd: int, existing: Optional[os.stat_result]) -> None:
    if existing is None:
        os.fchmod(fd, 0o666 & ~_umask())  # what open(path, "w") would have created
        return
    with suppress(OSError):  # only root (or CAP_CHOWN) may give a file to another owner
        os.fchown(fd, existing.st_uid, existing.st_gid)
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))  # after chown, which clears set-id bits


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Stream:
    """A write-only view of a FIFO or device. Without tell() and seek(), zipfile writes an .npz
    as a stream (data descriptors); /dev/null's tell() says 0 forever and would break it."""

    def __init__(self, f: BinaryIO):
        self._f = f

    def write(self, data) -> int:
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()

    def read(self, size: int = -1) -> bytes:  # numpy takes an object without read() for a path
        raise OSError("a stream opened for writing")


def write_with(path: PathArg, flag: str, writer: Callable[[BinaryIO], None]) -> None:
    """Write `path` with `writer(f)`, f a binary file object (not seekable for a stream)."""
    write_all([(path, flag, writer)])


def _write_stream(target: Target, flag: str, writer: Callable[[BinaryIO], None]) -> None:
    from rnn_cli.formats.safe_read import open_fifo_for_writing

    if stat.S_ISFIFO(os.stat(target.real).st_mode):  # no reader: fail after the deadline, never hang
        fd = open_fifo_for_writing(target.real, f"{flag} {target.path}")
    else:
        fd = os.open(target.real, os.O_WRONLY | os.O_NOCTTY)  # no O_CREAT: never a new file
    with os.fdopen(fd, "wb") as f:
        writer(_Stream(f))  # type: ignore[arg-type]
        f.flush()


def _write_temp(target: Target, writer: Callable[[BinaryIO], None], made: list[str]) -> str:
    """The whole file, written and synced to a temporary beside the target; its path, which is
    also recorded in `made` as it is created (for write_all's cleanup)."""
    import tempfile  # here: manual's start-up budget is tight and most runs save nothing

    with held():
        fd, tmp = tempfile.mkstemp(prefix=".rnn-cli.", suffix=".tmp", dir=os.path.dirname(target.real))
        made.append(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            _keep_mode_and_owner(f.fileno(), target.existing)
            os.fsync(f.fileno())
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_all(items: list[tuple[PathArg, str, Callable[[BinaryIO], None]]]) -> None:
    """All outputs or none: every regular file is written to its temporary first; only when all
    are complete are they renamed over their targets, each old file kept (a hard link) until
    every rename has succeeded, and put back if one fails. Streams (FIFOs, devices) cannot be
    taken back: they are written last, after every file is in place."""
    targets = [(resolve(path, flag), flag, writer) for path, flag, writer in items]
    staged: list[tuple[Target, str, str]] = []  # (target, flag, temporary)
    made: list[str] = []  # every temporary created; those not renamed are removed on failure
    installed: list[tuple[Target, Optional[str]]] = []  # (target, backup of the old file or None)
    current = targets[0] if targets else None
    try:
        for current in targets:
            target, flag, writer = current
            if not target.stream:
                staged.append((target, flag, _write_temp(target, writer, made)))
        for target, flag, tmp in staged:
            current = (target, flag, None)
            with held():  # the backup link, the rename and their record: all or none
                backup = _backup(target)
                try:
                    os.replace(tmp, target.real)
                except BaseException:
                    if backup is not None:
                        with suppress(OSError):
                            os.unlink(backup)
                    raise
                installed.append((target, backup))
        for directory in {os.path.dirname(t.real) for t, _, _ in staged}:
            _fsync_directory(directory)
        for current in targets:
            target, flag, writer = current
            if target.stream:
                _write_stream(target, flag, writer)
    except BaseException as e:
        renamed = {tmp for _t, _f, tmp in staged[: len(installed)]}  # gone: their names are the targets now
        _restore(installed)
        for tmp in made:
            if tmp not in renamed:
                with suppress(OSError):
                    os.unlink(tmp)
        if isinstance(e, OSError) and current is not None:
            raise _fail(current[1], current[0].path, f"could not write ({e.strerror or e})") from None
        raise
    finally:
        for _target, backup in installed:
            if backup is not None:
                with suppress(OSError):
                    os.unlink(backup)


def _backup(target: Target) -> Optional[str]:
    """A hard link to the file about to be replaced (None for a new file), to put back on failure."""
    if target.existing is None:
        return None
    import tempfile

    backup = tempfile.mktemp(prefix=".rnn-cli.", suffix=".tmp", dir=os.path.dirname(target.real))
    os.link(target.real, backup)
    return backup


def _restore(installed: list[tuple[Target, Optional[str]]]) -> None:
    """Undo the renames made so far: the old file back, or the new file gone."""
    for target, backup in reversed(installed):
        with suppress(OSError):
            if backup is None:
                os.unlink(target.real)
            else:
                os.replace(backup, target.real)
    installed.clear()


def write_atomic(path: PathArg, data: bytes, flag: str = "--save") -> None:
    write_with(path, flag, lambda f: f.write(data))


def npz_writer(arrays: dict[str, np.ndarray], config: dict) -> Callable[[BinaryIO], None]:
    """What writes an .npz that np.load(path, allow_pickle=False) reads: arrays plus `config` as
    JSON text, straight into the temporary file (or stream), never built in memory first."""
    return lambda f: np.savez(f, **arrays, config=np.array(json.dumps(config)))


def save_npz(path: PathArg, arrays: dict[str, np.ndarray], config: dict) -> None:
    write_with(path, "--save", npz_writer(arrays, config))
