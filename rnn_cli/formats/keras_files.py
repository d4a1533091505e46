"""Keras files, read as data: the recurrent layers and their own arrays, without importing Keras.

    .keras       a zip: config.json (the model's config) and model.weights.h5 (Keras 3's weights:
                 `layers/<snake_case(class)>[_k]/.../cell/vars/0, 1, 2` in the model's layer order)
    .h5          legacy: attribute model_config (JSON) and group model_weights/<layer name>, whose
                 attribute weight_names lists `.../<layer>/<cell>/kernel` paths
    .weights.h5  Keras 3's save_weights: the `layers/...` tree of .keras alone, no config (each
                 `vars` group names its layer in an attribute)

Every file is untrusted: zip members are checked against the archive, config.json against a size
and nesting bound, every dataset's declared bytes against the bytes the file stores for it before
it is read; only plain float datasets reached through hard links are read (no external links,
external storage or virtual datasets: they would read other files), never object dtypes; h5py
never unpickles. Imports h5py (the `keras` extra), numpy and json only.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field

import h5py
import numpy as np

from rnn_cli.errors import RnnCliError
from rnn_cli.formats import safe_read
from rnn_cli.printable import printable

RECURRENT = ("LSTM", "GRU", "SimpleRNN")
CONTAINERS = ("Sequential", "Functional", "Model")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MAX_CONFIG_BYTES = 64 * 2**20  # config.json / model_config: a model's config is kilobytes
MAX_DEPTH = 32  # models nested in models
MAX_LAYERS = 100_000  # layers in all, nested included
MAX_RATIO = 1032  # zlib's deflate cannot expand data more than this (its maximum compression ratio)
VARS = ("kernel", "recurrent_kernel", "bias")  # a Keras RNN cell's variables, in build order


@dataclass
class Direction:
    names: tuple[str, ...]  # the layer names from the top model down to this cell's layer
    arrays: dict[str, np.ndarray]  # kernel (H_in, G*H), recurrent_kernel (H, G*H), bias: Keras' own
    config: dict | None  # the RNN layer's config (None: a weights-only file)


@dataclass
class Layer:
    names: tuple[str, ...]  # from the top model down: "/".join is the module prefix
    cls: str | None  # LSTM, GRU, SimpleRNN (the wrapped one for Bidirectional); None: by shapes
    directions: list[Direction]  # one, or Bidirectional's forward and backward layers
    config: dict | None  # the layer's own config (Bidirectional's: merge_mode, ...)
    bidirectional: bool = False

    @property
    def prefix(self) -> str:
        return "/".join(self.names)


@dataclass
class KerasFile:
    kind: str  # ".keras", "legacy .h5", ".weights.h5"
    layers: list[Layer]
    others: list[str] = field(default_factory=list)  # "Dense 'dense'": the layers that are not recurrent
    notes: list[str] = field(default_factory=list)


def snake_case(name: str) -> str:
    """Keras' naming.to_snake_case: how Keras 3 names a layer's group in its weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def read(src: safe_read.Source) -> KerasFile:
    """The recurrent layers of a .keras, legacy .h5 or .weights.h5, by what the bytes are."""
    head = src.head(8)
    try:
        if safe_read.sniff(head) == "zip":
            config, weights = _unzip(src)
            with _h5(src, io.BytesIO(weights)) as f:
                out = KerasFile(".keras", [])
                _walk_config(src, config, _child(src, f, "layers"), (), out, 0)
                return out
        if head != HDF5_MAGIC:
            raise src.error("is neither a .keras zip nor an HDF5 file (.h5 / .weights.h5): its first bytes say otherwise")
        with _h5(src, src.open()) as f:
            if "model_config" in f.attrs:
                return _legacy(src, f)
            if isinstance(_child(src, f, "layers"), h5py.Group):
                out = KerasFile(".weights.h5", [])
                _walk_weights(src, f["layers"], (), out, 0)
                return out
            raise src.error("is an HDF5 file without a Keras model (no model_config, no layers group)")
    except RecursionError:
        raise src.error("nests its config too deeply to be a Keras model") from None
    except MemoryError as e:
        raise safe_read.reading_out_of_memory(src.label, e) from None


# ---- the containers: zip, HDF5, JSON ------------------------------------------------------------


