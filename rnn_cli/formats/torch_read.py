"""Reading a torch.save checkpoint (.pt / .pth / .bin / .ckpt) without running code from it:
torch.load(weights_only=True) on a file rnn_cli.formats.safe_read has judged, after its first bytes
say it is not something else under a torch name (safetensors, .npy, .npz, a TorchScript
archive). torch is imported here only. Returns the unpickled object with numpy arrays for
tensors (bfloat16/float16 widened to float32 with a note; dtypes numpy lacks refused)."""

from __future__ import annotations

from rnn_cli.formats import safe_read
from rnn_cli.printable import printable


def _not_a_torch_file(src: safe_read.Source) -> str | None:
    """What a file named .pt really is, when its bytes say it is not a torch.save checkpoint."""
    kind = safe_read.sniff(src.head(16))
    if kind == "safetensors":
        return "is a safetensors file named like a torch checkpoint: rename it to .safetensors"
    if kind == "npy":
        return "is an .npy array named like a torch checkpoint: give it to --input/--h0, or save a state_dict"
    if kind != "zip":
        return None
    import zipfile

    try:
        with src.open() as raw, zipfile.ZipFile(raw) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None  # torch's reader says what is wrong with it
    if any(n.endswith(".npy") for n in names) and not any(n.endswith("data.pkl") for n in names):
        return "is an .npz archive named like a torch checkpoint: rename it to .npz"
    if any("/code/" in n or n.endswith("constants.pkl") for n in names):
        return ("is a TorchScript archive (torch.jit.save), which holds code; rnn-cli reads weights: "
                "save them with torch.save(model.state_dict(), PATH)")
    return None


# torch's legacy (non-zip) format: pickles back to back, the magic number first; then the
# main pickle, whose persistent ids ("storage", type, key, location, numel) declare each
# storage, and the storages' bytes. torch allocates every declared storage before reading it.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_ITEMSIZE = {"Double": 8, "Float": 4, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
                    "Byte": 1, "Bool": 1, "ComplexFloat": 8, "ComplexDouble": 16}


class _Stub:
    """Whatever global a legacy pickle names: takes any call, item or state, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs) -> "_Stub":
        return _Stub()

    def __setitem__(self, key, value) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


def _legacy_declared_bytes(f) -> int | None:
    """The bytes of storage a legacy checkpoint's main pickle declares, read with stubs for
    every global (no code from the file runs, no storage is made); None when the file is not
    a legacy checkpoint or its pickles cannot be read (torch.load then says why)."""
    import pickle

    declared: dict = {}

    class Reader(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            return type(name, (_Stub,), {})

        def persistent_load(self, pid):
            if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int):
                kind = getattr(pid[1], "__name__", "").removesuffix("Storage")
                declared[repr(pid[2])] = max(pid[4], 0) * STORAGE_ITEMSIZE.get(kind, 1)
            return _Stub()

    try:
        if Reader(f).load() != LEGACY_MAGIC:
            return None
        for _ in range(3):  # protocol version, sys_info, the main pickle
            Reader(f).load()
    except Exception:  # noqa: BLE001 - anything a broken pickle raises: torch.load reports it
        return None
    return sum(declared.values())


def _check_legacy_sizes(src: safe_read.Source) -> None:
    """Refuse a legacy checkpoint whose storages declare more bytes than the file holds,
    before torch allocates them (a few KB can declare terabytes)."""
    if src.head(1) != b"\x80":  # a pickle, not a zip archive
        return
    with src.open() as f:
        declared = _legacy_declared_bytes(f)
    if declared is not None and declared > src.size:
        raise src.error(f"declares {declared:,} bytes of tensor data but the file holds {src.size:,} bytes: "
                        "it is truncated or crafted")


def read_torch(src: safe_read.Source, notes: list[str]):
    import pickle

    import torch

    wrong = _not_a_torch_file(src)
    if wrong is not None:
        raise src.error(wrong)
    _check_legacy_sizes(src)
    try:
        with src.open() as f:
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise src.error(
            "refused: it holds pickled Python objects (a whole nn.Module?) and loading them would run "
            "code from the file; save the weights with torch.save(model.state_dict(), PATH)"
        ) from None
    except MemoryError:
        raise
    except Exception as e:  # a truncated zip, not a torch file at all, an allocation refused, ...
        text = str(e).strip()
        if "alloc" in text.lower() and "memory" in text.lower():
            raise safe_read.reading_out_of_memory(src.label, e) from None
        first = text.splitlines()[0][:200] if text else "no detail"
        raise src.error(f"cannot be read as a torch file ({type(e).__name__}: {printable(first)})") from None

    def to_numpy(t):
        if isinstance(t, torch.Tensor):
            t = t.detach()
            if t.dtype in (torch.bfloat16, torch.float16):
                note = f"{str(t.dtype).removeprefix('torch.')} tensors converted to float32"
                if note not in notes:
                    notes.append(note)
                t = t.float()
            try:
                return t.numpy()
            except (TypeError, RuntimeError):  # float8, quantized, ...: numpy has no such dtype
                raise src.error(f"holds a tensor of dtype {str(t.dtype).removeprefix('torch.')}, which rnn-cli "
                                "cannot read; convert it to float32 first") from None
        if isinstance(t, dict):
            return {k: to_numpy(v) for k, v in t.items()}
        if isinstance(t, (list, tuple)):
            return [to_numpy(v) for v in t]
        return t

    return to_numpy(obj)
