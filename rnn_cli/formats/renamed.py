"""Renamed weights: a cell's four tensors kept in torch's layout under the file's own names.

Ports and hand-written models store a GRU as `enc_w_ih (768, 256)`, `enc_w_hh (768, 256)`,
`enc_b_ih (768,)`, `enc_b_hh (768,)`, or `W_ih`/`W_hh`/`b_ih`/`b_hh`, `kernel`/`recurrent_kernel`...
A key is read as one of torch's cell parameters when its last one to three name segments
(split on `.`, `_`, `/`, `-`; case ignored) spell one of the names below; what is left before
them is the group's prefix. A group is a candidate when its two weights have the shapes of
one cell: weight_hh (G*H, H) with G = 1, 3 or 4 (RNN, GRU, LSTM), weight_ih (G*H, H_in).

The shapes cannot tell the gate order: a candidate is read in torch's order (layout.py), and
says so. A weight stored transposed, (H, G*H) as Keras does, is reported, never mapped.

Pure functions over key -> shape; numpy not even needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rnn_cli.core import layout

# spellings (lowercase, separators removed) -> torch's cell parameter name
SPELLINGS: dict[str, tuple[str, ...]] = {
    "weight_ih": ("wih", "weightih", "weightsih", "wi", "wx", "wxh", "win", "winput", "weightx", "weightinput",
                  "inputweight", "inputweights", "ihweight", "kernel", "inputkernel", "w"),
    "weight_hh": ("whh", "weighthh", "weightshh", "wh", "whh", "wrec", "wrecurrent", "weighth", "weighthidden",
                  "hiddenweight", "hiddenweights", "recurrentweight", "recurrentweights", "hhweight",
                  "recurrentkernel", "u"),
    "bias_ih": ("bih", "biasih", "biasesih", "bi", "bx", "bin", "binput", "biasx", "biasinput", "inputbias", "ihbias"),
    "bias_hh": ("bhh", "biashh", "biaseshh", "bh", "brec", "brecurrent", "biash", "biashidden", "hiddenbias",
                "recurrentbias", "hhbias"),
}
ROLE_OF = {spelling: role for role, spellings in SPELLINGS.items() for spelling in spellings}
_SEP = re.compile(r"[._/-]")
GATES = {layout.num_gates(c): c for c in layout.CELLS}  # G -> cell


@dataclass
class Group:
    prefix: str  # what the keys share before the parameter part ("enc"; "" at the top level)
    keys: dict[str, str]  # torch's cell name -> the file's key, e.g. weight_ih -> enc_w_ih
    cell: str | None  # rnn, lstm, gru from the shapes; None when they fit none
    problems: list[str] = field(default_factory=list)


def role(key: str) -> tuple[str, str] | None:
    """(prefix, torch name) for a key whose last segments spell a cell parameter:
    enc_w_ih -> ("enc", "weight_ih"); rnn.recurrent_kernel -> ("rnn", "weight_hh"); else None.
    The longest spelling wins (recurrent_kernel before kernel)."""
    parts = _SEP.split(key)
    seps = _SEP.findall(key)
    for n in (3, 2, 1):
        if n > len(parts):
            continue
        spelled = "".join(parts[-n:]).lower()
        if spelled in ROLE_OF:
            cut = len(parts) - n  # segments left for the prefix
            prefix = "".join(p + s for p, s in zip(parts[:cut], seps))
            return prefix[:-1] if prefix else "", ROLE_OF[spelled]
    return None


def _cell_of(hh: tuple[int, ...]) -> str | None:
    rows, cols = hh
    return GATES.get(rows // cols) if cols and rows % cols == 0 else None


def find_groups(shapes: dict[str, tuple[int, ...]]) -> list[Group]:
    """Candidate cells among keys -> shapes, in the file's order. A group needs a 2-D weight_ih
    and weight_hh with as many rows as each other; anything else is not reported."""
    by_prefix: dict[str, dict[str, list[str]]] = {}
    for key in shapes:
        r = role(key)
        if r is not None:
            by_prefix.setdefault(r[0], {}).setdefault(r[1], []).append(key)
    groups = []
    for prefix, roles in by_prefix.items():
        ih, hh = roles.get("weight_ih"), roles.get("weight_hh")
        if not ih or not hh or len(shapes[ih[0]]) != 2 or len(shapes[hh[0]]) != 2:
            continue
        keys = {name: roles[name][0] for name in layout.CELL_PARAMS if name in roles}
        problems = [f"{' and '.join(found)} all read as {name}: the names do not say which one is"
                    for name, found in roles.items() if len(found) > 1]
        hh_shape, ih_shape = shapes[hh[0]], shapes[ih[0]]
        cell = _cell_of(hh_shape)
        if cell is None and _cell_of(hh_shape[::-1]) is not None and ih_shape[1] == hh_shape[1]:
            problems.append(f"{hh[0]} {layout.shape_str(hh_shape)} and {ih[0]} {layout.shape_str(ih_shape)} are stored "
                            "transposed ((H, G*H), as Keras stores kernels): their gate order cannot be told from "
                            "the names, so they are not mapped")
        elif cell is None or ih_shape[0] != hh_shape[0]:
            continue  # two matrices that make no cell: not a candidate
        groups.append(Group(prefix, keys, cell, problems))
    return groups
