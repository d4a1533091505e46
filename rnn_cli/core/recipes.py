"""Taking "the final state": the recipes people write, right and wrong, evaluated on a run.

Every recipe is real code, in the user's layout (batch_first, unbatched), with a torch
spelling and a numpy spelling; `evaluate` runs one of them on the run's own tensors with
eval() and compares what comes out with the truth.

The truth comes from the definitions, read off the last layer's output (never from h_n,
or every h_n recipe would be right by construction):

    forward final state of sequence n    output[lengths[n] - 1, n, :H_out]     (L - 1 unpadded)
    backward final state of sequence n   output[0, n, H_out:2*H_out]
    both directions                      [forward, backward] side by side

So the truth is read off a packed (or unpadded) run; under --no-pack, evaluate() runs the
recipes on the unpacked run the user sees and reads the truth off the packed run beside it.

A recipe is right only if it is right for the configuration, not just for this draw: `judge`
holds each verdict against a small control draw of the same configuration (control_config:
N = 3, unequal lengths), so `h_n[-2:].reshape(N, 2 * H_out)`, equal at N = 1, is marked as
the coincidence it is.

`padding_effect` compares a padded batch run without packing (as people do when they
forget pack_padded_sequence) with the packed run: per sequence and direction, how far h_n
and the output at each sequence's last real step moved. The padding value stays zero.

numpy only at import; torch is imported inside the functions that are handed torch tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rnn_cli.core.config import RunConfig, shape_str
from rnn_cli.core.sample import Provenance, from_user_layout

# The target each recipe claims to give: a stable key (--json "target") and its words.
# The truth for each is built in _truths.
TARGETS = {
    "final": "final state of the last layer",
    "forward": "forward final state of the last layer",
    "backward": "backward final state of the last layer",
    "both": "both directions concatenated (last layer)",
    "per_direction": "one per direction (last layer)",
    "last_output": "output at each sequence's last real step",
}


@dataclass(frozen=True)
class Recipe:
    meaning: str  # its target: a key of TARGETS
    torch: str  # the torch spelling: what the code view prints
    numpy: str  # the same recipe for numpy arrays
    why: str  # what it gives instead, read after the expression ("is the backward one"); "" when right


@dataclass(frozen=True)
class RecipeRow:
    expression: str  # the spelling that was evaluated
    meaning: str  # TARGETS[target]
    shape: tuple[int, ...]  # what the expression gives
    correct: bool  # right on this run and on the control draw: right for this configuration
    max_abs_diff: float | None  # on this run; None when the shape differs from the truth's
    note: str  # why it is wrong ("" when right)
    torch_expression: str  # the torch spelling, whatever was evaluated
    target: str = ""  # a key of TARGETS
    coincidence: bool = False  # equal on this run, wrong on the control draw
    control_max_abs_diff: float | None = None  # on the control draw (judge); None: wrong shape or not judged
    control: str = ""  # the control draw, "N=3, lengths 3,2,1"; "" when not judged


@dataclass(frozen=True)
class PaddingRow:
    sequence: int  # n
    length: int  # lengths[n]
    direction: str  # "forward" or "backward"
    tensor: str  # "h_n[k]" (k = layer * D + direction) or "output at last real step"
    max_abs_diff: float  # unpacked run minus packed run


# ---- the recipes, spelled for this configuration's layout ------------------------------------


def _output(cfg: RunConfig, t: str, feats: str = ":", n: str = ":") -> str:
    """output indexed at step t, sequence(s) n, features feats, in the user's layout."""
    if cfg.unbatched:
        idx = [t, feats]
    else:
        idx = [n, t, feats] if cfg.batch_first else [t, n, feats]
    while len(idx) > 1 and idx[-1] == ":":
        idx.pop()
    return f"output[{', '.join(idx)}]"


PAD_WHY = "reads step L-1, padding for the shorter sequences"
BATCH_FIRST_WHY = "is sequence N-1: batch_first does not apply to h_n"
Row = tuple[str, str, str]  # (meaning, expression, why it is wrong: "" when right)


def _one_direction(cfg: RunConfig, lib: str) -> list[Row]:
    """The final state of a unidirectional stack, and the spellings that miss it."""
    view, gather = "view" if lib == "torch" else "reshape", f"{lib}.arange(N)"
    rows = [("final", "h_n[-1]", ""), ("final", _output(cfg, "-1"), PAD_WHY)]
    if cfg.lengths is not None:
        rows.append(("final", _output(cfg, "lengths - 1", n=gather), ""))
    if cfg.num_layers > 1:
        rows.append(("final", "h_n[0]", "is the first layer's"))
    if not cfg.unbatched:
        rows.append(("final", f"h_n.{view}(N, -1)", "mixes layers and sequences"))
    if cfg.batch_first:
        rows.append(("final", "h_n[:, -1]", BATCH_FIRST_WHY))
    return rows


