"""The one place that spells parameter names and gate orders.

Parameter names (torch/nn/modules/rnn.py, `_flat_weights_names`):
    nn.RNN / LSTM / GRU    weight_ih_l{k}[_reverse], weight_hh_l{k}[_reverse],
                           bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse], weight_hr_l{k}[_reverse]
    nn.RNNCell / LSTMCell / GRUCell   weight_ih, weight_hh, bias_ih, bias_hh

Gate blocks stacked along the G*H rows of a weight or bias, in each framework's order:
    framework  LSTM          GRU       where it is written
    torch      i, f, g, o    r, z, n   nn.LSTM / nn.GRU docs (weight_ih_l[k])
    ONNX       i, o, f, c    z, r, h   ONNX operators LSTM / GRU (W, R, B)
    Keras      i, f, c, o    z, r, h   keras LSTMCell / GRUCell (kernel split into 4 / 3)
    cuDNN      i, f, c', o   r, z, h'  cudnnGetRNNLinLayerMatrixParams: LSTM linLayerID 0/4 input,
                                       1/5 forget, 2/6 new memory, 3/7 output; GRU 0/3 reset,
                                       1/4 update, 2/5 new memory
Each framework names the gates its own way; `ROLES` says which are the same gate. Keras also
stores its kernels transposed, (H_in, G*H): the permutations here act on the G*H axis only.

numpy only; nothing else in rnn_cli spells these names or orders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where a permutation runs: config imports this module, and -h needs no numpy
    import numpy as np

CELLS = ("rnn", "lstm", "gru")
TORCH_CLASS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
CELL_CLASS = {"rnn": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}
CELL_OF = {**{v: k for k, v in TORCH_CLASS.items()}, **{v: k for k, v in CELL_CLASS.items()}}  # class -> cell
FRAMEWORKS = ("torch", "onnx", "keras", "cudnn")

# Each framework's gates, in its order, with the role each plays (the same role = the same gate).
_ORDERS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "torch": {
        "lstm": (("i", "input"), ("f", "forget"), ("g", "cell"), ("o", "output")),
        "gru": (("r", "reset"), ("z", "update"), ("n", "new")),
    },
    "onnx": {
        "lstm": (("i", "input"), ("o", "output"), ("f", "forget"), ("c", "cell")),
        "gru": (("z", "update"), ("r", "reset"), ("h", "new")),
    },
    "keras": {
        "lstm": (("i", "input"), ("f", "forget"), ("c", "cell"), ("o", "output")),
        "gru": (("z", "update"), ("r", "reset"), ("h", "new")),
    },
    "cudnn": {
        "lstm": (("i", "input"), ("f", "forget"), ("c'", "cell"), ("o", "output")),
        "gru": (("r", "reset"), ("z", "update"), ("h'", "new")),
    },
}
ROLES = {"input": "input gate", "forget": "forget gate", "cell": "cell candidate (new memory)",
         "output": "output gate", "reset": "reset gate", "update": "update gate", "new": "candidate (new memory)"}


def gate_names(cell: str, framework: str = "torch") -> tuple[str, ...]:
    """The gate blocks of one cell in a framework's order; () for the plain RNN (one block)."""
    if cell == "rnn":
        return ()
    return tuple(name for name, _ in _ORDERS[framework][cell])


def gate_roles(cell: str, framework: str = "torch") -> tuple[str, ...]:
    return () if cell == "rnn" else tuple(role for _, role in _ORDERS[framework][cell])


def num_gates(cell: str) -> int:
    """G: how many H-row blocks are stacked in weight_ih / weight_hh / the biases."""
    return max(1, len(gate_names(cell)))


def order_from_torch(cell: str, framework: str) -> tuple[int, ...]:
    """For each gate slot in `framework`'s order, the index of the same gate in torch's order:
    ONNX LSTM (i, o, f, c) from torch (i, f, g, o) -> (0, 3, 1, 2)."""
    if cell == "rnn":
        return (0,)
    torch_roles = gate_roles(cell, "torch")
    return tuple(torch_roles.index(role) for role in gate_roles(cell, framework))


