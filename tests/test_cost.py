"""--show cost: parameters, multiply-accumulates, FLOPs and kept activations.

The multiply-accumulates are counted independently: an unrolled torch loop of the cell's
documented equations, run on nn.RNN/LSTM/GRU's own weights, under
torch.utils.flop_counter.FlopCounterMode (which counts every mm/addmm: 2 FLOPs per
multiply-add). The loop's output is checked against the module's, so the products it counts
are the ones the layer needs, no more, no fewer. Other expected values are worked by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rnn_cli.core.config import RunConfig
from rnn_cli.core.cost import cost

ALL = [
    # (scenario, RunConfig keyword arguments)
    ("rnn", dict(cell="rnn")),
    ("rnn_relu_nobias", dict(cell="rnn", nonlinearity="relu", bias=False)),
    ("lstm", dict(cell="lstm")),
    ("gru", dict(cell="gru")),
    ("lstm_bidirectional", dict(cell="lstm", bidirectional=True)),
    ("gru_stacked", dict(cell="gru", num_layers=3)),
    ("rnn_stacked_bidirectional", dict(cell="rnn", num_layers=2, bidirectional=True)),
    ("lstm_proj", dict(cell="lstm", proj_size=2)),
    ("lstm_proj_stacked_bidirectional", dict(cell="lstm", proj_size=3, num_layers=2, bidirectional=True)),
    ("gru_packed", dict(cell="gru", batch=4, lengths=(5, 2, 4, 1))),
    ("lstm_packed_bidirectional", dict(cell="lstm", batch=3, lengths=(3, 5, 1), bidirectional=True, num_layers=2)),
    ("rnn_packed_stacked", dict(cell="rnn", batch=3, lengths=(4, 4, 2), num_layers=2)),
    ("gru_no_pack", dict(cell="gru", batch=3, lengths=(5, 2, 1), pack=False, bidirectional=True)),
    ("lstm_unbatched", dict(cell="lstm", batch=None, num_layers=2)),
    ("rnn_unbatched_bidirectional", dict(cell="rnn", batch=None, bidirectional=True)),
    ("gru_batch_first", dict(cell="gru", batch_first=True, batch=2, bidirectional=True)),
    ("lstm_batch_first_packed_proj", dict(cell="lstm", batch_first=True, batch=3, lengths=(2, 5, 3), proj_size=2)),
]
BASE = dict(input_size=3, hidden_size=5, seq_len=5, batch=2)


def make_cfg(**kw) -> RunConfig:
    kw = {**BASE, **kw}
    if kw["cell"] != "rnn":
        kw.setdefault("nonlinearity", None)
    return RunConfig(**kw)


def _cell(cell, x, state, w, relu):
    """One step of PyTorch's documented equations; w = (W_ih, W_hh, b_ih, b_hh, W_hr)."""
    W_ih, W_hh, b_ih, b_hh, W_hr = w
    if cell == "rnn":
        (h,) = state
        a = F.linear(x, W_ih, b_ih) + F.linear(h, W_hh, b_hh)
        return (torch.relu(a) if relu else torch.tanh(a),)
    if cell == "lstm":
        h, c = state
        i, f, g, o = (F.linear(x, W_ih, b_ih) + F.linear(h, W_hh, b_hh)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if W_hr is None else F.linear(h, W_hr), c)
    (h,) = state
    xr, xz, xn = F.linear(x, W_ih, b_ih).chunk(3, dim=1)
    hr, hz, hn = F.linear(h, W_hh, b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return ((1 - z) * n + z * h,)


def unrolled(module, x, lengths, pack):
    """The module's forward as a loop over steps, layers and directions, computing at step t
    only the sequences still running (packed) or all of them (no lengths, --no-pack).
    x: (L, N, H_in) time-major. Returns output (L, N, D*H_out), zero where padded."""
    L, N, _ = x.shape
    D = 2 if module.bidirectional else 1
    lengths = list(lengths) if lengths is not None and pack else [L] * N
    cell = {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}[type(module).__name__]
    relu = getattr(module, "nonlinearity", "tanh") == "relu"
    H, H_out = module.hidden_size, module.proj_size or module.hidden_size
    layer_in = x
    for k in range(module.num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            w = tuple(getattr(module, n + sfx, None) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"))
            h = torch.zeros(N, H_out, dtype=x.dtype)
            c = torch.zeros(N, H, dtype=x.dtype)
            out = torch.zeros(L, N, H_out, dtype=x.dtype)
            for t in (range(L - 1, -1, -1) if d else range(L)):
                run = torch.tensor([n for n in range(N) if lengths[n] > t], dtype=torch.long)
                if len(run) == 0:
                    continue
                state = (h[run], c[run]) if cell == "lstm" else (h[run],)
                new = _cell(cell, layer_in[t, run], state, w, relu)
                h = h.index_copy(0, run, new[0])
                if cell == "lstm":
                    c = c.index_copy(0, run, new[1])
                out[t, run] = new[0]
            outs.append(out)
        layer_in = torch.cat(outs, dim=2)
    return layer_in


def counted_macs(cfg: RunConfig) -> tuple[int, torch.Tensor, torch.Tensor]:
    """(multiply-accumulates FlopCounterMode counts in the unrolled loop, its output, the
    module's output), for cfg's flags turned into nn.RNN/LSTM/GRU arguments by hand."""
    torch.manual_seed(0)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cfg.cell]
    kw = dict(num_layers=cfg.num_layers, bias=cfg.bias, bidirectional=cfg.bidirectional, batch_first=cfg.batch_first)
    if cfg.cell == "rnn":
        kw["nonlinearity"] = cfg.nonlinearity
    if cfg.proj_size:
        kw["proj_size"] = cfg.proj_size
    module = cls(cfg.input_size, cfg.hidden_size, **kw).double()
    N = 1 if cfg.batch is None else cfg.batch
    x = torch.randn(cfg.seq_len, N, cfg.input_size, dtype=torch.float64)  # time-major
    with torch.no_grad():
        user_x = x[:, 0] if cfg.batch is None else (x.transpose(0, 1) if cfg.batch_first else x)
        if cfg.lengths is not None and cfg.pack:
            packed = torch.nn.utils.rnn.pack_padded_sequence(user_x, torch.tensor(cfg.lengths), batch_first=cfg.batch_first, enforce_sorted=False)
            ref, _ = torch.nn.utils.rnn.pad_packed_sequence(module(packed)[0], batch_first=cfg.batch_first, total_length=cfg.seq_len)
        else:
            ref = module(user_x)[0]
        ref = ref.unsqueeze(1) if cfg.batch is None else (ref.transpose(0, 1) if cfg.batch_first else ref)
        with FlopCounterMode(display=False) as counter:
            got = unrolled(module, x, cfg.lengths, cfg.pack)
    return counter.get_total_flops() // 2, got, ref


@pytest.mark.parametrize("scenario, kw", ALL, ids=[s for s, _ in ALL])
def test_macs_equal_flopcountermode_on_an_unrolled_loop(scenario, kw):
    cfg = make_cfg(**kw)
    macs, got, ref = counted_macs(cfg)
    torch.testing.assert_close(got, ref)  # the loop is the layer's forward
    assert cost(cfg).total.macs == macs


def test_gru_packed_hand_formula_from_the_cli():
    """The issue's example: 6 sequences of lengths 7,5,5,2,1,1 are 21 real steps (not 6*L)."""
    cmd = [sys.executable, "-m", "rnn_cli", "torch", "--cell", "gru", "--lengths", "7,5,5,2,1,1",
           "--hidden-size", "32", "--input-size", "16", "--show", "cost", "--json"]
    doc = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    steps = 7 + 5 + 5 + 2 + 1 + 1  # = 21
    # GRU: 3 gates; input product 3*32 x 16, recurrent 3*32 x 32; one layer, one direction
    assert doc["cost"]["total"]["macs"] == steps * (3 * 32 * 16 + 3 * 32 * 32) == 21 * 4608
    # element-wise per step: 3*32 product sums + 6*32 bias adds + 3*32 activations + 5*32 update
    assert doc["cost"]["total"]["flops"] == 2 * 21 * 4608 + 21 * (3 + 6 + 3 + 5) * 32
    assert doc["cost"]["sequence_steps"] == 21


def test_lstm_projection_is_counted():
    """lstm, 2 layers, bidirectional, proj_size 4, H_in 5, H_cell 8, N 1, L 10 (defaults):
    layer 0 per step: 4*8*5 + 4*8*4 + 8*4 = 160 + 128 + 32; layer 1 reads D*H_out = 8:
    4*8*8 + 4*8*4 + 8*4 = 256 + 128 + 32."""
    from tests.test_screen import invoke, ok

    doc = json.loads(ok(invoke("torch", "--cell", "lstm", "--layers", "2", "--bidirectional", "--proj-size", "4", "--json")))
    assert [p["macs"] for p in doc["cost"]["per_direction"]] == [10 * 320, 10 * 320, 10 * 416, 10 * 416]
    assert doc["cost"]["total"]["macs"] == 2 * 10 * (320 + 416)


def test_parameters_split_matches_torch_per_layer_and_direction():
    cfg = make_cfg(cell="lstm", num_layers=2, bidirectional=True, proj_size=2)
    module = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
    per = {}
    for name, p in module.named_parameters():
        key = name.split("_", 2)[2]  # l0, l0_reverse, ...
        per[key] = per.get(key, 0) + p.numel()
    assert [p.params for p in cost(cfg).parts] == [per["l0"], per["l0_reverse"], per["l1"], per["l1_reverse"]]
    assert cost(cfg).total.param_bytes == 4 * sum(per.values())
    assert cost(RunConfig(dtype="float64")).total.param_bytes == 8 * (8 * 5 + 8 * 8 + 16)


@pytest.mark.parametrize(
    "kw, per_step",
    [
        # tanh(W_ih x + b_ih + W_hh h + b_hh): 1 sum, 2 bias adds, 1 tanh per unit
        (dict(cell="rnn"), 4 * 5),
        (dict(cell="rnn", bias=False), 2 * 5),
        # 4 gate sums, 8 bias adds, 3 sigmoid + 1 tanh, c' = f*c + i*g (3), o * tanh(c') (2)
        (dict(cell="lstm"), (4 + 8 + 4 + 3 + 2) * 5),
        # 3 sums, 6 bias adds, 2 sigmoid + 1 tanh, r*(.) 1, (1-z)*n + z*h 4
        (dict(cell="gru"), (3 + 6 + 3 + 1 + 4) * 5),
    ],
)
def test_elementwise_hand_count(kw, per_step):
    cfg = make_cfg(**kw)
    c = cost(cfg)
    S = 2 * 5  # N * L
    assert c.elementwise_per_step == per_step
    assert c.total.flops == 2 * c.total.macs + S * per_step


@pytest.mark.parametrize(
    "kw, elements",
    [
        # per step x_t 3 + h_t 5 (act' from h_t), 10 steps; h_0 2*5
        (dict(cell="rnn"), 10 * (3 + 5) + 2 * 5),
        # x_t 3, h_t 5, i f g o c_t tanh(c_t) 6*5; h_0 and c_0 2*(5+5)
        (dict(cell="lstm"), 10 * (3 + 5 + 30) + 2 * 10),
        # with proj_size 2: h_t is 2 wide, plus o*tanh(c_t) 5 before the projection; h_0 2*2, c_0 2*5
        (dict(cell="lstm", proj_size=2), 10 * (3 + 2 + 35) + 2 * (2 + 5)),
        # x_t, h_t, r z n, W_hn h + b_hn
        (dict(cell="gru", batch=3, lengths=(5, 1, 2)), 8 * (3 + 5 + 20) + 3 * 5),
    ],
)
def test_activation_bytes_hand_count(kw, elements):
    assert cost(make_cfg(**kw)).total.activation_bytes == 4 * elements


# ---- what the commands show and write ---------------------------------------------------------

from tests.test_screen import invoke, ok  # noqa: E402  (the plain 80-column CliRunner of the screen tests)

# Defaults: rnn, H_in 5, H 8, N 1, L 10. Per step 8*5 + 8*8 = 104 products; params 104 + 16 biases.
DEFAULT_MACS, DEFAULT_PARAMS = 10 * 104, 120


@pytest.mark.parametrize("command", ["manual", "torch", "compare"])
def test_every_json_document_has_the_cost(command):
    doc = json.loads(ok(invoke(command, "--json")))  # no --show: the cost is always there
    c = doc["cost"]
    assert c["total"]["macs"] == DEFAULT_MACS
    assert c["total"]["params"] == DEFAULT_PARAMS == doc["num_parameters"]
    assert c["total"]["param_bytes"] == 4 * DEFAULT_PARAMS
    assert [(p["layer"], p["direction"]) for p in c["per_direction"]] == [(0, "forward")]
    assert c["grad_saved_bytes"] is None


def test_manual_grad_measures_exactly_what_the_rnn_count_says():
    """numpy BPTT of an RNN keeps x_t (5 values) for 10 steps and h_0..h_10 (8 values each):
    (10*5 + 11*8) * 4 bytes = 552, measured on its caches and counted by the formula."""
    doc = json.loads(ok(invoke("manual", "--grad", "--json")))
    assert doc["cost"]["grad_saved_bytes"] == 552 == doc["cost"]["total"]["activation_bytes"]


def test_torch_grad_reports_autograds_saved_bytes():
    doc = json.loads(ok(invoke("torch", "--grad", "--cell", "gru", "--json")))
    assert doc["cost"]["grad_saved_bytes"] > 0
    assert "autograd" in doc["cost"]["grad_saved_bytes_source"]
    # torch's CPU tanh RNN (torch 2.13) saves the input and every h_t, as counted by hand above:
    # 552 bytes; the loss's upstream gradients (10*8*4 = 320 bytes more) are not the layer's.
    doc = json.loads(ok(invoke("torch", "--grad", "--json")))
    assert doc["cost"]["grad_saved_bytes"] == 552


def test_views_show_the_count_the_split_and_the_cost():
    # 2 layers, bidirectional: layer 0 per direction 8*5 + 8*8 + 16 = 120, layer 1 8*16 + 8*8 + 16 = 208
    out = ok(invoke("torch", "--layers", "2", "--bidirectional"))
    assert "; 656 parameters" in out.splitlines()[0]
    assert "Cost of one forward" not in out
    out = ok(invoke("torch", "--layers", "2", "--bidirectional", "--show", "params,cost"))
    split = out.split("Parameters per layer and direction", 1)[1]
    assert [line.split()[:3] for line in split.splitlines()[3:7]] == [
        ["0", "forward", "120"], ["0", "backward", "120"], ["1", "forward", "208"], ["1", "backward", "208"]]
    cost_rows = out.split("Cost of one forward", 1)[1].splitlines()
    # MACs: layer 0 10*104, layer 1 10*(8*16 + 8*8) = 1920; total 2*(1040 + 1920) = 5920
    assert ["total", "656", "5,920"] == next(r.split()[:3] for r in cost_rows if r.split()[:1] == ["total"])
    compare = ok(invoke("compare", "--cell", "lstm"))
    assert "480 parameters" in compare.splitlines()[1]  # 32*5 + 32*8 + 64


def test_counters_md_shows_the_current_count():
    """benchmarks/COUNTERS.md is generated by benchmarks/counters.py: its rnn-cli row must be
    what rnn_cli.core.cost says now for the same layers (rerun the script after changing a rule)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "counters.py"
    spec = importlib.util.spec_from_file_location("counters", path)
    counters = importlib.util.module_from_spec(spec)
    sys.modules["counters"] = counters  # its dataclass looks its module up there
    try:
        spec.loader.exec_module(counters)
    finally:
        del sys.modules["counters"]
    row = next(line for line in path.with_name("COUNTERS.md").read_text().splitlines() if line.startswith("| **rnn-cli**"))
    cells = [c.strip() for c in row.strip("| ").split("|")]
    assert cells[2:] == [f"{cost(case.cfg).total.macs:,}" for case in counters.CASES]