def _each_direction(cfg: RunConfig, lib: str) -> list[Row]:
    """The last layer's forward and backward states: h_n[k] with k = layer * D + direction,
    so the last layer's are h_n[-2], h_n[-1]."""
    view, gather = "view" if lib == "torch" else "reshape", f"{lib}.arange(N)"
    state = "H_out" if cfg.unbatched else "N, H_out"  # trailing axes of h_n
    rows = [("forward", "h_n[-2]", ""), ("forward", "h_n[-1]", "is the backward one"),
            ("forward", _output(cfg, "-1", ":H_out"), PAD_WHY)]
    if cfg.lengths is not None:
        rows.append(("forward", _output(cfg, "lengths - 1", ":H_out", n=gather), ""))
    if cfg.batch_first:
        rows.append(("forward", "h_n[:, -1]", BATCH_FIRST_WHY))
    return rows + [
        ("backward", f"h_n.{view}(num_layers, D, {state})[-1, 1]", ""),
        ("backward", _output(cfg, "0", "H_out:"), ""),
        ("backward", _output(cfg, "-1", "H_out:"), "is where the backward direction starts"),
    ]


def _both_directions(cfg: RunConfig, lib: str) -> list[Row]:
    """The two last-layer states side by side (N, 2*H_out), one per direction, and the
    outputs at the sequences' last real steps."""
    view = "view" if lib == "torch" else "reshape"
    state = "H_out" if cfg.unbatched else "N, H_out"
    padded, axis = cfg.lengths is not None, 0 if cfg.unbatched else 1
    rows = [("both", f"torch.cat((h_n[-2], h_n[-1]), dim={axis})" if lib == "torch"
             else f"np.concatenate((h_n[-2], h_n[-1]), axis={axis})", "")]
    if cfg.unbatched:
        rows.append(("both", "h_n[-2:].reshape(2 * H_out)", ""))
    else:
        swap = "transpose(0, 1)" if lib == "torch" else "transpose(1, 0, 2)"
        rows += [("both", f"h_n[-2:].{swap}.reshape(N, 2 * H_out)", ""),
                 ("both", "h_n[-2:].reshape(N, 2 * H_out)", "mixes sequences and directions: reshape without a transpose"),
                 ("both", f"h_n.{view}(N, -1)", "mixes layers, directions and sequences")]
    output_why = "has step L-1 as its backward half"
    rows.append(("both", _output(cfg, "-1"), output_why + (", and padding for shorter sequences" if padded else "")))
    rows += [("per_direction", f"h_n.{view}(num_layers, D, {state})[-1]", ""), ("per_direction", "h_n[-2:]", "")]
    if cfg.num_layers > 1:
        rows.append(("per_direction", f"h_n.{view}(D, num_layers, {state})[:, -1]",
                     "mixes layers and directions: h_n's first axis is layer * D + direction"))
    if padded:  # output[-1] is already under "both"
        rows.append(("last_output", _output(cfg, "lengths - 1", n=f"{lib}.arange(N)"), ""))
    return rows


def _spell(cfg: RunConfig, lib: str) -> list[Row]:
    """(meaning, expression, why) for lib "torch" or "np"; both spellings come from here."""
    if not cfg.bidirectional:
        return _one_direction(cfg, lib)
    return _each_direction(cfg, lib) + _both_directions(cfg, lib)


def recipes(cfg: RunConfig) -> list[Recipe]:
    """The recipes that make sense for this configuration, each with both spellings."""
    torch_rows, numpy_rows = _spell(cfg, "torch"), _spell(cfg, "np")
    return [Recipe(meaning, t, n, why) for (meaning, t, why), (_, n, _) in zip(torch_rows, numpy_rows)]


# ---- the truth, from the definitions -------------------------------------------------------


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _truths(cfg: RunConfig, output) -> dict[str, np.ndarray]:
    """Each meaning's true value, in the user's layout, from the last layer's output alone."""
    out = from_user_layout(cfg, _numpy(output))  # (L, N, D*H_out)
    L, N, _ = out.shape
    H_out = cfg.H_out
    last = np.asarray(cfg.lengths if cfg.lengths is not None else [L] * N) - 1  # (N,)
    n = np.arange(N)
    at_last = out[last, n]  # (N, D*H_out): each sequence's last real step
    forward = at_last[:, :H_out]  # (N, H_out)
    backward = out[0, :, H_out : 2 * H_out]  # (N, H_out): the backward direction ends at t = 0
    truths = {"final": forward, "forward": forward, "last_output": at_last}
    if cfg.bidirectional:
        truths["backward"] = backward
        truths["both"] = np.concatenate((forward, backward), axis=1)  # (N, 2*H_out)
        truths["per_direction"] = np.stack((forward, backward))  # (D, N, H_out)
    if cfg.unbatched:  # drop the batch axis the core added
        truths = {k: (v[:, 0] if k == "per_direction" else v[0]) for k, v in truths.items()}
    return truths


