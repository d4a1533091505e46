"""RunConfig: every flag resolved and validated, plus the shapes it implies.

Shape symbols follow torch/nn/modules/rnn.py:
    N      batch size                     L      sequence length
    D      2 if bidirectional else 1      H_in   input_size
    H_cell hidden_size                    H_out  proj_size if proj_size > 0 else hidden_size

This module imports nothing heavy: `--help` and `manual` must start fast.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from rnn_cli.core import layout
from rnn_cli.errors import RnnCliError
from rnn_cli.core.layout import TORCH_CLASS, num_gates, shape_str  # noqa: F401 (re-exported)

CELLS = ("rnn", "lstm", "gru")
NONLINEARITIES = ("tanh", "relu")
DTYPES = ("float32", "float64")
H0_CHOICES = ("zeros", "random")  # what the seeded draw gives h_0 (and c_0); a file's is provenance (sample.Provenance)
ITEMSIZE = {"float32": 4, "float64": 8}

# Gates stacked inside each weight, in PyTorch's order (layout.py spells them).
GATE_NAMES: dict[str, tuple[str, ...]] = {cell: layout.gate_names(cell) for cell in CELLS}
_DEVICE = re.compile(r"cpu|auto|cuda(:[0-9]{1,4})?")


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise RnnCliError(f"{flag} must be a positive integer, got {value}")


@dataclass(frozen=True)
class RunConfig:
    cell: str = "rnn"
    input_size: int = 5  # H_in
    hidden_size: int = 8  # H_cell
    num_layers: int = 1
    bidirectional: bool = False
    batch_first: bool = False
    nonlinearity: str | None = "tanh"  # rnn only; normalised to None for lstm/gru
    bias: bool = True
    proj_size: int = 0  # lstm only
    seq_len: int = 10  # L
    batch: int | None = 1  # N; None means unbatched input
    lengths: tuple[int, ...] | None = None  # one per batch element: packed sequences
    pack: bool = True  # False (--no-pack): the padded batch goes straight through the module
    h0: str = "zeros"  # the draw's h_0 and c_0: zeros or random (where the numbers came from: sample.Provenance)
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"  # as asked: cpu, cuda, cuda:N, auto

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise RnnCliError(f"--cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        _positive("--input-size", self.input_size)
        _positive("--hidden-size", self.hidden_size)
        _positive("--layers", self.num_layers)
        _positive("--seq-len", self.seq_len)
        if self.batch is not None:
            _positive("--batch", self.batch)
        # Gated cells have fixed activations: their nonlinearity is None whatever was passed
        # (the CLI refuses an explicit --nonlinearity with them); an RNN's defaults to tanh.
        if self.cell != "rnn":
            object.__setattr__(self, "nonlinearity", None)
        elif self.nonlinearity is None:
            object.__setattr__(self, "nonlinearity", "tanh")
        elif self.nonlinearity not in NONLINEARITIES:
            raise RnnCliError(f"--nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {self.nonlinearity!r}")
        if self.proj_size < 0:
            raise RnnCliError(f"--proj-size must be 0 or positive, got {self.proj_size}")
        if self.proj_size > 0 and self.cell != "lstm":
            raise RnnCliError(f"--proj-size applies to --cell lstm only, not {self.cell}")
        if self.proj_size >= self.hidden_size and self.proj_size > 0:
            raise RnnCliError(
                f"--proj-size must be smaller than --hidden-size ({self.hidden_size}), got {self.proj_size}"
            )
        if self.h0 not in H0_CHOICES:
            raise RnnCliError(f"--h0 must be one of {', '.join(H0_CHOICES)}, got {self.h0!r}")
        if self.dtype not in DTYPES:
            raise RnnCliError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.seed < 0 or self.seed >= 2**63:
            raise RnnCliError(f"--seed must be between 0 and 2**63-1, got {self.seed}")
        if not _DEVICE.fullmatch(self.device):
            raise RnnCliError(f"--device must be cpu, cuda, cuda:N or auto, got {self.device!r}")
        if self.lengths is not None:
            self._check_lengths(self.lengths)
        elif not self.pack:
            raise RnnCliError("--no-pack needs --lengths: without lengths there is no padding to run through")

    def _check_lengths(self, lengths: tuple[int, ...]) -> None:
        if self.batch is None:
            raise RnnCliError("--lengths needs batched input; it cannot be combined with --unbatched")
        if len(lengths) != self.batch:
            raise RnnCliError(f"--lengths has {len(lengths)} value(s) but --batch is {self.batch}; give one per sequence")
        bad = [n for n in lengths if not 1 <= n <= self.seq_len]
        if bad:
            raise RnnCliError(f"--lengths values must be between 1 and --seq-len ({self.seq_len}), got {bad[0]}")

    # ---- the shape symbols -------------------------------------------------
    @property
    def D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def H_out(self) -> int:
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def unbatched(self) -> bool:
        return self.batch is None

    @property
    def N(self) -> int:
        """Batch size the core works with (1 for unbatched input)."""
        return 1 if self.batch is None else self.batch

    @property
    def packed(self) -> bool:
        """Sequences packed by length (pack_padded_sequence); False with --no-pack."""
        return self.lengths is not None and self.pack

    @property
    def has_trap(self) -> bool:
        """A configuration where the obvious final-state recipe can be wrong (h_n[-1] with two
        directions, output[-1] with padding, ...): the recipes are shown by default."""
        return self.bidirectional or self.num_layers > 1 or self.lengths is not None or self.batch_first

    @property
    def has_c(self) -> bool:
        return self.cell == "lstm"

    @property
    def gates(self) -> int:
        return num_gates(self.cell)

    def layer_input_size(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.D * self.H_out

    # ---- concrete shapes, in the user's layout -----------------------------
    def _seq_shape(self, features: int) -> tuple[int, ...]:
        L = self.seq_len
        if self.unbatched:
            return (L, features)
        return (self.N, L, features) if self.batch_first else (L, self.N, features)

    def _state_shape(self, features: int) -> tuple[int, ...]:
        if self.unbatched:
            return (self.D * self.num_layers, features)
        return (self.D * self.num_layers, self.N, features)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the run produces, name -> shape (in the user's layout)."""
        out = {"input": self._seq_shape(self.input_size), "h_0": self._state_shape(self.H_out)}
        if self.has_c:
            out["c_0"] = self._state_shape(self.hidden_size)
        out["output"] = self._seq_shape(self.D * self.H_out)
        out["h_n"] = self._state_shape(self.H_out)
        if self.has_c:
            out["c_n"] = self._state_shape(self.hidden_size)
        if self.packed:
            out["packed_data"] = (sum(self.lengths), self.D * self.H_out)
            out["batch_sizes"] = (max(self.lengths),)
        return out

    def layouts(self) -> dict[str, str]:
        """Every tensor's layout in the PyTorch docs' symbols."""
        if self.unbatched:
            seq, state = "(L, {})", "(D*num_layers, {})"
        else:
            seq = "(N, L, {})" if self.batch_first else "(L, N, {})"
            state = "(D*num_layers, N, {})"
        out = {"input": seq.format("H_in"), "h_0": state.format("H_out")}
        if self.has_c:
            out["c_0"] = state.format("H_cell")
        out["output"] = seq.format("D*H_out")
        out["h_n"] = state.format("H_out")
        if self.has_c:
            out["c_n"] = state.format("H_cell")
        if self.packed:
            out["packed_data"] = "(sum(lengths), D*H_out)"
            out["batch_sizes"] = "(max(lengths),)"
        return out

    def batch_sizes(self) -> list[int]:
        """PackedSequence.batch_sizes: how many sequences are still running at each step."""
        assert self.lengths is not None
        return [sum(1 for n in self.lengths if n > t) for t in range(max(self.lengths))]

    # ---- parameters ----------------------------------------------------------
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """torch's parameter names and shapes, in torch's own order (_flat_weights_names)."""
        G, H = self.gates, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(self.num_layers):
            for direction in range(self.D):
                name = lambda kind: layout.param_name(kind, layer, direction)  # noqa: E731
                shapes[name("weight_ih")] = (G * H, self.layer_input_size(layer))
                shapes[name("weight_hh")] = (G * H, self.H_out)
                if self.bias:
                    shapes[name("bias_ih")] = (G * H,)
                    shapes[name("bias_hh")] = (G * H,)
                if self.proj_size > 0:
                    shapes[name("weight_hr")] = (self.proj_size, H)
        return shapes

    def num_parameters(self) -> int:
        """Same total as sum(parameter_shapes()), by formula: safe for absurd --layers."""
        G, H, D = self.gates, self.hidden_size, self.D
        inputs = self.input_size + (self.num_layers - 1) * D * self.H_out  # summed over layers
        per_layer = G * H * self.H_out + (2 * G * H if self.bias else 0) + self.proj_size * H
        return D * (G * H * inputs + self.num_layers * per_layer)

    def constructor_kwargs(self) -> dict:
        """The arguments of nn.RNN / LSTM / GRU that differ from their defaults, in the
        order the constructor lists them: what the code view prints and torch builds."""
        kwargs: dict = {"input_size": self.input_size, "hidden_size": self.hidden_size}
        if self.num_layers != 1:
            kwargs["num_layers"] = self.num_layers
        if self.cell == "rnn" and self.nonlinearity != "tanh":
            kwargs["nonlinearity"] = self.nonlinearity
        if not self.bias:
            kwargs["bias"] = False
        if self.batch_first:
            kwargs["batch_first"] = True
        if self.bidirectional:
            kwargs["bidirectional"] = True
        if self.proj_size:
            kwargs["proj_size"] = self.proj_size
        return kwargs

    def to_dict(self) -> dict:
        """Every option resolved, for --json and --save (device is replaced by the one used)."""
        d = asdict(self)
        d["lengths"] = list(self.lengths) if self.lengths is not None else None
        return d


