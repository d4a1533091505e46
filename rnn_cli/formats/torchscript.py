"""TorchScript archives (torch.jit.save, often .pt or .jit), read without running their code.

The archive is a zip under one root folder:
    data.pkl       the module tree: `__torch__.<path> <Class>` objects whose __dict__ holds the
                   submodules, parameters, buffers and plain attributes (an RNN's nonlinearity)
    data/<key>     raw little-endian storage bytes of each tensor
    code/...py     each class's TorchScript source: scripted nn.RNN/LSTM/GRU and cells state
                   their constructor arguments as `hidden_size : Final[int] = 8`; a traced
                   module's forward calls `torch.gru(x, hx, params, True, 2, 0.1, False, True, True)`
                   (has_biases, num_layers, dropout, train, bidirectional, batch_first)

data.pkl goes through an unpickler that knows a handful of globals (tensor rebuild, storage
types, OrderedDict, TorchScript's list tags) and turns every `__torch__.*` class into a plain
record; any other global is refused. The code files are read as text with regular
expressions, never compiled or run. torch.jit.load is never called. Every tensor is checked
against the size of the zip entry that holds it before anything is allocated.

numpy only.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from rnn_cli.core import layout
from rnn_cli.errors import RnnCliError

if TYPE_CHECKING:
    from rnn_cli.formats import safe_read

# storage class -> numpy dtype (little-endian: the `byteorder` entry is checked)
STORAGES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bf16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}
RNN_CLASS = re.compile(r"^__torch__\.torch\.nn\.modules\.rnn(?:\.___torch_mangle_\d+)?\.(RNN|LSTM|GRU|RNNCell|LSTMCell|GRUCell)$")
_QUALNAME = re.compile(r"^__torch__(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_DEPTH = 64  # module nesting


class Record:
    """A `__torch__.*` object from data.pkl, kept as data: its qualified class name and the
    attributes the pickle gave it. Nothing of the class's code is looked up or run."""

    qualname = "__torch__"

    def __setstate__(self, state) -> None:
        self.attrs = state if isinstance(state, dict) else {}


_RECORD_CLASSES: dict[str, type] = {}


def _record_class(qualname: str) -> type:
    if qualname not in _RECORD_CLASSES:
        _RECORD_CLASSES[qualname] = type("Record", (Record,), {"qualname": qualname})
    return _RECORD_CLASSES[qualname]


@dataclass(frozen=True)
class _Storage:
    dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, offset, size, stride, *_ignored):
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


def _tagged(value, *_tag):  # torch.jit._pickle.restore_type_tag(value, "List[str]") and build_*list
    return value


class _Unpickler(pickle.Unpickler):
    ALLOWED = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("collections", "OrderedDict"): OrderedDict,
        ("torch.jit._pickle", "restore_type_tag"): _tagged,
        ("torch.jit._pickle", "build_tensorlist"): _tagged,
        ("torch.jit._pickle", "build_intlist"): _tagged,
        ("torch.jit._pickle", "build_doublelist"): _tagged,
        ("torch.jit._pickle", "build_boollist"): _tagged,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[module, name]
        if module == "torch" and name in STORAGES:
            return name  # the storage type travels as its name
        if _QUALNAME.match(module) and _NAME.match(name):
            return _record_class(f"{module}.{name}")
        raise pickle.UnpicklingError(f"refused global {module}.{name}: not a tensor, storage or __torch__ module")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and pid[1] in STORAGES):
            raise pickle.UnpicklingError("unknown persistent id")
        _, kind, key, _location, numel = pid
        if not (isinstance(key, str) and key.isdigit() and isinstance(numel, int) and numel >= 0):
            raise pickle.UnpicklingError("malformed storage reference")
        return _Storage(STORAGES[kind], key, numel)


def unpickle(data: bytes):
    """data.pkl -> Records, _TensorRefs and plain values; UnpicklingError on any other global."""
    return _Unpickler(io.BytesIO(data)).load()


