"""Shapes against the PyTorch documentation's formulas (tests/docs_shapes.py).

Every expectation below is computed from those formulas (or from a torch module built
here, independently of rnn_cli), never from RunConfig.shapes() itself. Named scenarios
here; tests/test_properties.py draws random configurations against the same formulas.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from rnn_cli.core import manual
from rnn_cli.core import torch_run
from rnn_cli.core.config import RunConfig
from docs_shapes import documented_shapes

CELL_VARIANTS = {  # id -> (cell, proj_size)
    "rnn": ("rnn", 0),
    "lstm": ("lstm", 0),
    "lstm_proj": ("lstm", 2),
    "gru": ("gru", 0),
}
TORCH_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
LAYOUTS = ("time_major", "batch_first", "unbatched")

H_IN, H_CELL, L, N = 3, 4, 5, 2


def make_cfg(cell: str, proj_size: int = 0, **kwargs) -> RunConfig:
    kwargs.setdefault("input_size", H_IN)
    kwargs.setdefault("hidden_size", H_CELL)
    kwargs.setdefault("seq_len", L)
    # float64 keeps torch's CPU LSTM off oneDNN, whose per-shape set-up costs ~0.1-1 s a call;
    # shapes do not depend on the dtype (the float32 path is exercised by the examples below
    # and by the numerics tests).
    kwargs.setdefault("dtype", "float64")
    return RunConfig(cell=cell, proj_size=proj_size, **kwargs)


def fresh_module(cfg: RunConfig) -> nn.Module:
    """A torch module built here from the config's fields, not through rnn_cli.core.torch_run."""
    kwargs = dict(
        num_layers=cfg.num_layers, bias=cfg.bias, batch_first=cfg.batch_first, bidirectional=cfg.bidirectional
    )
    if cfg.cell == "rnn":
        kwargs["nonlinearity"] = cfg.nonlinearity
    if cfg.proj_size:
        kwargs["proj_size"] = cfg.proj_size
    return TORCH_CLASSES[cfg.cell](cfg.input_size, cfg.hidden_size, **kwargs, dtype=torch.float64)


def direction_id(bidir: bool) -> str:
    return "bidirectional" if bidir else "unidirectional"


def result_shapes(result) -> dict[str, tuple[int, ...]]:
    return {name: tuple(a.shape) for name, a in result.tensors.items() if name != "batch_sizes"}


# ---- the matrix: cell x num_layers x bidirectional x layout ------------------------------

SHAPE_MATRIX = [  # every cell variant, layer count, direction and layout at least once
    pytest.param(variant, layers, bidir, layout, id=f"{variant}-{layers}layers-{direction_id(bidir)}-{layout}")
    for variant, layers, bidir, layout in [
        ("rnn", 1, False, "time_major"),
        ("rnn", 2, True, "batch_first"),
        ("rnn", 3, True, "unbatched"),
        ("lstm", 1, True, "time_major"),
        ("lstm", 2, False, "unbatched"),
        ("lstm_proj", 2, True, "time_major"),
        ("lstm_proj", 3, False, "batch_first"),
        ("lstm_proj", 1, True, "unbatched"),
        ("gru", 2, True, "time_major"),
        ("gru", 1, False, "batch_first"),
        ("gru", 3, True, "unbatched"),
    ]
]


def matrix_cfg(variant: str, layers: int, bidir: bool, layout: str) -> RunConfig:
    cell, proj = CELL_VARIANTS[variant]
    return make_cfg(
        cell,
        proj,
        num_layers=layers,
        bidirectional=bidir,
        batch_first=layout == "batch_first",
        batch=None if layout == "unbatched" else N,
    )


@pytest.mark.parametrize("variant, layers, bidir, layout", SHAPE_MATRIX)
def test_config_shapes_match_doc_formulas(variant, layers, bidir, layout):
    cfg = matrix_cfg(variant, layers, bidir, layout)
    assert cfg.shapes() == documented_shapes(cfg)


@pytest.mark.parametrize("variant, layers, bidir, layout", SHAPE_MATRIX)
def test_run_tensors_match_doc_formulas(variant, layers, bidir, layout):
    cfg = matrix_cfg(variant, layers, bidir, layout)
    expected = documented_shapes(cfg)
    D, H_out = (2 if bidir else 1), CELL_VARIANTS[variant][1] or H_CELL
    for result in (manual.run(cfg), torch_run.run(cfg)):
        assert result_shapes(result) == expected, result.implementation
        assert result.shapes() == expected, result.implementation
        # lower layers' outputs are kept time-major (L, N, D*H_out) for the h_n sources
        assert [a.shape for a in result.layer_outputs] == [(L, cfg.N, D * H_out)] * (layers - 1)