def _tolerance(dtype: np.dtype) -> float:
    """Equal up to rounding: the recipes copy values, so a right one differs by nothing at all."""
    return 1e-6 if dtype == np.float32 else 1e-12


def namespace(cfg: RunConfig, tensors: dict, lib: str) -> dict:
    """What a recipe may name: output, h_n, c_n, lengths, N, L, D, H_out, num_layers, torch or np."""
    ns: dict = {"N": cfg.N, "L": cfg.seq_len, "D": cfg.D, "H_out": cfg.H_out, "num_layers": cfg.num_layers}
    if lib == "torch":
        import torch

        def conv(a):
            return a if isinstance(a, torch.Tensor) else torch.as_tensor(a)

        ns["torch"] = torch
        lengths = torch.tensor(cfg.lengths, dtype=torch.int64) if cfg.lengths is not None else None
    elif lib == "numpy":

        def conv(a):
            return _numpy(a)

        ns["np"] = np
        lengths = np.asarray(cfg.lengths, dtype=np.int64) if cfg.lengths is not None else None
    else:
        raise ValueError(f"lib must be 'torch' or 'numpy', got {lib!r}")
    ns["lengths"] = lengths
    for name in ("output", "h_n", "c_n"):
        ns[name] = conv(tensors[name]) if tensors.get(name) is not None else None
    return ns


def evaluate(cfg: RunConfig, tensors: dict, lib: str, truth: dict | None = None) -> list[RecipeRow]:
    """Run every recipe for cfg on the run's tensors (user layout) and judge it against the truth.

    tensors: "output", "h_n" (and "c_n") of a run, torch tensors or numpy arrays; lib
    "torch" evaluates the torch spellings (numpy arrays are wrapped, on the CPU), "numpy"
    the numpy spellings. truth: the packed (or unpadded) run's tensors the truth is read
    from, when `tensors` are not (--no-pack: the padded batch run unpacked); default
    `tensors`. Recipes that raise on this run are left out.
    """
    truths = _truths(cfg, (truth or tensors)["output"])
    ns = namespace(cfg, tensors, lib)
    rows = []
    for recipe in recipes(cfg):
        expression = recipe.torch if lib == "torch" else recipe.numpy
        try:
            got = _numpy(eval(expression, {"__builtins__": {}}, dict(ns)))  # noqa: S307 - our own strings
        except (IndexError, RuntimeError, ValueError, TypeError):
            continue
        want = truths[recipe.meaning]
        if got.shape != want.shape:
            correct, diff = False, None
            note = f"shape {shape_str(got.shape)} vs truth {shape_str(want.shape)}"
        else:
            diff = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
            correct = diff <= _tolerance(want.dtype)
            note = "" if correct else (recipe.why or "ran on through the padding (--no-pack)")
        rows.append(
            RecipeRow(
                expression=expression,
                meaning=TARGETS[recipe.meaning],
                shape=tuple(got.shape),
                correct=correct,
                max_abs_diff=diff,
                note=note,
                torch_expression=recipe.torch,
                target=recipe.meaning,
            )
        )
    return rows


# ---- right in general: a control draw where coincidences cannot hide -----------------------

CONTROL_N = 3  # >= 3: a reshape without its transpose, h_n[:, -1] ... mix sequences


def control_config(cfg: RunConfig, provenance: Provenance) -> RunConfig:
    """The control draw of a run of cfg on a sample from `provenance`: control_sizes, all drawn,
    where initial states the user gave in a file (not zeros) are drawn random."""
    control = control_sizes(cfg)
    return replace(control, h0="random") if provenance.h_0 == "file" else control