def _unzip(src: safe_read.Source) -> tuple[dict, bytes]:
    """config.json (parsed) and model.weights.h5 (bytes) of a .keras, each member's declared size
    checked against the archive and the memory limit before it is read."""
    with safe_read.open_zip(src, "is not a readable .keras zip") as z:
        members = {i.filename: i for i in z.infolist()}
        for need in ("config.json", "model.weights.h5"):
            if need not in members:
                raise src.error(f"is a zip without {need}: not a .keras file (Keras 3 writes config.json and model.weights.h5)")
        config = _member(src, z, members["config.json"], MAX_CONFIG_BYTES)
        weights = _member(src, z, members["model.weights.h5"], None)
    return _json(src, config, "config.json"), weights


def _member(src: safe_read.Source, z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int | None) -> bytes:
    label = f"{src.label} member '{printable(info.filename)}'"
    if limit is not None and info.file_size > limit:
        raise RnnCliError(f"{label}: declares {info.file_size:,} bytes, more than a Keras config ({limit:,} at most)")
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size > src.size:
        raise RnnCliError(f"{label}: declares {info.compress_size:,} bytes but the archive holds {src.size:,}: it is cut off")
    safe_read.check_fits_memory(label, info.file_size, "declares")
    try:
        with z.open(info) as f:
            data = f.read(info.file_size + 1)  # never more than declared (+1 to see a lie)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise RnnCliError(f"{label}: cannot be read ({printable(' '.join(str(e).split()))[:160]}): the file is cut off or damaged") from None
    if len(data) != info.file_size:
        raise RnnCliError(f"{label}: holds {len(data):,} bytes but declares {info.file_size:,}: the file is damaged")
    return data


def _json(src: safe_read.Source, text: bytes | str, what: str) -> dict:
    if len(text) > MAX_CONFIG_BYTES:
        raise src.error(f"its {what} is {len(text):,} bytes, more than a Keras config ({MAX_CONFIG_BYTES:,} at most)")
    try:
        config = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise src.error(f"its {what} is not JSON (damaged or cut off)") from None
    if not isinstance(config, dict):
        raise src.error(f"its {what} is not a JSON object")
    return config


class _h5:
    """h5py.File on a file object, errors of the HDF5 library turned into one line."""

    def __init__(self, src: safe_read.Source, fileobj) -> None:
        self.src, self.fileobj = src, fileobj

    def __enter__(self) -> h5py.File:
        try:
            self.f = h5py.File(self.fileobj, "r")
        except (OSError, ValueError) as e:
            self.fileobj.close()
            raise self.src.error(f"is not a readable HDF5 file ({printable(' '.join(str(e).split()))[:160]})") from None
        return self.f

    def __exit__(self, *exc) -> None:
        self.f.close()
        self.fileobj.close()


def _child(src: safe_read.Source, group: h5py.Group, name: str):
    """group[name] through a hard link only (a soft or external link could reach another file); None if absent."""
    try:
        link = group.get(name, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise src.error(f"{printable(group.name)}/{printable(name)} is a link to elsewhere; rnn-cli reads no linked data")
        return group[name]
    except (OSError, KeyError, ValueError) as e:
        raise src.error(f"{printable(group.name)}/{printable(name)} cannot be read ({printable(str(e))[:120]}): the file is damaged") from None


def _array(src: safe_read.Source, ds, what: str) -> np.ndarray:
    """A weight dataset, its declared bytes checked against what the file stores for it first."""
    if not isinstance(ds, h5py.Dataset):
        raise src.error(f"{what} is not a dataset")
    if ds.dtype.kind != "f" or ds.dtype.fields is not None or ds.dtype.subdtype is not None:
        raise src.error(f"{what} holds {printable(str(ds.dtype))} values; a Keras weight holds floats")
    if ds.is_virtual or ds.external:
        raise src.error(f"{what} stores its data in other files; rnn-cli reads no linked data")
    shape = ds.shape or ()
    need = int(np.prod(shape, dtype=object)) * ds.dtype.itemsize
    stored = ds.id.get_storage_size()
    if ds.compression is None and need > stored:
        raise src.error(f"{what} declares {shape} {ds.dtype} ({need:,} bytes) but the file stores {stored:,} bytes "
                        "for it: it is cut off or crafted")
    if need > MAX_RATIO * max(stored, 1):  # compressed: deflate expands 1032 times at most
        raise src.error(f"{what} declares {shape} {ds.dtype} ({need:,} bytes) from {stored:,} compressed bytes, "
                        f"more than {MAX_RATIO:,} times as many: crafted")
    safe_read.check_fits_memory(f"{src.label} {what}", need, "declares")
    try:
        return np.asarray(ds[()], dtype=ds.dtype.newbyteorder("="))
    except (OSError, ValueError, TypeError) as e:
        raise src.error(f"{what} cannot be read ({printable(' '.join(str(e).split()))[:120]}): the file is damaged") from None


def _vars(src: safe_read.Source, group) -> dict[str, np.ndarray] | None:
    """A Keras 3 cell's arrays from its `vars` group (0 kernel, 1 recurrent_kernel, 2 bias)."""
    if not isinstance(group, h5py.Group):
        return None
    out = {}
    for i, name in enumerate(VARS):
        ds = _child(src, group, str(i))
        if ds is not None:
            out[name] = _array(src, ds, f"{printable(group.name)}/{i} ({name})")
    return out if "kernel" in out and "recurrent_kernel" in out else None


def _attr(src: safe_read.Source, obj, name: str, max_items: int = MAX_LAYERS):
    """An attribute (a string or a list of strings), its size checked before it is read; None if absent."""
    try:
        if name not in obj.attrs:
            return None
        aid = obj.attrs.get_id(name)
        count = int(np.prod(aid.shape or (), dtype=object)) if aid.shape is not None else 0
        if count > max_items or aid.get_storage_size() > MAX_CONFIG_BYTES:
            raise src.error(f"attribute {printable(name)} of {printable(obj.name)} declares {count:,} values: crafted")
        value = obj.attrs[name]
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise src.error(f"attribute {printable(name)} of {printable(obj.name)} cannot be read ({printable(str(e))[:120]})") from None
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "OSU" and value.size:
            return None
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value.ravel().tolist()]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value if isinstance(value, str) else None