@pytest.mark.parametrize("variant, layers, bidir, layout", SHAPE_MATRIX)
def test_fresh_torch_module_agrees_with_doc_formulas(variant, layers, bidir, layout):
    """The formulas above are torch's own: a module built here on input of the documented
    shape returns exactly the shapes the formulas (and RunConfig) give."""
    cfg = matrix_cfg(variant, layers, bidir, layout)
    expected = documented_shapes(cfg)
    module = fresh_module(cfg)
    with torch.no_grad():
        output, state = module(torch.randn(expected["input"], dtype=torch.float64))
    got = {"output": tuple(output.shape)}
    if cfg.cell == "lstm":
        got["h_n"], got["c_n"] = tuple(state[0].shape), tuple(state[1].shape)
    else:
        got["h_n"] = tuple(state.shape)
    assert got == {k: expected[k] for k in got}
    assert {k: cfg.shapes()[k] for k in got} == got


# ---- packed sequences ---------------------------------------------------------------------

PACKED = {  # id -> (lengths, expected batch_sizes, by hand: sequences still running at each step)
    "packed_sorted": ((5, 3, 2), [3, 3, 2, 1, 1]),
    "packed_unsorted": ((2, 5, 3), [3, 3, 2, 1, 1]),
    "packed_short": ((4, 1, 2), [3, 2, 1, 1]),  # max(lengths) < seq_len
    "packed_all_ones": ((1, 1, 1), [3]),
}

PACKED_MATRIX = [
    pytest.param(
        variant, bidir, bf, lengths_id,
        id=f"{variant}-2layers-{direction_id(bidir)}-{'batch_first' if bf else 'time_major'}-{lengths_id}",
    )
    for variant, bidir, bf, lengths_id in itertools.product(CELL_VARIANTS, (False, True), (False, True), PACKED)
]


@pytest.mark.parametrize("variant, bidir, bf, lengths_id", PACKED_MATRIX)
def test_packed_shapes_and_batch_sizes(variant, bidir, bf, lengths_id):
    cell, proj = CELL_VARIANTS[variant]
    lengths, batch_sizes = PACKED[lengths_id]
    cfg = make_cfg(cell, proj, num_layers=2, bidirectional=bidir, batch_first=bf, batch=3, lengths=lengths)
    expected = documented_shapes(cfg)
    assert cfg.shapes() == expected
    assert cfg.batch_sizes() == batch_sizes
    for result in (manual.run(cfg, keep_layers=False), torch_run.run(cfg, keep_layers=False)):
        assert result.shapes() == expected, result.implementation
        assert result.packed_data_shape == (sum(lengths), cfg.D * cfg.H_out), result.implementation
        assert result.tensors["batch_sizes"].tolist() == batch_sizes, result.implementation


def test_packed_example_of_issue_4():
    """`rnn-cli torch --lengths 5,2 --batch 2 --seq-len 5`: packed data (7, 8), batch_sizes [2, 2, 1, 1, 1]."""
    cfg = RunConfig(lengths=(5, 2), batch=2, seq_len=5)
    result = torch_run.run(cfg)
    assert result.packed_data_shape == (7, 8)
    assert result.tensors["batch_sizes"].tolist() == [2, 2, 1, 1, 1]
    assert result.shapes()["output"] == (5, 2, 8)  # padded back to seq_len


# ---- parameters -----------------------------------------------------------------------------

PARAM_MATRIX = [
    pytest.param(
        variant, layers, bidir, bias,
        id=f"{variant}-{layers}layers-{direction_id(bidir)}-{'bias' if bias else 'no_bias'}",
    )
    for variant, layers, bidir, bias in itertools.product(CELL_VARIANTS, (1, 2, 3), (False, True), (True, False))
]


@pytest.mark.parametrize("variant, layers, bidir, bias", PARAM_MATRIX)
def test_parameters_match_a_fresh_torch_module(variant, layers, bidir, bias):
    cell, proj = CELL_VARIANTS[variant]
    cfg = make_cfg(cell, proj, num_layers=layers, bidirectional=bidir, bias=bias)
    module = fresh_module(cfg)
    torch_params = [(name, tuple(p.shape)) for name, p in module.named_parameters()]
    assert list(cfg.parameter_shapes().items()) == torch_params  # names, shapes and order
    assert cfg.num_parameters() == sum(p.numel() for p in module.parameters())
    assert sum(a.size for a in manual.run(cfg).params.values()) == cfg.num_parameters()


KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # torch's order within a layer-direction