# ---- the archive -------------------------------------------------------------------------------


@dataclass
class Declared:
    """A recurrent module as the archive declares it: its class and the constructor arguments
    it states (scripted: Final constants; traced: the literal arguments of its torch.<op> call)."""

    cls: str  # RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell
    args: dict = field(default_factory=dict)  # input_size, hidden_size, ..., batch_first, dropout, nonlinearity
    how: str = "shapes only"  # "scripted constants", "traced call", "shapes only"


@dataclass
class Archive:
    tensors: dict[str, np.ndarray]  # qualified keys (encoder.rnn.weight_ih_l0), like a state_dict
    declared: dict[str, Declared]  # module prefix -> its class and stated arguments


def is_archive(src: "safe_read.Source") -> bool:
    """A zip with <root>/data.pkl and <root>/code/: torch.jit.save's layout (not torch.save's)."""
    try:
        with src.open() as raw, zipfile.ZipFile(raw) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False
    roots = {n.split("/", 1)[0] for n in names}
    return len(roots) == 1 and any(n.endswith("/data.pkl") for n in names) and any("/code/" in n for n in names)


def read(src: "safe_read.Source") -> Archive:
    """The archive's tensors and declared recurrent modules; src is a regular file or a FIFO's bytes."""
    p = src.label
    try:
        raw = src.open()
        z = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise RnnCliError(f"{p}: cannot be read as a TorchScript archive ({e})") from None
    with raw, z:
        entries = {i.filename: i for i in z.infolist()}
        root = next(iter(entries)).split("/", 1)[0]
        limit = src.size

        def entry(name: str) -> bytes:
            info = entries.get(f"{root}/{name}")
            if info is None:
                raise RnnCliError(f"{p}: TorchScript archive without {name}")
            if info.file_size > limit:  # torch stores entries uncompressed: never larger than the file
                raise RnnCliError(f"{p}: {name} claims {info.file_size:,} bytes in a {limit:,}-byte file: refused")
            return z.read(info)

        if entries.get(f"{root}/byteorder") is not None and entry("byteorder").strip() not in (b"little", b""):
            raise RnnCliError(f"{p}: big-endian TorchScript archive: rnn-cli reads little-endian ones only")
        try:
            tree = unpickle(entry("data.pkl"))
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
            raise RnnCliError(f"{p}: data.pkl refused ({e}); nothing from the archive was run") from None
        if not isinstance(tree, Record):
            raise RnnCliError(f"{p}: data.pkl holds no TorchScript module")
        tensors: dict[str, np.ndarray] = {}
        records: dict[str, Record] = {}
        _walk(tree, "", tensors, records, _Tensors(entry, 2 * limit), 0, set())  # 2x: bfloat16 widens to float32
        code = lambda qualname: _class_source(entry, entries, root, qualname)  # noqa: E731
        declared = {}
        for prefix, rec in records.items():
            m = RNN_CLASS.match(rec.qualname)
            if m:
                declared[prefix] = _declared(m.group(1), rec, code(rec.qualname))
    return Archive(tensors, declared)


def _walk(rec: Record, prefix: str, tensors: dict, records: dict, materialise, depth: int, seen: set) -> None:
    """Depth-first through the module records; a record met again (shared, or a cycle) is not
    walked twice, so a small pickle cannot make the walk exponential."""
    if depth > MAX_DEPTH:
        raise RnnCliError(f"modules nested more than {MAX_DEPTH} deep: refused")
    if id(rec) in seen:  # records stay alive in `records`: ids are not reused meanwhile
        return
    seen.add(id(rec))
    records[prefix] = rec
    for name, value in getattr(rec, "attrs", {}).items():
        if not isinstance(name, str):
            continue
        key = f"{prefix}.{name}" if prefix else name
        if isinstance(value, _TensorRef):
            tensors[key] = materialise(value)
        elif isinstance(value, Record) and value is not rec:
            _walk(value, key, tensors, records, materialise, depth + 1, seen)


