"""The bad-input wall, as a table: each named invocation, the exact line it gets on stderr.

Every bad value or combination must end with exit status 2, nothing on stdout, and one
line on stderr, `rnn-cli: error: ...`, naming the option and what is allowed. The
messages below are the interface: scripts and people read them, so a change to one is a
change to this table.

The memory cases run against a fixed 16 GiB of available memory (the check refuses above
80% of it), so their estimates are stable; the arithmetic behind each is in a comment.
"""

from __future__ import annotations

import re
import shlex
import tracemalloc
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import rnn_cli.core.compare
import rnn_cli.core.config
import rnn_cli.core.guard
import rnn_cli.core.manual
import rnn_cli.core.torch_run
from rnn_cli.cli.app import app

GiB = 1024**3
LONG = "a" * 300  # longer than any file name the filesystem allows (255 bytes)
REDUCE = "reduce --hidden-size, --seq-len, --batch or --layers"

CASES = [
    # ---- sizes -------------------------------------------------------------------------
    ("input_size_zero", "manual --input-size 0", "--input-size must be a positive integer, got 0"),
    ("hidden_size_zero", "torch --hidden-size 0", "--hidden-size must be a positive integer, got 0"),
    ("hidden_size_negative", "manual --hidden-size -3", "--hidden-size must be a positive integer, got -3"),
    ("seq_len_zero", "compare --seq-len 0", "--seq-len must be a positive integer, got 0"),
    ("seq_len_negative", "manual --seq-len -1", "--seq-len must be a positive integer, got -1"),
    ("batch_zero", "manual --batch 0", "--batch must be a positive integer, got 0"),
    ("layers_zero", "torch --layers 0", "--layers must be a positive integer, got 0"),
    ("layers_negative", "bench --layers -2", "--layers must be a positive integer, got -2"),
    ("hidden_size_not_an_integer", "manual --hidden-size 8.5",
     "Invalid value for '--hidden-size': '8.5' is not an integer (see 'rnn-cli manual --help')"),
    ("hidden_size_empty", "manual --hidden-size ''",
     "Invalid value for '--hidden-size': '' is not an integer (see 'rnn-cli manual --help')"),
    ("seq_len_words", "torch --seq-len ten",
     "Invalid value for '--seq-len': 'ten' is not an integer (see 'rnn-cli torch --help')"),
    ("option_without_value", "manual --hidden-size", "Option '--hidden-size' requires an argument."),
    # ---- batch and lengths -------------------------------------------------------------
    ("batch_with_unbatched", "manual --batch 2 --unbatched",
     "--batch and --unbatched conflict: unbatched input has no batch dimension"),
    ("lengths_count_differs", "manual --batch 3 --lengths 5,2",
     "--lengths has 2 value(s) but --batch is 3; give one per sequence"),
    ("no_pack_without_lengths", "manual --no-pack",
     "--no-pack needs --lengths: without lengths there is no padding to run through"),
    ("c0_without_h0_file", "manual --cell lstm --c0 c.npy",
     "--c0 needs --h0 PATH.npy too: the initial state comes from files or from --h0 zeros|random"),
    ("lengths_zero", "manual --batch 2 --lengths 0,2",
     "--lengths values must be between 1 and --seq-len (2), got 0"),  # L = max(lengths)
    ("lengths_above_seq_len", "compare --batch 2 --seq-len 5 --lengths 5,6",
     "--lengths values must be between 1 and --seq-len (5), got 6"),
    ("lengths_negative", "manual --batch 2 --lengths 3,-1",
     "--lengths values must be between 1 and --seq-len (3), got -1"),
    ("lengths_not_integers", "manual --batch 2 --lengths 2.5,3",
     "--lengths must be comma-separated integers such as 10,7,3, got '2.5,3'"),
    ("lengths_empty_item", "manual --batch 3 --lengths 3,,2",
     "--lengths must be comma-separated integers such as 10,7,3, got '3,,2'"),
    ("lengths_with_unbatched", "manual --unbatched --lengths 3",
     "--lengths needs batched input; it cannot be combined with --unbatched"),
    # ---- cells -------------------------------------------------------------------------
    ("proj_size_with_rnn", "manual --proj-size 2", "--proj-size applies to --cell lstm only, not rnn"),
    ("proj_size_with_gru", "torch --cell gru --proj-size 2", "--proj-size applies to --cell lstm only, not gru"),
    ("proj_size_equals_hidden", "manual --cell lstm --proj-size 8",
     "--proj-size must be smaller than --hidden-size (8), got 8"),
    ("proj_size_above_hidden", "compare --cell lstm --hidden-size 4 --proj-size 9",
     "--proj-size must be smaller than --hidden-size (4), got 9"),
    ("proj_size_negative", "manual --cell lstm --proj-size -1", "--proj-size must be 0 or positive, got -1"),
    ("nonlinearity_with_lstm", "manual --cell lstm --nonlinearity relu",
     "--nonlinearity applies to --cell rnn only; lstm has fixed activations"),
    ("nonlinearity_with_gru", "torch --cell gru --nonlinearity tanh",
     "--nonlinearity applies to --cell rnn only; gru has fixed activations"),
    ("unknown_cell", "manual --cell transformer",
     "Invalid value for '--cell': 'transformer' is not one of 'rnn', 'lstm', 'gru'. (see 'rnn-cli manual --help')"),
    ("unknown_show_section", "torch --show shapes,bogus",
     "--show takes a comma-separated list of diagram, shapes, sources, values, recipes, padding, grad, params, cost, code (or all), got 'shapes,bogus'"),
    ("unknown_nonlinearity", "manual --nonlinearity sigmoid",
     "Invalid value for '--nonlinearity': 'sigmoid' is not one of 'tanh', 'relu'. (see 'rnn-cli manual --help')"),
    ("unknown_dtype", "manual --dtype float16",
     "Invalid value for '--dtype': 'float16' is not one of 'float32', 'float64'. (see 'rnn-cli manual --help')"),
    ("unknown_h0", "compare --h0 ones",
     "--h0 must be zeros, random or a .npy file (np.save), got 'ones'"),
    ("seed_negative", "manual --seed -1", "--seed must be between 0 and 2**63-1, got -1"),
    ("seed_too_large", "torch --seed 9223372036854775808",
     "--seed must be between 0 and 2**63-1, got 9223372036854775808"),
    # ---- devices -----------------------------------------------------------------------
    ("unknown_device", "torch --device tpu", "--device must be cpu, cuda, cuda:N or auto, got 'tpu'"),
    ("device_without_index", "compare --device cuda:", "--device must be cpu, cuda, cuda:N or auto, got 'cuda:'"),
    ("manual_on_cuda", "manual --device cuda",
     "--device cuda: manual is numpy on the CPU; use 'rnn-cli torch' or 'rnn-cli compare' for CUDA"),
    ("manual_on_cuda_index", "manual --device cuda:0",
     "--device cuda:0: manual is numpy on the CPU; use 'rnn-cli torch' or 'rnn-cli compare' for CUDA"),
    # ---- options and views -------------------------------------------------------------
    ("unknown_option", "manual --hiden-size 3",
     "No such option: --hiden-size (Possible options: --hidden-size, --input-size, --proj-size) "
     "(see 'rnn-cli manual --help')"),
    ("option_of_another_command", "manual --no-tf32", "No such option: --no-tf32 (see 'rnn-cli manual --help')"),
    ("extra_argument", "torch lstm", "Got unexpected extra argument(s) (lstm) (see 'rnn-cli torch --help')"),
    ("precision_negative", "manual --precision -1", "--precision must be between 0 and 12, got -1"),
    ("precision_too_large", "torch --precision 13", "--precision must be between 0 and 12, got 13"),
    ("batch_index_past_batch", "manual --batch 2 --batch-index 2",
     "--batch-index must be between 0 and 1 (--batch 2), got 2"),
    ("batch_index_negative", "compare --batch-index -1", "--batch-index must be between 0 and 0 (--batch 1), got -1"),
    ("batch_index_unbatched", "manual --unbatched --batch-index 1",
     "--batch-index must be 0 with --unbatched (one sequence), got 1"),
    ("save_into_missing_directory", "manual --save missing/run.npz",
     "--save missing/run.npz: directory missing does not exist"),
    ("save_onto_a_directory", "torch --save .", "--save .: is a directory; give a file path like ./run.npz"),
    ("save_name_too_long", f"manual --save {LONG}.npz", f"--save {LONG}.npz: cannot be written (File name too long)"),
    ("svg_into_missing_directory", "compare --export-svg missing/out.svg",
     "--export-svg missing/out.svg: directory missing does not exist"),
    ("json_with_export_svg", "manual --json --export-svg out.svg",
     "--export-svg records the human output; it cannot be combined with --json"),
    # ---- compare's tolerances, bench's counts ------------------------------------------
    ("atol_negative", "compare --atol -1", "--atol must be a finite number >= 0, got -1.0"),
    ("atol_nan", "compare --atol nan", "--atol must be a finite number >= 0, got nan"),
    ("rtol_infinite", "compare --rtol inf", "--rtol must be a finite number >= 0, got inf"),
    ("atol_not_a_number", "compare --atol tiny",
     "Invalid value for '--atol': 'tiny' is not a number (see 'rnn-cli compare --help')"),
    ("repeat_zero", "bench --repeat 0", "--repeat must be between 1 and 100000, got 0"),
    ("repeat_too_many", "bench --repeat 100001", "--repeat must be between 1 and 100000, got 100001"),
    ("warmup_negative", "bench --warmup -1", "--warmup must be between 0 and 10000, got -1"),
    # ---- memory, against 16 GiB available ------------------------------------------------
    # By hand from the runners' stated formulas (sample + the runner's peak + the value tables).
    # rnn, H_in 5, H 10**6, L 10, N 1, float32: parameters 5e6 + 1e12 + 2e6, input 50, h_0 1e6;
    # manual's peak: W_hh^T copied contiguous 1e12, two (L, N, H) projections (x W^T, then + b)
    # 2e7, one step's gates 4e6 -> 2,000,032,000,050 x 4 B = 7.28 TiB.
    ("memory_hidden_size_1e6", "manual --hidden-size 1000000",
     f"this configuration needs about 7.3 TiB of memory, more than the 16.0 GiB available; {REDUCE}"),
    # compare: the float32 sample (4e12 B), its float64 copy (8e12 B) and the float64
    # reference's copy of W_hh^T (8e12 B): 20.0e12 B = 18.2 TiB.
    ("memory_hidden_size_1e6_compare", "compare --hidden-size 1000000",
     f"this configuration needs about 18.2 TiB of memory, more than the 16.0 GiB available; {REDUCE}"),
    # 1000 layers of H 2000: parameters 2000*(5 + 999*2000) + 1000*(2000*2000 + 4000) = 8,000,010,000,
    # 999 lower outputs kept for the values 2e7, states 2e6, projections 4e4 -> 32.09e9 B = 29.9 GiB.
    ("memory_layers_1000", "manual --layers 1000 --hidden-size 2000",
     f"this configuration needs about 29.9 GiB of memory, more than the 16.0 GiB available; {REDUCE}"),
    # L 10**9, H_in 5, H 8: the float32 input 5e9 elements (20e9 B), then the larger of the
    # draw's float64 input (40e9 B) and manual's output (8e9 elements, 32e9 B; the projections
    # are made in 4 MiB blocks), and the value tables' 144 B per step (a label, one row's
    # copies) 144e9 B -> 204e9 B = 190.0 GiB.
    ("memory_seq_len_1e9", "manual --seq-len 1000000000",
     f"this configuration needs about 190.0 GiB of memory, more than the 16.0 GiB available; {REDUCE}"),
    # torch: the projection, the step outputs, their stack and the RNN cell's one more output
    # (8 + 3 * 8 per step) 128e9 B instead of manual's 64e9, plus torch's import: 272.2 GiB.
    ("memory_seq_len_1e9_torch", "torch --seq-len 1000000000",
     f"this configuration needs about 272.2 GiB of memory, more than the 16.0 GiB available; {REDUCE}"),
]

