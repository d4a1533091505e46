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


def _line_width(pieces: list[Piece]) -> int:
    return sum(_w(t) for t, _ in pieces)


class _Grid:
    """The full diagram's columns: stage | direction | its output | (join into the
    concatenation) | final-state slots, and the lines drawn on them."""

    def __init__(self, cfg: RunConfig, g: Glyphs, plain: bool) -> None:
        self.cfg, self.g, self.f, self.D = cfg, g, flow_of(cfg), cfg.D
        self.packed = self.f.packed_in is not None
        self.lines = _Lines(plain)
        stages = ["input", "output", f"layer {cfg.num_layers - 1}"] + (["packed"] if self.packed else [])
        self.stage_w = max(len(s) for s in stages)
        self.directions = [(g.forward, "forward", STYLE["forward"]), (g.backward, "backward", STYLE["backward"])][: self.D]
        self.dir_w = max(_w(f"{a} {n}") for a, n, _ in self.directions)
        self.head_out = ("each direction" if self.D == 2 else "layer output") + (" (.data)" if self.packed else "")
        self.top_join, self.bottom_join = f" {g.join_top}", f" {g.join_bottom} concat "
        self.col_dir = 2 + self.stage_w + len(GAP)  # where a stage's content starts
        self.col_shape = self.col_dir + self.dir_w + len(GAP)
        join_end = self.col_shape + _w(self.f.per_direction)
        join_end += _w(self.bottom_join) + _w(self.f.concat) if self.D == 2 else 0
        self.col_state = max(join_end, self.col_shape + _w(self.head_out)) + len(GAP)

    @staticmethod
    def at(col: int, used: int) -> Piece:
        """Spaces from `used` to column `col` (at least one after text)."""
        return (" " * max(col - used, 1 if used else 0), "")

    def stage(self, name: str) -> Piece:
        return ("  " + name.ljust(self.stage_w) + GAP, STYLE["stage"])

    def down(self, note: str = "") -> None:
        self.lines.add(("    " + self.g.down, STYLE["line"]), ((" " + note) if note else "", STYLE["note"]))

    def packed_line(self, data: str | None) -> None:
        self.lines.add(self.stage("packed"), ("PackedSequence.data ", STYLE["note"]), (data, STYLE["shape"]),
                       (f", batch_sizes {self.f.batch_sizes}", STYLE["note"]))

    def head(self) -> None:
        self.lines.add(
            (TITLE, STYLE["title"]),
            self.at(self.col_shape, len(TITLE)),
            (self.head_out, STYLE["head"]),
            self.at(self.col_state, self.col_shape + _w(self.head_out)),
            ("final state", STYLE["head"]),
        )

    def input(self) -> None:
        """The input, and the packing step."""
        self.lines.add(self.stage("input"), (self.f.input, STYLE["shape"]))
        if self.packed:
            lengths = _brief_list(list(self.cfg.lengths or ()))
            self.lines.add(("    " + self.g.down, STYLE["line"]), (f" pack_padded_sequence(lengths={lengths})", STYLE["note"]))
            self.packed_line(self.f.packed_in)
        self.down(f"{self.cfg.input_size} features (H_in)")

    def layer(self, layer: int) -> None:
        """One line per direction: its output, the join into the concatenation, its state slots."""
        for d, (arrow, name, style) in enumerate(self.directions):
            pieces: list[Piece] = [self.stage(f"layer {layer}") if d == 0 else (" " * self.col_dir, "")]
            pieces.append((f"{arrow} {name}".ljust(self.dir_w) + GAP, style))
            pieces.append((self.f.per_direction, STYLE["shape"]))
            if self.D == 2 and d == 0:
                pieces.append((self.top_join, STYLE["line"]))
            elif self.D == 2:
                pieces += [(self.bottom_join, STYLE["line"]), (self.f.concat, STYLE["shape"])]
            pieces.append(self.at(self.col_state, _line_width(pieces)))
            pieces.append(("  ".join(state_slots(self.cfg, layer, d)), STYLE["state"]))
            self.lines.add(*pieces)
        if layer < self.cfg.num_layers - 1:
            self.down(f"{self.D * self.cfg.H_out} features (D*H_out)")

    def output(self, width: int) -> None:
        """The output, the unpacking step, and the final states under their slots when they fit."""
        self.down()
        if self.packed:
            self.packed_line(self.f.packed_out)
            self.down(_unpack(self.cfg))
        pieces = [self.stage("output"), (self.f.output, STYLE["shape"])]
        states = _states(self.f)
        if self.col_state + _line_width(states) <= width:
            pieces.append(self.at(self.col_state, _line_width(pieces)))
        else:
            pieces.append((GAP, ""))
        self.lines.add(*pieces, *states)


def _full(cfg: RunConfig, g: Glyphs, plain: bool, width: int) -> _Lines:
    """One line per layer-direction, columns aligned (_Grid)."""
    grid = _Grid(cfg, g, plain)
    grid.head()
    grid.input()
    for layer in range(cfg.num_layers):
        grid.layer(layer)
    grid.output(width)
    return grid.lines


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