def _has(group, name: str) -> bool:
    """Whether `group` has a link `name`, without following it (`name in group` would open the
    file an external link names)."""
    return group.get(name, getlink=True) is not None


def _cell_arrays(src: safe_read.Source, layer) -> dict[str, np.ndarray]:
    """The arrays of a Keras 3 RNN layer's group (`cell/vars/...`); {} where there are none."""
    cell = _child(src, layer, "cell") if isinstance(layer, h5py.Group) else None
    vars_ = _child(src, cell, "vars") if isinstance(cell, h5py.Group) else None
    return _vars(src, vars_) or {}


def _name_attr(src: safe_read.Source, group, fallback: str) -> str:
    """The layer name a Keras 3 `vars` group states; the group's own key where it states none."""
    vars_ = _child(src, group, "vars") if isinstance(group, h5py.Group) else None
    name = _attr(src, vars_, "name", 1) if isinstance(vars_, h5py.Group) else None
    return name if isinstance(name, str) and name else fallback


# ---- walking the model ----------------------------------------------------------------------


def _layer_configs(src: safe_read.Source, config: dict, depth: int) -> list[tuple[str, str, dict]]:
    """(class_name, name, config) of each layer of a Sequential/Functional config."""
    if depth > MAX_DEPTH:
        raise src.error(f"nests models more than {MAX_DEPTH} deep: crafted")
    layers = config.get("layers")
    if not isinstance(layers, list):
        return []
    if len(layers) > MAX_LAYERS:
        raise src.error(f"declares {len(layers):,} layers, more than {MAX_LAYERS:,}: crafted")
    out = []
    for entry in layers:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise src.error("its config lists a layer that is not a JSON object with a config")
        cls, cfg = entry.get("class_name"), entry["config"]
        name = cfg.get("name")
        if not isinstance(cls, str) or not isinstance(name, str):
            raise src.error("its config lists a layer without a class_name or a name")
        out.append((cls, name, cfg))
    return out


def _walk_config(src: safe_read.Source, model: dict, group, names: tuple[str, ...], out: KerasFile, depth: int) -> None:
    """Keras 3 (.keras): the model's layers in order, each at `layers/<snake_case(class)>[_k]` of
    the weights (Keras' saving_lib names them so, counting per class name)."""
    if model.get("class_name") in CONTAINERS and isinstance(model.get("config"), dict):
        model = model["config"]
    used: dict[str, int] = {}
    for cls, name, cfg in _layer_configs(src, model, depth):
        key = snake_case(cls)
        used[key] = used.get(key, -1) + 1
        key = key if used[key] == 0 else f"{key}_{used[key]}"
        sub = _child(src, group, key) if isinstance(group, h5py.Group) else None
        here = (*names, name)
        if cls in CONTAINERS:
            _walk_config(src, cfg, _child(src, sub, "layers") if isinstance(sub, h5py.Group) else None, here, out, depth + 1)
        elif cls in RECURRENT:
            out.layers.append(Layer(here, cls, [Direction(here, _cell_arrays(src, sub), cfg)], cfg))
        elif cls == "Bidirectional":
            out.layers.append(_bidirectional(src, cfg, sub, here))
        else:
            out.others.append(f"{printable(cls)} '{printable(name)}'")


