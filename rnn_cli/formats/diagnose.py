"""Which sizes a layered module's keys agree on, so that a damaged checkpoint's diagnosis
blames the keys that break the majority, not whichever key was read first.

Every layer-direction votes with its weight_hh (G*H_cell, H_out) and, for an LSTM with a
projection, its weight_hr (proj_size, H_cell): the reading (G, H_cell, proj_size) that most
layer-directions give is the module's. input_size is what layer 0's forward and reverse
weight_ih (G*H_cell, H_in) agree on, read through a transpose where only the transpose has
G*H_cell rows. Where two readings have the same number of votes (a 2-layer module whose
layers disagree), both are checked and the diagnosis says that either may be the true one.

A key whose transpose has the expected shape is reported as `transposed`; the layer-directions
outvoted on the hidden size are reported one problem each (`hidden_mismatch`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rnn_cli.core import layout

GATES = {layout.num_gates(c): layout.TORCH_CLASS[c] for c in layout.CELLS}  # G -> kind
Slot = tuple[int, bool]  # (layer, backward direction)

# A machine-readable `code` per problem, from the wording of checkpoint.py's messages (a
# problem made here carries its own code). Checked in order; "shape" where none matches.
CODES = (
    ("rank", "a weight must have 2 dimensions"),
    ("no_hidden", "the hidden size cannot be inferred"),
    ("no_cell", "so it matches no cell"),
    ("layer_gap", "a layer's weights were removed or renamed"),
    ("missing_reverse", "no backward (_reverse) twin"),
    ("missing_forward", "but no forward twin"),
    ("missing_key", " is missing"),
    ("input_width", "layer input widths do not chain"),
    ("partial_bias", "biases on some layers only"),
    ("mixed_dtype", "mixed dtypes"),
    ("impossible", "inferred arguments are impossible"),
)


def code_of(problem) -> str:
    """The problem's code: its own, or the one its message's wording says."""
    own = getattr(problem, "code", "")
    if own:
        return own
    return next((code for code, words in CODES if words in problem.message), "shape")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a module: the keys at fault, one plain line, and its code. Its home
    is here, beside the codes, so that checkpoint.py imports this module and not the reverse."""

    keys: tuple[str, ...]  # full keys (module prefix included)
    message: str  # one plain line
    runnable: bool = False  # True: inspect reports it (exit 1) but the module can still run (NaN weights)
    code: str = ""  # machine-readable kind; code_of fills it in from the wording where empty


@dataclass(frozen=True)
class Reading:
    """One way to read a module's sizes: G gates, H_cell, proj_size (0: none), input_size."""

    G: int
    H: int
    proj: int
    input_size: int = 0

    def describe(self, other: "Reading") -> str:
        """This reading's arguments that differ from `other`'s, in the constructor's names."""
        parts = [f"{name}={mine}" for name, mine, theirs in (
            ("hidden_size", self.H, other.H), ("proj_size", self.proj, other.proj),
            ("input_size", self.input_size, other.input_size), ("kind", GATES[self.G], GATES[other.G]),
        ) if mine != theirs]
        return ", ".join(parts)


def slot_of(name: str) -> Slot:
    p = layout.parse_name(name)
    return p.layer, p.reverse


