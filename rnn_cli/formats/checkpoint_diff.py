"""Two checkpoints: how their recurrent modules differ, as load_state_dict would fail on
loading A into a module built like B, each difference with the constructor argument that fixes it."""

from __future__ import annotations

from rnn_cli.core import layout
from rnn_cli.core.config import shape_str
from rnn_cli.formats.recurrent import RecurrentModule, constructor_line


def compare_checkpoints(a, b) -> list[str]:
    """Differences between the recurrent modules of A and B (checkpoint.Inspection), as load_state_dict would fail on
    loading A into a module built like B, each with the constructor argument that fixes it."""
    out = []
    ma = {r.module.prefix: r.module for r in a.modules}
    mb = {r.module.prefix: r.module for r in b.modules}
    for p in ma.keys() - mb.keys():
        out.append(f"{ma[p].name}: only in checkpoint A ({constructor_line(ma[p])}): Unexpected key(s) when loaded into B's model")
    for p in mb.keys() - ma.keys():
        out.append(f"{mb[p].name}: only in checkpoint B ({constructor_line(mb[p])}): Missing key(s) when loading A")
    for p in [p for p in ma if p in mb]:
        # different constructor arguments, else (same arguments) keys one file lacks
        out += _module_differences(ma[p], mb[p]) or _key_differences(ma[p], mb[p])
    return out


def _key_differences(x: RecurrentModule, y: RecurrentModule) -> list[str]:
    """Keys one module has and the other lacks: strict load_state_dict fails on them."""
    out = []
    if y.params.keys() - x.params.keys():
        missing = ", ".join(sorted(y.params.keys() - x.params.keys()))
        out.append(f"{x.name}: checkpoint A lacks {missing}: Missing key(s) when loaded into B's model")
    if x.params.keys() - y.params.keys():
        missing = ", ".join(sorted(x.params.keys() - y.params.keys()))
        out.append(f"{y.name}: checkpoint B lacks {missing}: Unexpected key(s) when A is loaded into B's model")
    return out


def _module_differences(x: RecurrentModule, y: RecurrentModule) -> list[str]:
    n = x.name
    if x.kind != y.kind:
        return [f"{n}: checkpoint A is an nn.{x.kind}, B an nn.{y.kind} (different gate counts: size mismatch for "
                f"weight_hh): build {constructor_line(x)}"]
    out = []
    layer = None if x.is_cell else 0  # weight_ih, or weight_ih_l0 of a layered module
    first, hh = layout.param_name("weight_ih", layer), layout.param_name("weight_hh", layer)
    if x.input_size != y.input_size:
        out.append(f"{n}: size mismatch for {first}: A has {shape_str(x.params[first].shape)}, B "
                   f"{shape_str(y.params[first].shape)}: input_size={x.input_size}")
    if x.hidden_size != y.hidden_size:
        out.append(f"{n}: size mismatch for {hh}: A has {shape_str(x.params[hh].shape)}, B "
                   f"{shape_str(y.params[hh].shape)}: hidden_size={x.hidden_size}")
    if x.num_layers != y.num_layers:
        more, extra = ("A", y.num_layers) if x.num_layers > y.num_layers else ("B", x.num_layers)
        extra = layout.param_name("weight_ih", extra)  # the first layer the other one lacks
        out.append(f"{n}: checkpoint A has {x.num_layers} layer(s), B {y.num_layers} ({more} has {extra}): num_layers={x.num_layers}")
    if x.bidirectional != y.bidirectional:
        has, lacks = "bidirectional (has weight_ih_l0_reverse)", "not"
        a_is, b_is = (has, lacks) if x.bidirectional else ("not bidirectional", "bidirectional (has weight_ih_l0_reverse)")
        out.append(f"{n}: checkpoint A is {a_is}, B is {b_is}: bidirectional={x.bidirectional}")
    if x.bias != y.bias:
        out.append(f"{n}: checkpoint A has {'biases' if x.bias else 'no biases'}, B {'has biases' if y.bias else 'has none'}: bias={x.bias}")
    if x.proj_size != y.proj_size:
        out.append(f"{n}: checkpoint A has proj_size {x.proj_size}"
                   + (" (weight_hr_l0)" if x.proj_size else "") + f", B {y.proj_size}: proj_size={x.proj_size}")
    return out