NO_CUDA_CASES = [
    ("cuda_absent", "torch --device cuda",
     f"--device cuda: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto"),
    ("cuda_index_absent", "compare --device cuda:1",
     f"--device cuda:1: CUDA is not available here (torch {torch.__version__}); use --device cpu or auto"),
]


@pytest.fixture(autouse=True)
def in_tmp_with_16_gib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rnn_cli.core.guard, "available_memory", lambda: (16 * GiB, "MemAvailable"))
    return tmp_path


def invoke(command_line: str):
    return CliRunner().invoke(app, shlex.split(command_line))


def assert_refused(command_line: str, message: str) -> None:
    result = invoke(command_line)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"rnn-cli: error: {message}\n")


@pytest.mark.parametrize("command_line, message", [pytest.param(c, m, id=i) for i, c, m in CASES])
def test_bad_input_gets_its_one_line(command_line: str, message: str, in_tmp_with_16_gib: Path) -> None:
    assert_refused(command_line, message)
    assert list(in_tmp_with_16_gib.iterdir()) == []  # and leaves nothing behind


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
@pytest.mark.parametrize("command_line, message", [pytest.param(c, m, id=i) for i, c, m in NO_CUDA_CASES])
def test_cuda_asked_for_without_cuda(command_line: str, message: str) -> None:
    assert_refused(command_line, message)