def _regate(a: np.ndarray, order: tuple[int, ...], axis: int) -> np.ndarray:
    G = len(order)
    n = a.shape[axis]
    if n % G:
        raise ValueError(f"axis {axis} has {n} rows, not a multiple of {G} gates")
    H = n // G
    import numpy as np

    blocks = [np.take(a, np.arange(k * H, (k + 1) * H), axis=axis) for k in order]
    return np.concatenate(blocks, axis=axis)


def torch_to(a: np.ndarray, cell: str, framework: str, axis: int = 0) -> np.ndarray:
    """A weight or bias with torch's gate blocks along `axis` (G*H rows) -> `framework`'s order."""
    return _regate(a, order_from_torch(cell, framework), axis)


def to_torch(a: np.ndarray, cell: str, framework: str, axis: int = 0) -> np.ndarray:
    """The inverse of torch_to: `framework`'s gate order along `axis` -> torch's."""
    order = order_from_torch(cell, framework)
    inverse = tuple(order.index(k) for k in range(len(order)))
    return _regate(a, inverse, axis)


# ---- parameter names ---------------------------------------------------------------------------

KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
CELL_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
REVERSE = "_reverse"


def suffix(layer: int, reverse: bool | int = False) -> str:
    """l0, l0_reverse, l1, ...: the layer and direction part of a parameter name."""
    return f"l{layer}" + (REVERSE if reverse else "")


def param_name(kind: str, layer: int | None = None, reverse: bool | int = False) -> str:
    """weight_ih_l1_reverse for a layered module; weight_ih for a cell (layer None)."""
    return kind if layer is None else f"{kind}_{suffix(layer, reverse)}"


def layered_names(num_layers: int, D: int, bias: bool, proj: bool) -> list[tuple[str, int, int, str]]:
    """(name, layer, direction, kind) of every parameter, in torch's _flat_weights_names order."""
    out = []
    for layer in range(num_layers):
        for d in range(D):
            kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if bias else []) + (["weight_hr"] if proj else [])
            out += [(param_name(k, layer, d), layer, d, k) for k in kinds]
    return out


@dataclass(frozen=True)
class ParamName:
    kind: str  # weight_ih, weight_hh, bias_ih, bias_hh, weight_hr
    layer: int | None  # None: a cell's name (no suffix)
    reverse: bool

    @property
    def name(self) -> str:
        return param_name(self.kind, self.layer, self.reverse)


_KIND = r"(?:weight|bias)_(?:ih|hh|hr)"
LAYERED_NAME = rf"(?P<name>(?P<kind>{_KIND})_l(?P<layer>\d+)(?P<rev>{REVERSE})?)"
CELL_NAME = r"(?P<name>(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh))"
# full state_dict keys: an optional dotted module prefix, then the parameter's own name
LAYERED_KEY = re.compile(rf"^(?:(?P<prefix>.+)\.)?{LAYERED_NAME}$")
CELL_KEY = re.compile(rf"^(?:(?P<prefix>.+)\.)?{CELL_NAME}$")


def parse_name(name: str) -> ParamName | None:
    """weight_hh_l2_reverse -> ParamName('weight_hh', 2, True); bias_ih -> ('bias_ih', None, False);
    anything else -> None. `name` is the parameter's own name (no module prefix)."""
    m = re.fullmatch(LAYERED_NAME, name)
    if m:
        return ParamName(m.group("kind"), int(m.group("layer")), bool(m.group("rev")))
    m = re.fullmatch(CELL_NAME, name)
    return ParamName(m.group("kind"), None, False) if m else None


def with_layer(name: str, layer: int) -> str:
    """The same parameter in another layer: weight_ih_l2_reverse, 0 -> weight_ih_l0_reverse."""
    p = parse_name(name)
    if p is None or p.layer is None:
        raise ValueError(f"{name!r} is not a layered parameter name")
    return param_name(p.kind, layer, p.reverse)


def shape_str(shape) -> str:
    """(10, 1, 16), and (5,) for one dimension: how shapes are written everywhere."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