def control_sizes(cfg: RunConfig) -> RunConfig:
    """The configuration the verdicts depend on, drawn small: what a recipe indexes keeps
    (cell and its c_n, layers, directions, batch_first or unbatched, packed or not, padding
    past the longest sequence, a projection that makes H_out differ from H_cell, dtype); what
    only sizes the numbers shrinks (H_in, H_cell: no recipe's shape compares them with N or L).
    N = 3 with unequal lengths and L = 3 (4 where L is longer than the longest sequence):
    unlike any run where a wrong recipe happens to give the right numbers (N = 1, equal
    lengths, L = 1), and cheap beside any run. Unbatched input stays unbatched: its recipes
    have no batch axis. What describe_control names; h_0 drawn as cfg draws it."""
    L = 3
    lengths = None
    if cfg.lengths is not None:
        lengths = (3, 2, 1)
        L += cfg.seq_len > max(cfg.lengths)  # keep padding past the longest sequence (total_length)
    proj = min(cfg.proj_size, 2)
    return replace(
        cfg,
        input_size=min(cfg.input_size, 3),
        hidden_size=proj + 1 if proj else min(cfg.hidden_size, 4),
        proj_size=proj,
        batch=None if cfg.unbatched else CONTROL_N,
        seq_len=L,
        lengths=lengths,
        seed=cfg.seed + 1,
    )


def describe_control(control: RunConfig) -> str:
    """"N=3, lengths 3,2,1": what the control draw varied (L where nothing else says it: unbatched)."""
    parts = [f"L={control.seq_len}"] if control.unbatched else [f"N={control.N}"]
    if control.lengths is not None:
        parts.append("lengths " + ",".join(map(str, control.lengths)))
    return ", ".join(parts)


def _only_here(cfg: RunConfig, control: RunConfig) -> str:
    """What makes this run special where the control is not: "N=1", "equal lengths", "L=1".
    (N=2 is not: every recipe here that mixes sequences already mixes two.)"""
    parts = []
    if not cfg.unbatched and cfg.N == 1:
        parts.append("N=1")
    if cfg.lengths is not None and min(cfg.lengths) == cfg.seq_len:
        parts.append("every sequence is full length")
    elif cfg.lengths is not None and len(set(cfg.lengths)) == 1 and cfg.N > 1:
        parts.append("all lengths are equal")
    if cfg.seq_len == 1:
        parts.append("L=1")
    return "because " + " and ".join(parts) if parts else "on this draw"


def judge(cfg: RunConfig, rows: list[RecipeRow], control: RunConfig, control_rows: list[RecipeRow]) -> list[RecipeRow]:
    """rows, each right only if right on the control draw too; a recipe equal on this run
    but not on the control is a coincidence, wrong, and says so."""
    on_control = {r.torch_expression: r for r in control_rows}
    said = describe_control(control)
    out = []
    for r in rows:
        c = on_control.get(r.torch_expression)  # None: it raised on the control
        control_diff = None if c is None else c.max_abs_diff
        row = replace(r, control_max_abs_diff=control_diff, control=said)
        if r.correct and not (c is not None and c.correct):
            off = "raises" if c is None else ("wrong shape" if control_diff is None else f"{control_diff:.2g} off")
            row = replace(row, correct=False, coincidence=True, note=f"equal here only {_only_here(cfg, control)}; {off} at {said}")
        out.append(row)
    return out


# ---- --no-pack: the padded batch straight through the module ------------------------------


def padding_effect(cfg: RunConfig, packed: dict, unpacked: dict) -> list[PaddingRow]:
    """How far the unpacked run's h_n and output at each last real step are from the packed run's.

    Rows, in order: the last layer's h_n slices, the output at each sequence's last real
    step, then the lower layers' h_n slices; within each, forward first, sequence by sequence.
    """
    assert cfg.lengths is not None, "padding_effect needs lengths"
    D, H_out, lengths = cfg.D, cfg.H_out, cfg.lengths
    directions = ("forward", "backward")[:D]
    h_p, h_u = _numpy(packed["h_n"]), _numpy(unpacked["h_n"])  # (D*num_layers, N, H_out)
    out_p = from_user_layout(cfg, _numpy(packed["output"]))  # (L, N, D*H_out)
    out_u = from_user_layout(cfg, _numpy(unpacked["output"]))

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.max(np.abs(a.astype(np.float64) - b)))

    def h_rows(layer: int) -> list[PaddingRow]:
        return [
            PaddingRow(n, lengths[n], name, f"h_n[{layer * D + d}]", diff(h_u[layer * D + d, n], h_p[layer * D + d, n]))
            for d, name in enumerate(directions)
            for n in range(cfg.N)
        ]

    rows = h_rows(cfg.num_layers - 1)
    for d, name in enumerate(directions):
        feats = slice(d * H_out, (d + 1) * H_out)
        for n in range(cfg.N):
            t = lengths[n] - 1  # the last real step
            moved = diff(out_u[t, n, feats], out_p[t, n, feats])  # (H_out,) slices
            rows.append(PaddingRow(n, lengths[n], name, "output at last real step", moved))
    for layer in range(cfg.num_layers - 1):
        rows += h_rows(layer)
    return rows