def test_the_table_is_large_and_its_names_unique() -> None:
    names = [name for name, _, _ in CASES + NO_CUDA_CASES]
    assert len(names) >= 30 and len(set(names)) == len(names)


MEMORY_CASES = [pytest.param(c, m, id=name) for name, c, m in CASES if name.startswith("memory_")]


@pytest.mark.parametrize("command_line, message", MEMORY_CASES)
def test_memory_is_refused_before_anything_is_allocated(
    command_line: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def must_not_run(*args, **kwargs):
        raise AssertionError("ran a configuration that should have been refused")

    for module in (rnn_cli.core.manual, rnn_cli.core.torch_run, rnn_cli.core.compare):
        monkeypatch.setattr(module, "run", must_not_run)
    tracemalloc.start()
    try:
        assert_refused(command_line, message)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2, f"{peak / 1024**2:.0f} MiB allocated before refusing"


def test_memory_message_gives_this_machines_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real MemAvailable
    result = invoke("manual --hidden-size 1000000")
    assert result.exit_code == 2 and result.stdout == ""
    pattern = (
        r"rnn-cli: error: this configuration needs about 7\.3\ TiB of memory, "
        rf"more than the [0-9.]+ (MiB|GiB|TiB) available; {re.escape(REDUCE)}\n"
    )
    assert re.fullmatch(pattern, result.stderr), result.stderr


def test_absurd_numbers_past_float_range_are_refused_cleanly() -> None:
    """10**400 parameters overflow a float: the estimate is still printed, not a traceback.
    The parameters count twice: manual stacks each layer's weights into a copy (Layer.of)."""
    assert_refused(
        "manual --hidden-size " + "1" + "0" * 200,
        f"this configuration needs about 7.11e+385 PiB of memory, more than the 16.0 GiB available; {REDUCE}",
    )
