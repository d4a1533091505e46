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


def read_torch(src: safe_read.Source, notes: list[str]):
    import pickle

    import torch

    wrong = _not_a_torch_file(src)
    if wrong is not None:
        raise src.error(wrong)
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