def _bidirectional(src: safe_read.Source, cfg: dict, group, names: tuple[str, ...]) -> Layer:
    inner = cfg.get("layer")
    back = cfg.get("backward_layer")
    fwd_cfg = inner.get("config") if isinstance(inner, dict) else None
    back_cfg = back.get("config") if isinstance(back, dict) else None
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    if not isinstance(fwd_cfg, dict) or cls not in RECURRENT:
        raise src.error(f"Bidirectional layer '{printable(names[-1])}' wraps {printable(str(cls))}, not an LSTM, GRU or SimpleRNN")
    if not isinstance(back_cfg, dict):  # Keras builds the backward layer from the forward one's config
        back_cfg = {**fwd_cfg, "name": "backward_" + str(fwd_cfg.get("name", "")), "go_backwards": not fwd_cfg.get("go_backwards", False)}
    dirs = []
    for part, c in (("forward_layer", fwd_cfg), ("backward_layer", back_cfg)):
        sub = _child(src, group, part) if isinstance(group, h5py.Group) else None
        dirs.append(Direction((*names, str(c.get("name", part))), _cell_arrays(src, sub), c))
    return Layer(names, cls, dirs, cfg, bidirectional=True)


def _walk_weights(src: safe_read.Source, group, names: tuple[str, ...], out: KerasFile, depth: int) -> None:
    """Keras 3 .weights.h5 (no config): every group with `cell/vars` is a recurrent layer (its
    kind from the shapes), one with forward_layer and backward_layer a Bidirectional, one with
    `layers` a nested model; names from the `vars` groups' name attributes."""
    if depth > MAX_DEPTH:
        raise src.error(f"nests models more than {MAX_DEPTH} deep: crafted")
    keys = list(group.keys())
    if len(keys) > MAX_LAYERS:
        raise src.error(f"holds {len(keys):,} layers, more than {MAX_LAYERS:,}: crafted")
    for key in keys:
        sub = _child(src, group, key)
        if not isinstance(sub, h5py.Group):
            continue
        here = (*names, _name_attr(src, sub, key))
        if _has(sub, "forward_layer") and _has(sub, "backward_layer"):
            dirs = []
            for part in ("forward_layer", "backward_layer"):
                d = _child(src, sub, part)
                dirs.append(Direction((*here, _name_attr(src, d, part)), _cell_arrays(src, d), None))
            out.layers.append(Layer(here, None, dirs, None, bidirectional=True))
        elif _has(sub, "cell"):
            out.layers.append(Layer(here, None, [Direction(here, _cell_arrays(src, sub), None)], None))
        elif _has(sub, "layers"):
            _walk_weights(src, _child(src, sub, "layers"), here, out, depth + 1)
        elif isinstance(vars_ := _child(src, sub, "vars"), h5py.Group) and len(vars_):
            out.others.append(f"{printable(key)} '{printable(here[-1])}'")


def _legacy(src: safe_read.Source, f: h5py.File) -> KerasFile:
    """Legacy .h5 (model.save("x.h5"), tf.keras): the config in attribute model_config, each top
    layer's weights in model_weights/<name>, listed by its weight_names attribute as
    `[model/]<layer>/<cell>/kernel[:0]`: a cell's arrays are the names whose layer part matches."""
    config = _json(src, _attr(src, f, "model_config", 1) or "", "model_config attribute")
    weights = _child(src, f, "model_weights")
    out = KerasFile("legacy .h5", [])
    _walk_config(src, config, None, (), out, 0)
    for layer in out.layers:
        top = _child(src, weights, layer.names[0]) if isinstance(weights, h5py.Group) else None
        listed = _attr(src, top, "weight_names") if isinstance(top, h5py.Group) else None
        for d in layer.directions:
            d.arrays = {}
            for w in listed or []:
                parts = w.split(":")[0].split("/")
                if len(parts) >= 3 and parts[-1] in VARS and parts[-3] == d.names[-1] and \
                        (not layer.bidirectional or len(parts) >= 4 and parts[-4] == layer.names[-1]):
                    d.arrays[parts[-1]] = _array(src, _dataset(src, top, w), f"{printable(w)}")
    return out


def _dataset(src: safe_read.Source, group, path: str):
    for part in path.split("/"):
        group = _child(src, group, part) if isinstance(group, h5py.Group) else None
    if group is None:
        raise src.error(f"weight {printable(path)} is listed but missing: the file is damaged")
    return group