# The human view's --show sections, in the order views.SECTIONS draws them, and those drawn
# when --show is not given. Of these, recipes, padding and grad are computed (runs.Extras.shown)
# and drawn only where they apply (a configuration with a trap, --no-pack, --grad) unless
# --show names them or --json asks for everything.
SECTION_NAMES = ("diagram", "shapes", "sources", "values", "recipes", "padding", "grad", "params", "cost", "code")
DEFAULT_SHOW = frozenset({"diagram", "shapes", "sources", "values", "recipes", "padding", "grad"})
COMPARE_SHOW = frozenset({"diagram"})  # compare's answer is its table; the rest on request


def default_show(command: str) -> frozenset[str]:
    return COMPARE_SHOW if command == "compare" else DEFAULT_SHOW


def parse_show(text: str) -> frozenset[str]:
    """--show's value: comma-separated section names, or `all`. Case-insensitive."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return frozenset(SECTION_NAMES)
    if not names or any(n not in SECTION_NAMES for n in names):
        raise RnnCliError(f"--show takes a comma-separated list of {', '.join(SECTION_NAMES)} (or all), got {text!r}")
    return frozenset(names)


@dataclass(frozen=True)
class View:
    """What the human view draws: the sections named in `show`, in views.SECTIONS' order."""

    show: frozenset[str] | None = None  # None: the default screen (DEFAULT_SHOW)
    precision: int = 4
    batch_index: int = 0
    heatmap: bool = True
    compact: bool = True  # the default screen (no --show, no --json): output cut to a few time steps, the cut stated
    brief: bool = False  # one line per tensor, nothing else

    def shows(self, section: str) -> bool:
        return section in (DEFAULT_SHOW if self.show is None else self.show)

    @property
    def asked(self) -> bool:
        """--show or --json: every section named is drawn, whether or not it applies by default."""
        return not self.compact

    @property
    def values(self) -> bool:
        return self.shows("values")

    @property
    def diagram(self) -> bool:
        return self.shows("diagram")

    @property
    def keep_layers(self) -> bool:
        """Keep lower layers' outputs: the h_n checks of layers below the last need them."""
        return self.shows("values") or self.shows("sources")


