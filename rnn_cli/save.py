"""Writing files so that a failed or killed run never leaves a partial one behind.

The data goes into an unnamed file in the target's directory (O_TMPFILE on Linux), which
is given a name only once it is complete and then renamed over the target in one step. A
run killed while writing leaves nothing; an existing file is replaced whole or not at all.
Where O_TMPFILE is unsupported, a hidden temporary file is used and removed on failure.
"""

from __future__ import annotations

import io
import json
import os
from contextlib import suppress
from pathlib import Path

import numpy as np

from rnn_cli.errors import RnnCliError


def check_writable(path: Path, flag: str) -> None:
    """Refuse a path that cannot be written, before any work is done."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        if path.is_dir():
            raise RnnCliError(f"{flag} {path}: is a directory; give a file path")
        if not parent.is_dir():
            raise RnnCliError(f"{flag} {path}: directory {parent} does not exist")
    except OSError as e:  # a name too long for the filesystem, a loop of links, ...
        raise RnnCliError(f"{flag} {path}: cannot be written ({e.strerror or e})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RnnCliError(f"{flag} {path}: directory {parent} is not writable")


def _write_unnamed(directory: str, data: bytes, target: str) -> bool:
    """O_TMPFILE route; False when the filesystem does not support it."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return False
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fd = os.open(directory, flag | os.O_WRONLY, 0o644)
    except OSError:
        os.close(dir_fd)
        return False
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for attempt in range(100):
            name = os.path.join(directory, f".rnn-cli.{os.getpid()}.{attempt}.tmp")
            try:
                # linkat(AT_SYMLINK_FOLLOW): a dir fd makes CPython call linkat, not link(),
                # which would try to hard-link the /proc symlink itself (EXDEV).
                os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
                break
            except FileExistsError:
                continue
            except OSError:
                return False
        else:  # pragma: no cover
            return False
        try:
            os.replace(name, target)
        except BaseException:
            with suppress(OSError):
                os.unlink(name)
            raise
        return True
    finally:
        os.close(fd)
        os.close(dir_fd)


def write_atomic(path: Path, data: bytes, flag: str = "--save") -> None:
    target = str(path)
    directory = os.path.dirname(os.path.abspath(target))
    try:
        if _write_unnamed(directory, data, target):
            return
        import tempfile  # only where O_TMPFILE is unsupported

        fd, tmp = tempfile.mkstemp(prefix=".rnn-cli.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise RnnCliError(f"{flag} {path}: could not write ({e.strerror or e})") from None


def npz_bytes(arrays: dict[str, np.ndarray], config: dict) -> bytes:
    """An .npz that np.load(path, allow_pickle=False) reads: arrays plus `config` as JSON text."""
    buf = io.BytesIO()
    np.savez(buf, **arrays, config=np.array(json.dumps(config)))
    return buf.getvalue()


def save_npz(path: Path, arrays: dict[str, np.ndarray], config: dict) -> None:
    write_atomic(path, npz_bytes(arrays, config))