class _Tensors:
    """Materialises tensor references: each storage read once, each reference once (the same
    array for a tensor the pickle names twice), and all of them together never more bytes
    than twice the file's size: a pickle that points many views at one storage is refused."""

    def __init__(self, entry, budget: int) -> None:
        self.entry, self.budget = entry, budget
        self.done: dict[int, tuple[_TensorRef, np.ndarray]] = {}
        self.storages: dict[str, np.ndarray] = {}

    def storage(self, st: _Storage) -> np.ndarray:
        if st.key not in self.storages:
            self.storages[st.key] = _read_storage(st, self.entry)
        flat = self.storages[st.key]
        if flat.size < st.numel:  # two references to one key that disagree on its size
            raise RnnCliError(f"data/{st.key} is referenced with {st.numel:,} elements but holds {flat.size:,}")
        return flat

    def __call__(self, ref: _TensorRef) -> np.ndarray:
        if id(ref) in self.done:
            return self.done[id(ref)][1]
        a = _materialise(ref, self.storage, self.budget)
        self.budget -= a.nbytes
        self.done[id(ref)] = (ref, a)  # keeps ref alive: its id stays unique
        return a


def _materialise(ref: _TensorRef, storage, budget: int) -> np.ndarray:
    """The tensor's elements, after checking its view lies inside the storage and the storage
    inside its zip entry: nothing larger than the file is ever allocated."""
    st = ref.storage
    if not (all(isinstance(v, int) and v >= 0 for v in (ref.offset, *ref.size, *ref.stride)) and len(ref.size) == len(ref.stride)):
        raise RnnCliError(f"tensor in data/{st.key}: malformed size or stride")
    count = int(np.prod(ref.size, dtype=object)) if ref.size else 1
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) if count else ref.offset - 1
    if count > st.numel or last >= st.numel:
        raise RnnCliError(f"tensor in data/{st.key}: shape {layout.shape_str(ref.size)} reaches beyond its storage of {st.numel:,} elements")
    flat = storage(st)
    if count * flat.itemsize > budget:
        raise RnnCliError("tensors in data.pkl add up to more bytes than the file holds: refused")
    view = np.lib.stride_tricks.as_strided(flat[ref.offset :], ref.size, [s * flat.itemsize for s in ref.stride])
    return np.array(view)  # an owned copy, at most the storage's size


def _read_storage(st: _Storage, entry) -> np.ndarray:
    """data/<key> as a flat array of st.numel elements; refused when the entry is shorter."""
    itemsize = 2 if st.dtype == "bf16" else np.dtype(st.dtype).itemsize
    raw = entry(f"data/{st.key}")
    if len(raw) < st.numel * itemsize:
        raise RnnCliError(f"data/{st.key} holds {len(raw):,} bytes, its tensor needs {st.numel * itemsize:,}")
    if st.dtype == "bf16":
        return (np.frombuffer(raw, "<u2", st.numel).astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, st.dtype, st.numel)


# ---- what the code files state (read as text) ---------------------------------------------------

ARG_NAMES = ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first", "dropout",
             "bidirectional", "proj_size")
_FINAL = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_]*) : Final\[(?:int|bool|float|str)\] = (.{1,64})$")
_CALL = re.compile(r"\btorch\.(gru|lstm|rnn_tanh|rnn_relu|gru_cell|lstm_cell|rnn_tanh_cell|rnn_relu_cell)\((.{1,4000})\)\s*$")


def literal(text: str):
    """A TorchScript literal as written in code/: True, False, 2, 0.10000000000000001, 0., "GRU".
    None when it is anything else (an expression, a name): nothing is evaluated."""
    text = text.strip()
    if text in ("True", "False"):
        return text == "True"
    if re.fullmatch(r"-?\d{1,18}", text):
        return int(text)
    if re.fullmatch(r"-?(\d+\.\d*|\.\d+)(e-?\d+)?|-?\d+e-?\d+", text):
        return float(text)
    m = re.fullmatch(r'"([A-Za-z0-9_]{0,32})"', text)
    return m.group(1) if m else None