# ---- memory: refuse before allocating -----------------------------------------


def _format_bytes(n: int) -> str:
    """1023 B, 1.5 KiB, ..., 999.9 PiB, then 3.55e+31 PiB: exact for any int, even past float range."""
    if n < 1024:
        return f"{int(n)} B"
    for power, unit in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB"), start=1):
        if n < 1024 ** (power + 1) or unit == "PiB":
            from decimal import Decimal  # exact past float's range; imported only for this message

            scaled = Decimal(n) / 1024**power
            return f"{scaled:.1f} {unit}" if scaled < 10_000 else f"{scaled:.2e} {unit}"
    raise AssertionError  # pragma: no cover


def _seq(cfg: RunConfig, features: int) -> int:
    """Elements of one (L, N, features) array."""
    return cfg.seq_len * cfg.N * features


def _sample_elements(cfg: RunConfig) -> int:
    """The seeded draw: parameters, input (L, N, H_in), h_0 and c_0 (D*num_layers, N, .)."""
    states = cfg.D * cfg.num_layers * cfg.N * (cfg.H_out + (cfg.hidden_size if cfg.has_c else 0))
    return cfg.num_parameters() + _seq(cfg, cfg.input_size) + states


def sample_bytes(cfg: RunConfig) -> int:
    """What sample.draw returns, in cfg's dtype: every runner starts from it (their peak_bytes
    count beyond it)."""
    return ITEMSIZE[cfg.dtype] * _sample_elements(cfg)
