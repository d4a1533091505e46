"""Reading untrusted files: what the path is, how big it may be, what its headers declare.

Every reader of rnn-cli (checkpoints in rnn_cli.formats.checkpoint, --input/--h0/--c0 .npy files) goes
through here first, so that a file is judged before anything is allocated for it:

- the path: a directory, a FIFO, a device, a socket or a symbolic link loop is named as such;
- a FIFO is a stream: read whole, with a deadline for its writer (RNN_CLI_FIFO_TIMEOUT seconds,
  default 10), then parsed from memory like a file;
- the size: a file larger than the memory this process may still allocate is refused with one
  line naming both numbers (rnn_cli.core.limits);
- headers: an .npy header's shape times its item size must fit in the bytes the file holds; an
  .npz's members likewise; a safetensors header's offsets, dtypes and shapes must fit the file
  before a byte of a tensor is read (the format is read here by hand, never mapped).

Every refusal is an RnnCliError whose message starts with the flag (if any) and the path.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional

import numpy as np

from rnn_cli.errors import RnnCliError

FIFO_TIMEOUT_S = 10.0
ZIP_MAGIC = b"PK\x03\x04"
NPY_MAGIC = b"\x93NUMPY"
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit


def fifo_timeout() -> float:
    """Seconds a FIFO may keep rnn-cli waiting for its writer (or reader): RNN_CLI_FIFO_TIMEOUT."""
    try:
        value = float(os.environ.get("RNN_CLI_FIFO_TIMEOUT", FIFO_TIMEOUT_S))
    except ValueError:
        return FIFO_TIMEOUT_S
    return value if value > 0 else FIFO_TIMEOUT_S


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def _what(mode: int) -> Optional[str]:
    """What a non-regular file is, in words."""
    for test, words in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return None


@dataclass
class Source:
    """A file to read: a regular file (path, size) or a FIFO's whole content (data)."""

    label: str  # "--input x.npy" or "x.pt": how messages name it
    path: str
    size: int
    data: Optional[bytes] = None  # a FIFO's bytes, read whole

    def open(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def head(self, n: int) -> bytes:
        if self.data is not None:
            return self.data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def error(self, why: str) -> RnnCliError:
        return RnnCliError(f"{self.label}: {why}")


def source(path: str | os.PathLike, flag: str = "") -> Source:
    """The file at `path`, judged before it is read: one line for what it cannot be."""
    text = os.fspath(path)
    label = f"{flag} {text}" if flag else text
    try:
        st = os.stat(text)
    except FileNotFoundError:
        raise RnnCliError(f"{label}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise RnnCliError(f"{label}: is a symbolic link loop, not a file") from None
        if e.errno == errno.ENOTDIR:
            raise RnnCliError(f"{label}: no such file (a part of the path is a file, not a directory)") from None
        raise RnnCliError(f"{label}: cannot be read ({e.strerror or e})") from None
    what = _what(st.st_mode)
    if what is not None:
        raise RnnCliError(f"{label}: is {what}, not a file")
    if stat.S_ISFIFO(st.st_mode):
        data = read_fifo(text, label)
        return Source(label, text, len(data), data)
    check_fits_memory(label, st.st_size)
    if st.st_size == 0:
        raise RnnCliError(f"{label}: is empty (0 bytes)")
    return Source(label, text, st.st_size)


def check_fits_memory(label: str, nbytes: int, what: str = "is") -> None:
    """Refuse `nbytes` (a file's size, or what its header declares) beyond what may be allocated."""
    from rnn_cli.core.limits import memory_limit

    limit, limit_source = memory_limit()
    if nbytes > limit:
        raise RnnCliError(f"{label}: {what} {_mib(nbytes)}, more than the {_mib(limit)} this process may "
                          f"allocate ({limit_source}); read it on a machine with more memory or raise the limit")


def read_fifo(path: str, label: str, timeout: Optional[float] = None) -> bytes:
    """A FIFO's whole content. No writer within `timeout` seconds (or a writer that sends nothing
    for that long) fails with one line; never blocks forever."""
    import select

    from rnn_cli.core.limits import memory_limit

    timeout = fifo_timeout() if timeout is None else timeout
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # returns at once, writer or not
    chunks: list[bytes] = []
    total = 0
    limit = memory_limit()[0]
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                who = "no writer" if not chunks else "its writer sent nothing more"
                raise RnnCliError(f"{label}: is a FIFO and {who} within {timeout:g} s "
                                  "(RNN_CLI_FIFO_TIMEOUT); start the writer first or give a file")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                check_fits_memory(label, total, "sends more than")
            deadline = time.monotonic() + timeout
    finally:
        os.close(fd)


def open_fifo_for_writing(path: str, label: str, timeout: Optional[float] = None) -> int:
    """A FIFO's write end, waiting at most `timeout` seconds for a reader; a blocking fd."""
    import fcntl

    timeout = fifo_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if time.monotonic() >= deadline:
                raise RnnCliError(f"{label}: is a FIFO and no reader opened it within {timeout:g} s "
                                  "(RNN_CLI_FIFO_TIMEOUT); start the reader first or give a file") from None
            time.sleep(0.05)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """Library warnings while reading a file (torch's UserWarning for a raw pickle or a TorchScript
    archive, numpy's) are dropped: the one line rnn-cli prints says what went wrong."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def reading_out_of_memory(label: str, e: BaseException) -> RnnCliError:
    """An allocation refused while reading a file: advice about the file, not about flags."""
    detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    return RnnCliError(f"{label}: out of memory while reading it ({detail}): the file declares more data than "
                       "this process may allocate; check the file, or read it on a machine with more memory")


def sniff(head: bytes) -> Optional[str]:
    """What the first bytes say the file is: zip, npy, safetensors, pickle, or None."""
    if head.startswith(ZIP_MAGIC) or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
            return "safetensors"
    return None


# ---- .npy -------------------------------------------------------------------------------------


def npy_header(f: BinaryIO, label: str, available: int) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of the .npy at f's position, checked against the
    `available` bytes left in the file (member) before any array is allocated."""
    try:
        from numpy.lib import _format_impl as npformat  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.lib import format as npformat

    start = f.tell()
    try:
        version = npformat.read_magic(f)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = npformat._read_array_header(f, version, max_header_size=10000)  # noqa: SLF001
    except Exception as e:  # numpy's parser: ValueError, SyntaxError, tokenize.TokenError, ...
        why = " ".join(str(e).split())[:160]
        raise RnnCliError(f"{label}: not a readable .npy (its header is damaged or cut off: {why})") from None
    if dtype.hasobject or dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype is not None:
        raise RnnCliError(f"{label}: holds {dtype} values; rnn-cli reads arrays of real numbers only")
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise RnnCliError(f"{label}: its header declares the impossible shape {shape}")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    left = available - (f.tell() - start)
    if need > left:
        raise RnnCliError(f"{label}: its header declares {shape} {dtype} ({_mib(need)}) but the file holds "
                          f"{_mib(max(left, 0))} of data: it is cut off or damaged")
    return shape, dtype, fortran


def read_npy(src: Source) -> np.ndarray:
    """An .npy file's array: header checked, then exactly the declared bytes read."""
    kind = sniff(src.head(16))
    if kind == "zip":
        raise src.error("is a zip archive (an .npz, or a torch checkpoint?), not a .npy: save one array with np.save")
    if kind != "npy":
        raise src.error("is not an .npy file (no \\x93NUMPY magic): save one array with np.save(PATH, array)")
    with src.open() as f:
        shape, dtype, fortran = npy_header(f, src.label, src.size)
        return _read_body(f, src.label, shape, dtype, fortran)


def _read_body(f: BinaryIO, label: str, shape, dtype: np.dtype, fortran: bool) -> np.ndarray:
    count = int(np.prod(shape, dtype=object))
    try:
        a = np.empty(count, dtype=dtype)
    except MemoryError as e:
        raise reading_out_of_memory(label, e) from None
    got = f.readinto(memoryview(a).cast("B")) if count else 0
    if got != a.nbytes:
        raise RnnCliError(f"{label}: cut off: {got:,} of {a.nbytes:,} data bytes")
    return a.reshape(shape[::-1]).transpose() if fortran else a.reshape(shape)


@contextmanager
def open_zip(src: Source, unreadable: str) -> Iterator:  # yields a zipfile.ZipFile
    """The file as a zip archive (.npz, .keras), closed on leaving; one line when it is not one:
    `unreadable` and the zip module's reason, escaped."""
    import zipfile

    from rnn_cli.printable import printable

    with src.open() as raw:
        try:
            z = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise src.error(f"{unreadable} ({printable(' '.join(str(e).split()))[:160]})") from None
        with z:
            yield z


def read_npz(src: Source) -> dict[str, np.ndarray]:
    """An .npz's arrays (np.savez / savez_compressed): each member's header checked against its
    size in the archive, and the total against memory, before anything is allocated."""
    import zipfile

    if sniff(src.head(16)) != "zip":
        raise src.error("is not an .npz (a zip archive of .npy files): its first bytes say otherwise")
    with open_zip(src, "cannot be read as .npz") as z:
        members = [i for i in z.infolist() if not i.is_dir()]
        check_fits_memory(src.label, sum(i.file_size for i in members), "declares")
        out = {}
        for info in members:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            label = f"{src.label} member {name!r}"
            try:
                with z.open(info) as f:
                    buffered = io.BufferedReader(f)  # type: ignore[arg-type]
                    shape, dtype, fortran = npy_header(buffered, label, info.file_size)
                    out[name] = _read_body(buffered, label, shape, dtype, fortran)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
                raise RnnCliError(f"{label}: cannot be read ({' '.join(str(e).split())[:160]})") from None
    return out


# ---- safetensors ------------------------------------------------------------------------------

# safetensors' dtype names -> numpy (little-endian, as the format stores them); BF16 is widened
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
             "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


@dataclass(frozen=True)
class StEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets into the data section
    end: int


def safetensors_header(src: Source) -> tuple[int, list[StEntry]]:
    """(where the data section starts, the tensors), every entry checked against the file."""
    head = src.head(8)
    if len(head) < 8:
        raise src.error(f"cut off: {len(head)} bytes, a safetensors file starts with an 8-byte header length")
    n = int.from_bytes(head, "little")
    if n > MAX_SAFETENSORS_HEADER or 8 + n > src.size:
        raise src.error(f"not a readable safetensors file: its header length {n:,} exceeds the file's {src.size:,} bytes")
    with src.open() as f:
        f.seek(8)
        text = f.read(n)
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise src.error("not a readable safetensors file: its header is not JSON (damaged or cut off)") from None
    if not isinstance(header, dict):
        raise src.error("not a readable safetensors file: its header is not a JSON object")
    body = src.size - 8 - n
    entries = [_st_entry(src, name, info, body) for name, info in header.items() if name != "__metadata__"]
    spans = sorted((e.start, e.end, e.name) for e in entries if e.end > e.start)
    for (s0, e0, a), (s1, e1, b) in zip(spans, spans[1:]):
        if s1 < e0:
            raise src.error(f"damaged safetensors header: tensors {a!r} and {b!r} overlap")
    return 8 + n, entries


def _st_entry(src: Source, name: str, info, body: int) -> StEntry:
    bad = lambda why: src.error(f"damaged safetensors header: tensor {name!r} {why}")  # noqa: E731
    if not isinstance(info, dict):
        raise bad("is not described by an object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in ST_DTYPES:
        raise src.error(f"tensor {name!r} has dtype {str(dtype)[:20]}, which rnn-cli cannot read")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise bad(f"has the impossible shape {str(shape)[:40]}")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= body):
        raise bad(f"has data offsets {str(offsets)[:60]} outside the file's {body:,} data bytes")
    need = int(np.prod(shape, dtype=object)) * np.dtype(ST_DTYPES[dtype]).itemsize
    if need != offsets[1] - offsets[0]:
        raise bad(f"declares {tuple(shape)} {dtype} ({need:,} bytes) over {offsets[1] - offsets[0]:,} bytes")
    return StEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def read_safetensors(src: Source, notes: list[str]) -> dict[str, np.ndarray]:
    """Every tensor, by hand: the header checked whole first, then each tensor read into an array
    of exactly its declared size (bfloat16 widened to float32, with a note)."""
    if sniff(src.head(16)) == "zip":
        raise src.error("is a zip archive (a torch checkpoint or an .npz?), not a safetensors file")
    start, entries = safetensors_header(src)
    out = {}
    with src.open() as f:
        for e in entries:
            f.seek(start + e.start)
            a = _read_body(f, f"{src.label} tensor {e.name!r}", e.shape, np.dtype(ST_DTYPES[e.dtype]), False)
            if e.dtype == "BF16":
                a = (a.astype(np.uint32) << 16).view(np.float32)
                if "bfloat16 tensors converted to float32" not in notes:
                    notes.append("bfloat16 tensors converted to float32")
            out[e.name] = a
    return out


# ---- layer indices ----------------------------------------------------------------------------


def check_layer_indices(label: str, keys: list[str], layer_of) -> None:
    """A layer index is bounded by the tensors the file holds: a module with layers 0..k has at
    least k+1 tensors, so `weight_ih_l99999999` among 2 tensors is refused before any
    per-layer bookkeeping is allocated. layer_of(key) -> int or None."""
    count = len(keys)
    for key in keys:
        k = layer_of(key)
        if k is not None and k >= count:
            raise RnnCliError(f"{label}: key {printable(key)!s} names layer {k:,} but the file holds only {count:,} "
                              "tensors: the file is damaged or crafted")


def printable(text: str) -> str:
    from rnn_cli.printable import printable as escape

    return escape(text)