def infer_gates(weight_hh: tuple[int, ...], weight_hr: tuple[int, ...] | None) -> tuple[int | None, int]:
    """(G, H_cell) from weight_hh's shape (G*H_cell, H_out) and weight_hr's (proj_size, H_cell).

    Without a projection H_out = H_cell, so G = rows / columns:
        (8, 8) -> G=1, RNN;  (24, 8) -> G=3, GRU;  (32, 8) -> G=4, LSTM   (H_cell = 8)
    With weight_hr the module must be an LSTM: G = 4 and H_cell = rows / 4 (= weight_hr's columns).
    weight_ih (G*H_cell, H_in) cannot decide alone: H_in is free. G is None when nothing fits.
    """
    rows, cols = weight_hh
    if weight_hr is not None:
        return (4, rows // 4) if rows % 4 == 0 else (None, rows)
    if cols > 0 and rows % cols == 0 and rows // cols in GATES:
        return rows // cols, cols
    return None, cols


def slot_readings(params: dict[str, np.ndarray]) -> dict[Slot, Reading]:
    """Each layer-direction's own reading, from its 2-D weight_hh (read through a transpose
    when only the transpose fits a cell) and its weight_hr (or the module's first one)."""
    any_hr = next((a for n, a in params.items() if n.startswith("weight_hr_") and a.ndim == 2), None)
    out: dict[Slot, Reading] = {}
    for n, hh in params.items():
        if not n.startswith("weight_hh_") or hh.ndim != 2:
            continue
        hr = params.get("weight_hr_" + n[len("weight_hh_"):])
        hr = hr if hr is not None and hr.ndim == 2 else any_hr
        for shape in (hh.shape, hh.shape[::-1]):
            G, H = infer_gates(shape, None if hr is None else hr.shape)
            if G is not None:
                out[slot_of(n)] = Reading(G, H, 0 if hr is None else int(hr.shape[0]))
                break
    return out


def _input_sizes(params: dict[str, np.ndarray], rows: int) -> list[int]:
    """input_size as layer 0's forward and reverse weight_ih say it, most votes first."""
    votes = []
    for n in ("weight_ih_l0", "weight_ih_l0_reverse"):
        a = params.get(n)
        if a is not None and a.ndim == 2:
            r, c = (int(v) for v in a.shape)
            votes.append(r if r != rows and c == rows else c)  # (H_in, G*H) is a transpose
    return _tied(Counter(votes)) or [0]


def _tied(votes: Counter) -> list:
    """The values with the most votes (several when tied), in first-seen order."""
    top = max(votes.values(), default=0)
    return [v for v, n in votes.items() if n == top]


def readings(params: dict[str, np.ndarray]) -> tuple[list[Reading], dict[Slot, Reading]]:
    """The module's most likely readings (one, or several equally likely) and each
    layer-direction's own. Empty when no weight_hh fits any cell."""
    own = slot_readings(params)
    out = []
    for r in _tied(Counter(own.values())):
        out += [Reading(r.G, r.H, r.proj, i) for i in _input_sizes(params, r.G * r.H)]
    return out, own


def transposed(name: str, module: str, got: tuple[int, ...], shape: tuple[int, ...]) -> str | None:
    """The message when `got` is `shape` transposed, else None."""
    from rnn_cli.core.config import shape_str

    if len(got) == 2 and tuple(got) != tuple(shape) and tuple(got[::-1]) == tuple(shape):
        return f"{module}: {name}: transposed {shape_str(got)} where {shape_str(shape)} is expected"
    return None


def diagnose(module: str, candidates: list[Reading], own: dict[Slot, Reading], check: Callable[[Reading], list]) -> list:
    """The shape problems: under the one most likely reading, with outvoted layer-directions
    folded into one `hidden_mismatch` problem each; under several, one `ambiguous` problem
    that names each reading and the keys it would make wrong."""
    if len(candidates) > 1:
        found = [check(c) for c in candidates]
        common = [p for p in found[0] if all(p.message in {q.message for q in f} for f in found[1:])]
        shared = {p.message for p in common}
        parts, keys = [], []
        for c, f in zip(candidates, found):
            bad = [k for p in f if p.message not in shared for k in p.keys]
            keys += [k for k in bad if k not in keys]
            names = ", ".join(k.rpartition(".")[2] for k in bad) or "no key"
            parts.append(f"{c.describe(candidates[0] if c != candidates[0] else candidates[1])} ({names} wrong)")
        return common + [Problem(tuple(keys), (
            f"{module}: the layers disagree and no reading has more of them behind it: " + " or ".join(parts)
            + f"; {'both are' if len(candidates) == 2 else 'each is'} possible: check how the model was built"),
            code="ambiguous")]
    (best,) = candidates
    problems = check(best)
    for slot in sorted(s for s, r in own.items() if (r.G, r.H, r.proj) != (best.G, best.H, best.proj)):
        mine = [p for p in problems if p.keys and all(slot_of(k) == slot for k in p.keys)]
        if not mine:
            continue
        r, (k, rev) = Reading(own[slot].G, own[slot].H, own[slot].proj, best.input_size), slot
        voters = sorted({s for s, o in own.items() if (o.G, o.H, o.proj) == (best.G, best.H, best.proj)})
        where = f"layer {k}{' (backward)' if rev else ''}"
        problems = [p for p in problems if p not in mine] + [Problem(tuple(q for p in mine for q in p.keys), (
            f"{module}: {where} reads as {r.describe(best)} where {len(voters)} of {len(own)} layer-directions "
            f"agree on {best.describe(r)}: "
            f"{', '.join(q.rpartition('.')[2] for p in mine for q in p.keys)} belong to a differently sized layer"),
            code="hidden_mismatch")]
    return problems
