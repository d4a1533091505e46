"""The shape-flow diagram: how a tensor travels through the stack, drawn as rich Text.

    input -> layer 0 (forward ->, backward <-) -> concat (D*H_out) -> layer 1 -> ... -> output

Each layer-direction line names the h_n slot it fills, h_n[layer*D + direction] (and c_n
for LSTM); with --lengths the PackedSequence is part of the flow. Every shape comes from
RunConfig.shapes(), so batch_first and unbatched input read as the user wrote them.

Box-drawing characters and arrows on a terminal, ASCII only when `plain` (piped). Up to
MAX_LAYERS layers are drawn one line per direction; deeper stacks, or a drawing wider
than the console, become a compact list that rich may wrap.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from rnn_cli.core.config import RunConfig, shape_str

MAX_LAYERS = 4  # beyond this the diagram becomes a compact list
TITLE = "Shape flow"
GAP = "  "  # between columns


@dataclass(frozen=True)
class Glyphs:
    down: str  # between stages
    forward: str
    backward: str
    join_top: str  # forward's output goes down into the concatenation...
    join_bottom: str  # ...which the backward line draws
    to: str


UNICODE = Glyphs(down="▼", forward="→", backward="←", join_top="─┐", join_bottom="─┴─▶", to="─▶")
ASCII = Glyphs(down="v", forward="->", backward="<-", join_top="-+", join_bottom="-+->", to="->")

# Styles read on dark and light terminals alike (the terminal's own palette colours).
STYLE = {
    "title": "bold",
    "head": "dim italic",
    "stage": "bold",
    "forward": "cyan",
    "backward": "magenta",
    "shape": "bold",
    "line": "dim",
    "state": "green",
    "note": "dim",
}


def _brief_list(values: list[int], limit: int = 24) -> str:
    """[10, 7, 3], or its ends with an ellipsis when that is longer than `limit`."""
    text = "[" + ", ".join(str(v) for v in values) + "]"
    if len(text) <= limit or len(values) <= 4:
        return text
    return f"[{values[0]}, {values[1]}, ..., {values[-1]}]"


# ---- what the diagram says, independent of how it is drawn ----------------------------------


@dataclass(frozen=True)
class Flow:
    input: str  # shape of the input as given
    per_direction: str  # one direction's output (PackedSequence.data when packed)
    concat: str  # a layer's output, both directions concatenated
    output: str
    h_n: str
    c_n: str | None
    packed_in: str | None  # PackedSequence.data of the input
    packed_out: str | None  # PackedSequence.data of the output
    batch_sizes: str | None


def flow_of(cfg: RunConfig) -> Flow:
    s = cfg.shapes()
    packed = cfg.packed
    seq = s["packed_data"] if packed else s["output"]  # (..., D*H_out)
    return Flow(
        input=shape_str(s["input"]),
        per_direction=shape_str(seq[:-1] + (cfg.H_out,)),
        concat=shape_str(seq),
        output=shape_str(s["output"]),
        h_n=shape_str(s["h_n"]),
        c_n=shape_str(s["c_n"]) if "c_n" in s else None,
        packed_in=shape_str(s["packed_data"][:-1] + (cfg.input_size,)) if packed else None,
        packed_out=shape_str(s["packed_data"]) if packed else None,
        batch_sizes=shape_str(s["batch_sizes"]) if packed else None,
    )


def state_slots(cfg: RunConfig, layer: int, direction: int) -> list[str]:
    k = layer * cfg.D + direction
    return [f"h_n[{k}]"] + ([f"c_n[{k}]"] if cfg.has_c else [])


# ---- drawing --------------------------------------------------------------------------------

Piece = tuple[str, str]  # (text, style)


def _w(text: str) -> int:
    return Text(text).cell_len


class _Lines:
    """Lines of (text, style) pieces; styles are dropped when plain."""

    def __init__(self, plain: bool) -> None:
        self.plain = plain
        self.lines: list[list[Piece]] = []

    def add(self, *pieces: Piece) -> None:
        self.lines.append([(t, "" if self.plain else s) for t, s in pieces if t])

    def width(self) -> int:
        return max((_w("".join(t for t, _ in line).rstrip()) for line in self.lines), default=0)

    def text(self) -> Text:
        out = Text(overflow="fold")
        for i, line in enumerate(self.lines):
            if i:
                out.append("\n")
            line = list(line)
            if line:  # no trailing blanks
                t, s = line[-1]
                line[-1] = (t.rstrip(), s)
            for t, s in line:
                out.append(t, style=s or None)
        return out


def _states(f: Flow) -> list[Piece]:
    out: list[Piece] = [("h_n ", STYLE["note"]), (f.h_n, STYLE["shape"])]
    if f.c_n is not None:
        out += [("  c_n ", STYLE["note"]), (f.c_n, STYLE["shape"])]
    return out


def _full(cfg: RunConfig, g: Glyphs, plain: bool, width: int) -> _Lines:
    """One line per layer-direction, columns aligned:

    stage | direction | its output | (join into the concatenation) | final-state slots
    """
    f, D, st = flow_of(cfg), cfg.D, STYLE
    packed = f.packed_in is not None
    lines = _Lines(plain)

    stages = ["input", "output", f"layer {cfg.num_layers - 1}"] + (["packed"] if packed else [])
    stage_w = max(len(s) for s in stages)
    directions = [(g.forward, "forward", st["forward"]), (g.backward, "backward", st["backward"])][:D]
    dir_w = max(_w(f"{a} {n}") for a, n, _ in directions)
    shape_w = _w(f.per_direction)
    head_out = "each direction" if D == 2 else "layer output"
    if packed:
        head_out += " (.data)"
    head_state = "final state"
    top_join, bottom_join = f" {g.join_top}", f" {g.join_bottom} concat "

    col_dir = 2 + stage_w + len(GAP)  # where a stage's content starts
    col_shape = col_dir + dir_w + len(GAP)
    join_end = col_shape + shape_w + (_w(bottom_join) + _w(f.concat) if D == 2 else 0)
    col_state = max(join_end, col_shape + _w(head_out)) + len(GAP)

    def at(col: int, used: int) -> Piece:
        return (" " * max(col - used, 1 if used else 0), "")

    def stage(name: str) -> Piece:
        return ("  " + name.ljust(stage_w) + GAP, st["stage"])

    def down(note: str = "") -> None:
        lines.add(("    " + g.down, st["line"]), ((" " + note) if note else "", st["note"]))

    def line_width(pieces: list[Piece]) -> int:
        return sum(_w(t) for t, _ in pieces)

    lines.add(
        (TITLE, st["title"]),
        at(col_shape, len(TITLE)),
        (head_out, st["head"]),
        at(col_state, col_shape + _w(head_out)),
        (head_state, st["head"]),
    )

    # input, and the packing step
    lines.add(stage("input"), (f.input, st["shape"]))
    if packed:
        lengths = _brief_list(list(cfg.lengths or ()))
        lines.add(("    " + g.down, st["line"]), (f" pack_padded_sequence(lengths={lengths})", st["note"]))
        lines.add(
            stage("packed"),
            ("PackedSequence.data ", st["note"]),
            (f.packed_in, st["shape"]),
            (f", batch_sizes {f.batch_sizes}", st["note"]),
        )
    down(f"{cfg.input_size} features (H_in)")

    # the layers: one line per direction
    for layer in range(cfg.num_layers):
        for d, (arrow, name, style) in enumerate(directions):
            pieces: list[Piece] = [stage(f"layer {layer}") if d == 0 else (" " * col_dir, "")]
            pieces.append((f"{arrow} {name}".ljust(dir_w) + GAP, style))
            pieces.append((f.per_direction, st["shape"]))
            if D == 2 and d == 0:
                pieces.append((top_join, st["line"]))
            elif D == 2:
                pieces += [(bottom_join, st["line"]), (f.concat, st["shape"])]
            pieces.append(at(col_state, line_width(pieces)))
            pieces.append(("  ".join(state_slots(cfg, layer, d)), st["state"]))
            lines.add(*pieces)
        if layer < cfg.num_layers - 1:
            down(f"{D * cfg.H_out} features (D*H_out)")

    # the output, the unpacking step, and the final states under their slots when they fit
    down()
    if packed:
        lines.add(
            stage("packed"),
            ("PackedSequence.data ", st["note"]),
            (f.packed_out, st["shape"]),
            (f", batch_sizes {f.batch_sizes}", st["note"]),
        )
        down(_unpack(cfg))
    pieces = [stage("output"), (f.output, st["shape"])]
    states = _states(f)
    if col_state + line_width(states) <= width:
        pieces.append(at(col_state, line_width(pieces)))
    else:
        pieces.append((GAP, ""))
    lines.add(*pieces, *states)
    return lines


def _compact(cfg: RunConfig, g: Glyphs, plain: bool, width: int) -> _Lines:
    """A few lines whatever the depth: the shapes every layer shares and the h_n rule."""
    f, D, L, st = flow_of(cfg), cfg.D, cfg.num_layers, STYLE
    lines = _Lines(plain)
    slots = "h_n[i], c_n[i]" if cfg.has_c else "h_n[i]"
    label_w = max(len(f"layers 1-{L - 1}"), len(slots))
    content = " " * (2 + label_w + len(GAP))

    def label(text: str) -> Piece:
        return ("  " + text.ljust(label_w) + GAP, st["stage"])

    def fit(first: list[Piece], rest: list[Piece]) -> None:
        """One line, or two when one would be wider than the console."""
        if sum(_w(t) for t, _ in first + rest) <= width:
            lines.add(*first, *rest)
        else:
            lines.add(*first)
            lines.add((content, ""), (rest[0][0].lstrip(", "), rest[0][1]), *rest[1:])

    lines.add((TITLE, st["title"]), (f"  ({L} layers: compact list)", st["head"]))
    lines.add(label("input"), (f.input, st["shape"]))
    if f.packed_in is not None:
        fit(
            [label("packed"), ("PackedSequence.data ", st["note"]), (f.packed_in, st["shape"])],
            [(f", batch_sizes {f.batch_sizes}", st["note"])],
        )
    every = [label("layer 0" if L == 1 else f"layers 0-{L - 1}")]
    every += [("forward ", st["forward"]), (f.per_direction, st["shape"])]
    if D == 2:
        every += [(" + ", st["line"]), ("backward ", st["backward"]), (f.per_direction, st["shape"])]
        fit(every, [(" = concat ", st["line"]), (f.concat, st["shape"])])
    else:
        lines.add(*every)
    if L == 1:
        lines.add(label("layer 0"), (f"takes {cfg.input_size} features (H_in)", st["note"]))
    else:  # one line where it fits: what layer 0 reads, and what every layer above it reads
        above = "layer 1 takes" if L == 2 else f"layers 1-{L - 1} take"
        fit([label("layer 0"), (f"takes {cfg.input_size} (H_in)", st["note"])],
            [(f", {above} {D * cfg.H_out} (D*H_out)", st["note"])])
    rule = "i = 2*k + d" if D == 2 else "i = k"
    fit(
        [label(slots), (rule, st["state"]), (f": layer k = 0..{L - 1}", st["note"])],
        [(", d = 0 fwd, 1 bwd" if D == 2 else "", st["note"])],
    )
    if f.packed_out is not None:
        fit(
            [label("packed"), ("PackedSequence.data ", st["note"]), (f.packed_out, st["shape"])],
            [(f" {g.to} {_unpack(cfg)}", st["note"])],
        )
    fit([label("output"), (f.output, st["shape"])], [(GAP, ""), *_states(f)])
    return lines


def _unpack(cfg: RunConfig) -> str:
    """The unpacking call: total_length only where L is longer than the longest sequence."""
    if cfg.lengths is not None and cfg.seq_len > max(cfg.lengths):
        return f"pad_packed_sequence(total_length={cfg.seq_len})"
    return "pad_packed_sequence"


def flow_diagram(cfg: RunConfig, plain: bool, width: int = 80) -> Text:
    """The shape-flow diagram of cfg's stack: in full when it has at most MAX_LAYERS layers
    and fits `width` columns, else the compact list."""
    g = ASCII if plain else UNICODE
    if cfg.num_layers <= MAX_LAYERS:
        lines = _full(cfg, g, plain, width)
        if lines.width() <= width:
            return lines.text()
    return _compact(cfg, g, plain, width).text()