def _class_source(entry, entries, root: str, qualname: str) -> str:
    """The source of one class: code/<module path>.py, from `class Name(` to the next class."""
    module, _, name = qualname.rpartition(".")
    path = "code/" + module.replace(".", "/") + ".py"
    if f"{root}/{path}" not in entries:
        return ""
    text = entry(path).decode("utf-8", "replace")
    m = re.search(rf"^class {re.escape(name)}\(.*?(?=^class |\Z)", text, re.M | re.S)
    return m.group(0) if m else ""


def _split_args(text: str) -> list[str]:
    """Top-level comma split of a call's arguments (brackets nest)."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _traced_args(op: str, args: list[str]) -> dict | None:
    """The constructor arguments a traced module's aten call spells as literals."""
    values = [literal(a) for a in args]
    if op.endswith("_cell"):
        out = {"bias": not (len(args) == 6 and args[4] == "None")}
        if op.startswith("rnn_"):
            out["nonlinearity"] = "relu" if op == "rnn_relu_cell" else "tanh"
        return out
    names = ("bias", "num_layers", "dropout", "train", "bidirectional", "batch_first")
    if len(values) == 9 and isinstance(values[3], bool):  # (input, hx, params, has_biases, ...)
        got = dict(zip(names, values[3:]))
    elif len(values) == 9 and isinstance(values[4], bool):  # packed: (data, batch_sizes, hx, params, ...)
        got = dict(zip(names[:5], values[4:]))
    else:
        return None
    types = {"bias": bool, "num_layers": int, "dropout": float, "train": bool, "bidirectional": bool, "batch_first": bool}
    if any(not isinstance(v, types[k]) for k, v in got.items() if k != "dropout") or not isinstance(got["dropout"], (int, float)):
        return None
    got.pop("train")
    got["dropout"] = float(got["dropout"])
    if op.startswith("rnn_"):
        got["nonlinearity"] = "relu" if op == "rnn_relu" else "tanh"
    return got


def _declared(cls: str, rec: Record, source: str) -> Declared:
    args = {}
    for line in source.splitlines():
        m = _FINAL.match(line)
        if m and m.group(1) in ARG_NAMES and literal(m.group(2)) is not None:
            args[m.group(1)] = literal(m.group(2))
    nl = getattr(rec, "attrs", {}).get("nonlinearity")  # a scripted RNN keeps it as an attribute
    if cls in ("RNN", "RNNCell") and nl in ("tanh", "relu"):
        args["nonlinearity"] = nl
    if args:
        return Declared(cls, args, "scripted constants")
    calls = [_traced_args(m.group(1), _split_args(m.group(2))) for m in map(_CALL.search, source.splitlines()) if m]
    calls = [c for c in calls if c is not None]
    if calls and all(c == calls[0] for c in calls):
        return Declared(cls, calls[0], "traced call")
    return Declared(cls, {}, "shapes only")


def reconcile(declared: Declared, kind: str | None, inferred: dict) -> tuple[dict, list[str]]:
    """The declared arguments a state_dict cannot tell (batch_first, dropout, nonlinearity), and
    one sentence per declared argument (or class) that contradicts the weights' shapes."""
    problems = []
    if kind is not None and kind != declared.cls:
        problems.append(f"the archive declares an nn.{declared.cls} but its weights have the shapes of an nn.{kind}")
    for name, value in declared.args.items():
        if name in inferred and inferred[name] != value:
            problems.append(f"the archive declares {name}={value!r} but its weights say {name}={inferred[name]!r}")
    extra = {k: declared.args[k] for k in ("nonlinearity", "batch_first", "dropout") if k in declared.args}
    if declared.cls not in ("RNN", "RNNCell"):
        extra.pop("nonlinearity", None)
    if declared.cls.endswith("Cell"):
        extra.pop("batch_first", None)
        extra.pop("dropout", None)
    return extra, problems