@pytest.mark.parametrize(
    "variant, layers, bidir, expected_names",
    [
        pytest.param("rnn", 1, False, ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"], id="rnn-1layer"),
        pytest.param(
            "gru",
            2,
            True,
            [f"{kind}_l{k}{sfx}" for k in (0, 1) for sfx in ("", "_reverse") for kind in KINDS],
            id="gru-2layers-bidirectional",
        ),
        pytest.param(
            "lstm_proj",
            1,
            True,
            [f"{kind}_l0{sfx}" for sfx in ("", "_reverse") for kind in KINDS + ("weight_hr",)],
            id="lstm_proj-bidirectional",
        ),
    ],
)
def test_parameter_names_written_out(variant, layers, bidir, expected_names):
    cell, proj = CELL_VARIANTS[variant]
    cfg = make_cfg(cell, proj, num_layers=layers, bidirectional=bidir)
    assert list(cfg.parameter_shapes()) == expected_names
    assert list(manual.run(cfg).params) == expected_names
    assert list(dict(fresh_module(cfg).named_parameters())) == expected_names


def test_parameter_shapes_by_hand_lstm_proj_two_layers():
    """lstm, H_in=5, hidden 8, proj 3, 2 layers, bidirectional: 4 gates x 8 = 32 rows;
    layer 1 reads D*proj = 6 features; weight_hh reads proj = 3; weight_hr (3, 8)."""
    cfg = RunConfig(cell="lstm", nonlinearity=None, input_size=5, hidden_size=8, proj_size=3, num_layers=2, bidirectional=True)
    shapes = cfg.parameter_shapes()
    assert shapes["weight_ih_l0"] == (32, 5)
    assert shapes["weight_ih_l1_reverse"] == (32, 6)
    assert shapes["weight_hh_l1"] == (32, 3)
    assert shapes["bias_ih_l0_reverse"] == (32,)
    assert shapes["weight_hr_l1_reverse"] == (3, 8)
    # per direction: 32*5 + 32*3 + 2*32 + 3*8 (layer 0), 32*6 + 32*3 + 2*32 + 3*8 (layer 1)
    assert cfg.num_parameters() == 2 * (32 * 5 + 32 * 3 + 64 + 24) + 2 * (32 * 6 + 32 * 3 + 64 + 24)


# ---- the examples of the tutorial and of the issues ------------------------------------------


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        pytest.param(
            dict(input_size=5, hidden_size=8, batch_first=True, seq_len=10, batch=1),
            {"input": (1, 10, 5), "output": (1, 10, 8), "h_n": (1, 1, 8)},
            id="tutorial_rnn_5_8_batch_first",
        ),
        pytest.param(
            dict(input_size=5, hidden_size=8, batch_first=True, seq_len=10, batch=1, num_layers=2),
            {"input": (1, 10, 5), "output": (1, 10, 8), "h_n": (2, 1, 8)},
            id="tutorial_2_layers",
        ),
        pytest.param(
            dict(input_size=5, hidden_size=8, batch_first=True, seq_len=10, batch=1, num_layers=2, bidirectional=True),
            {"input": (1, 10, 5), "output": (1, 10, 16), "h_n": (4, 1, 8)},
            id="tutorial_2_layers_bidirectional",
        ),
        pytest.param(
            dict(input_size=4, hidden_size=8, seq_len=10, batch=None),
            {"input": (10, 4), "output": (10, 8), "h_n": (1, 8)},
            id="tutorial_numpy_memory_cell",
        ),
        pytest.param(
            dict(num_layers=2, bidirectional=True),
            {"input": (10, 1, 5), "output": (10, 1, 16), "h_n": (4, 1, 8)},
            id="issue_2_torch_layers_2_bidirectional",
        ),
        pytest.param(
            dict(cell="lstm", nonlinearity=None, num_layers=2, bidirectional=True, proj_size=3),
            {"input": (10, 1, 5), "output": (10, 1, 6), "h_n": (4, 1, 3), "c_n": (4, 1, 8)},
            id="issue_3_lstm_proj",
        ),
    ],
)
def test_examples(kwargs, expected):
    cfg = RunConfig(**kwargs)
    assert {k: cfg.shapes()[k] for k in expected} == expected
    for result in (manual.run(cfg), torch_run.run(cfg)):
        assert {k: result.shapes()[k] for k in expected} == expected, result.implementation


@pytest.mark.parametrize(
    "layers, bidir, out_shape, h_shape",
    [
        pytest.param(1, False, (1, 10, 8), (1, 1, 8), id="tutorial_rnn_5_8_batch_first"),
        pytest.param(2, False, (1, 10, 8), (2, 1, 8), id="tutorial_2_layers"),
        pytest.param(2, True, (1, 10, 16), (4, 1, 8), id="tutorial_2_layers_bidirectional"),
    ],
)
def test_tutorial_examples_on_plain_torch(layers, bidir, out_shape, h_shape):
    """The tutorial's own code, run with torch alone: nn.RNN(5, 8, batch_first=True) on (1, 10, 5)."""
    rnn = nn.RNN(5, 8, num_layers=layers, batch_first=True, bidirectional=bidir)
    with torch.no_grad():
        output, h_n = rnn(torch.randn(1, 10, 5))
    assert (tuple(output.shape), tuple(h_n.shape)) == (out_shape, h_shape)
    cfg = RunConfig(input_size=5, hidden_size=8, batch_first=True, num_layers=layers, bidirectional=bidir)
    assert (cfg.shapes()["output"], cfg.shapes()["h_n"]) == (out_shape, h_shape)
