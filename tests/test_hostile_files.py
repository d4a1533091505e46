"""Issue 23: hostile files. Each case is one of the issue's repro files (or a relative of it);
the expected outcome is the issue's: one line on stderr naming what the file is, exit 2 (or a
problem, exit 1, for inspect on a damaged but readable module), never a traceback, never more
memory than the file justifies, never a raw escape sequence on the terminal.

Everything is made in pytest's tmp_path; FIFOs too. Memory limits are set in child processes.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rnn_cli.cli.app import app

ESC_PREFIX = "\x1b]0;pwned\x07\x1b[2J"


def cli(*args: str, env: dict | None = None):
    """In-process run, as the console script runs it: (exit code, stdout, stderr lines)."""
    r = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "RNN_CLI_FIFO_TIMEOUT": "1", **(env or {})})
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.exit_code, r.stdout, r.stderr.splitlines()


def one_line(code: int, err: list[str], *words: str, exit_code: int = 2) -> str:
    assert code == exit_code, (code, err)
    assert len(err) == 1 and err[0].startswith("rnn-cli: error: "), err
    for w in words:
        assert w in err[0], (w, err[0])
    return err[0]


def lstm_state() -> dict:
    torch.manual_seed(0)
    return nn_lstm().state_dict()


def nn_lstm():
    return torch.nn.LSTM(3, 4)


# ---- read before you allocate --------------------------------------------------------------


def _capped(limit: int, args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-m", "rnn_cli", *args], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=cap, timeout=timeout)


@pytest.mark.parametrize("command", [["inspect", "layer.pt"], ["manual", "--params", "layer.pt"]])
def test_a_3_kb_file_naming_layer_99999999_is_refused_in_one_line(command, tmp_path):
    """Bug: layer indices were trusted: range(99999999) of bookkeeping, 8.7 GB and 30-80 s,
    then 'reduce --hidden-size'. Under a 1.5 GB address-space cap it must be refused at once,
    saying which key names which layer."""
    torch.save({"weight_ih_l99999999": torch.zeros(8, 8), "weight_hh_l99999999": torch.zeros(8, 8)}, tmp_path / "layer.pt")
    assert (tmp_path / "layer.pt").stat().st_size < 4096
    r = _capped(1_500_000_000, command, tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "weight_ih_l99999999" in lines[0] and "2 tensors" in lines[0], lines
    assert "--hidden-size" not in lines[0]


def test_a_file_larger_than_the_memory_limit_is_refused_naming_both(tmp_path):
    """Bug: an 800 MB safetensors under `prlimit --as` panicked in the library (240 lines) or hung.
    Here a 600 MB file under a cap that leaves less than that: one line with both sizes."""
    path = tmp_path / "big.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [150_000_000], "data_offsets": [0, 600_000_000]}}).encode()
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
        f.truncate(8 + len(header) + 600_000_000)  # sparse: costs no disk
    r = _capped(650_000_000, ["inspect", "big.safetensors"], tmp_path, timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
    assert "572.2 MiB" in lines[0] and "ulimit -v" in lines[0], lines


@pytest.mark.parametrize("entry, words", [
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 2**60]}, "outside the file"),
    ({"dtype": "F32", "shape": [2**40], "data_offsets": [0, 16]}, "declares"),
    ({"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}, "F8_E4M3"),
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "impossible shape"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}, "outside the file"),
])
def test_safetensors_headers_are_checked_against_the_file(entry, words, tmp_path):
    header = json.dumps({"weight_ih_l0": entry}).encode()
    (tmp_path / "m.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))
    one_line(*cli("inspect", str(tmp_path / "m.safetensors"))[::2], words)


def test_overlapping_safetensors_tensors_are_refused(tmp_path):
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                         "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}).encode()
    (tmp_path / "m.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + bytes(24))
    one_line(*cli("inspect", str(tmp_path / "m.safetensors"))[::2], "overlap")


def test_an_npy_declaring_more_than_it_holds_allocates_nothing(tmp_path):
    """Bug class: numpy allocates the header's shape, then reads. A 128-byte file declaring
    10^12 floats must be refused from its header."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 1), }"
    header += " " * (118 - len(header)) + "\n"
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
    one_line(*cli("manual", "--input", str(tmp_path / "x.npy"))[::2], "declares", "cut off")


def test_out_of_memory_while_reading_speaks_of_the_file(monkeypatch, tmp_path):
    """Bug: 'out of memory; reduce --hidden-size' for a file read with no --hidden-size given."""
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 3), np.float32))

    def refuse(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr("rnn_cli.formats.safe_read.np.empty", refuse)
    line = one_line(*cli("manual", "--input", str(tmp_path / "x.npy"))[::2], "x.npy", "reading")
    assert "--hidden-size" not in line


# ---- one line, exit 2, for malformed files -----------------------------------------------------


def _make(tmp_path: Path, name: str) -> str:
    """The issue's malformed files, by name."""
    p = tmp_path / name
    if name == "empty.pt":
        p.touch()
    elif name == "float8.pt":
        torch.save({"weight_ih_l0": torch.zeros(16, 3).to(torch.float8_e4m3fn), "weight_hh_l0": torch.zeros(16, 4)}, p)
    elif name == "st_named.pt":
        from safetensors.torch import save_file

        save_file(lstm_state(), str(p))
    elif name == "raw_pickle.pt":
        import pickle

        # pickle.dump, not torch.save: torch warns about the protocol before refusing it
        p.write_bytes(pickle.dumps({"weight_ih_l0": torch.zeros(4, 3)}, protocol=4))
    elif name == "dir.pt":
        p.mkdir()
    elif name == "loop.pt":
        os.symlink(name, p)
    return str(p)


@pytest.mark.parametrize("name, words", [
    ("empty.pt", "empty"),
    ("float8.pt", "float8_e4m3fn"),
    ("st_named.pt", "safetensors file named"),
    ("raw_pickle.pt", "torch"),
    ("dir.pt", "is a directory"),
    ("loop.pt", "symbolic link loop"),
])
@pytest.mark.parametrize("how", ["inspect", "params", "against"])
def test_malformed_checkpoints_are_one_line_saying_what_they_are(name, words, how, tmp_path):
    """Bugs: tracebacks (empty, float8), torch's UserWarning as a second line (raw pickle),
    'no such file' for a directory or a loop, 'pickled objects' for safetensors."""
    bad = _make(tmp_path, name)
    good = str(tmp_path / "good.pt")
    torch.save(lstm_state(), good)
    args = {"inspect": ["inspect", bad], "params": ["manual", "--params", bad], "against": ["inspect", good, "--against", bad]}
    line = one_line(*cli(*args[how])[::2], words)
    assert "no such file" not in line


def test_a_fifo_checkpoint_with_no_writer_fails_after_the_timeout(tmp_path):
    """Bug: inspect on a FIFO said 'no such file'; --input on one blocked forever."""
    fifo = tmp_path / "f.pt"
    os.mkfifo(fifo)
    start = time.monotonic()
    one_line(*cli("inspect", str(fifo))[::2], "FIFO", "no writer", "1 s")
    assert time.monotonic() - start < 30


def _feed(fifo: Path, data: bytes, delay: float = 0.2) -> threading.Thread:
    def write():
        time.sleep(delay)
        with open(fifo, "wb") as f:
            f.write(data)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("flag", ["--input", "--h0", "params"])
def test_fifos_are_read_as_streams(flag, tmp_path):
    """Bug: with a writer, --input/--h0 on a FIFO failed with 'not seekable'. Expected: the same
    output as the same bytes from a regular file."""
    x = np.random.default_rng(0).standard_normal((3, 1, 3)).astype(np.float32)
    h = np.random.default_rng(1).standard_normal((1, 1, 4)).astype(np.float32)
    files = {"--input": ("x.npy", x), "--h0": ("h.npy", h)}
    for name, a in files.values():
        np.save(tmp_path / name, a)
    torch.save(lstm_state(), tmp_path / "m.pt")
    base = ["manual", "--params", str(tmp_path / "m.pt"), "--input", str(tmp_path / "x.npy"),
            "--h0", str(tmp_path / "h.npy"), "--json"]
    code, expected, _ = cli(*base)
    assert code == 0
    fifo = tmp_path / ("fifo.pt" if flag == "params" else "fifo.npy")
    os.mkfifo(fifo)
    source = tmp_path / ("m.pt" if flag == "params" else files[flag][0])
    writer = _feed(fifo, source.read_bytes())
    args = list(base)
    args[args.index(str(source))] = str(fifo)
    code, out, err = cli(*args, env={"RNN_CLI_FIFO_TIMEOUT": "20"})
    writer.join(5)
    assert (code, err) == (0, []) and json.loads(out)["tensors"] == json.loads(expected)["tensors"]


@pytest.mark.parametrize("name, words", [
    ("cut.npy", "cut off"),
    ("zip.npy", "zip archive"),
    ("text.npy", "not an .npy"),
    ("object.npy", "object"),
])
def test_malformed_npy_inputs_are_one_line(name, words, tmp_path):
    """Bugs: a cut-off header and a zip renamed .npy raised tracebacks."""
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 5), np.float32))
    whole = (tmp_path / "x.npy").read_bytes()
    if name == "cut.npy":
        (tmp_path / name).write_bytes(whole[:40])
    elif name == "zip.npy":
        np.savez(tmp_path / "z.npz", a=np.zeros(3))
        shutil.copy(tmp_path / "z.npz", tmp_path / name)
    elif name == "text.npy":
        (tmp_path / name).write_text("1 2 3\n")
    else:
        np.save(tmp_path / name, np.array([{}, 1], dtype=object), allow_pickle=True)
    one_line(*cli("manual", "--input", str(tmp_path / name))[::2], words)


@pytest.mark.parametrize("dtype, exit_code", [("float32", 2), ("float64", 0)])
def test_float64_input_beyond_the_runs_dtype_is_one_line(dtype, exit_code, tmp_path):
    """Bug: 1e308 in float64 --input: two RuntimeWarnings, then exit 0 with inf/NaN. 1e308 fits
    float64 (finfo max 1.797e308) but not float32 (3.403e38)."""
    np.save(tmp_path / "x.npy", np.full((3, 1, 5), 1e308))
    code, out, err = cli("manual", "--input", str(tmp_path / "x.npy"), "--dtype", dtype, "--brief")
    if exit_code == 2:
        one_line(code, err, "1e+308", "float32", "--dtype float64")
    else:
        assert (code, err) == (0, [])


@pytest.mark.parametrize("bad, words", [
    ({"weight_hr_l0": torch.tensor(1.0)}, "weight_hr_l0 has shape ()"),
])
def test_a_0d_projection_is_a_problem_not_a_traceback(bad, words, tmp_path):
    sd = {"weight_ih_l0": torch.zeros(16, 3), "weight_hh_l0": torch.zeros(16, 2), **bad}
    torch.save(sd, tmp_path / "m.pt")
    code, out, err = cli("inspect", str(tmp_path / "m.pt"))
    assert code == 1 and err == [] and words in out
    one_line(*cli("manual", "--params", str(tmp_path / "m.pt"))[::2], words)


def test_a_0d_cell_weight_ih_is_a_problem_not_a_traceback(tmp_path):
    torch.save({"weight_ih": torch.tensor(1.0), "weight_hh": torch.zeros(8, 8)}, tmp_path / "m.pt")
    code, out, err = cli("inspect", str(tmp_path / "m.pt"))
    assert code == 1 and err == [] and "weight_ih has shape ()" in out


# ---- NaN and Inf -------------------------------------------------------------------------------


def test_inspect_flags_non_finite_weights_with_their_keys(tmp_path):
    sd = lstm_state()
    sd["weight_hh_l0"][3, 1] = float("nan")
    sd["bias_ih_l0"][0] = float("inf")
    torch.save(sd, tmp_path / "m.pt")
    code, out, err = cli("inspect", str(tmp_path / "m.pt"), "--json")
    assert code == 1
    problems = json.loads(out)["modules"][0]["problems"]
    assert any(set(p["keys"]) == {"weight_hh_l0", "bias_ih_l0"} for p in problems), problems


# ---- printable names -----------------------------------------------------------------------


def test_escape_sequences_in_keys_are_shown_escaped_everywhere_but_json(tmp_path):
    """Bug: a key '\\x1b]0;pwned\\x07\\x1b[2J.weight_ih_l0' set the window title and cleared the
    screen of whoever ran inspect. Views and the SVG show `\\x1b`; JSON keeps the exact key."""
    sd = {f"{ESC_PREFIX}.{k}": v for k, v in lstm_state().items()}
    sd["\x1b[31mother"] = torch.zeros(3)
    torch.save(sd, tmp_path / "m.pt")
    svg = tmp_path / "v.svg"
    code, out, err = cli("inspect", str(tmp_path / "m.pt"), "--export-svg", str(svg))
    assert code == 0, err
    for text in (out, svg.read_text()):
        assert "\x1b" not in text and "\x07" not in text
        assert "\\x1b]0;pwned\\x07\\x1b[2J" in text
    code, out, _ = cli("inspect", str(tmp_path / "m.pt"), "--json")
    assert json.loads(out)["modules"][0]["prefix"] == ESC_PREFIX
    # and in a refusal's one line on stderr
    torch.save({f"{ESC_PREFIX}x": torch.zeros(3)}, tmp_path / "none.pt")
    line = one_line(*cli("inspect", str(tmp_path / "none.pt"))[::2], "\\x1b]0;pwned")
    assert "\x1b" not in line


@pytest.mark.parametrize("name", ["raw_pickle.pt"])  # TorchScript archives are read now (test_formats.py)
def test_library_warnings_do_not_make_a_second_line(name, tmp_path):
    """Bug: torch's UserWarning printed before the error. In a real process (pytest's own
    warning capture would hide it in-process), stderr must be exactly one line."""
    bad = _make(tmp_path, name)
    r = subprocess.run([sys.executable, "-m", "rnn_cli", "inspect", bad], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr


def test_contents_nested_beyond_the_recursion_limit_are_one_line(tmp_path, monkeypatch):
    """A crafted pickle can nest dicts thousands deep (torch.save cannot write one; the reader
    stands in for it): the recursive walk to the weights must end in one line, not a traceback."""
    deep: dict = {"weight_ih_l0": np.zeros((4, 3), np.float32)}
    for _ in range(5000):
        deep = {"a": deep}
    torch.save(lstm_state(), tmp_path / "m.pt")
    monkeypatch.setattr("rnn_cli.formats.checkpoint_read._read_torch", lambda src, notes: deep)
    one_line(*cli("inspect", str(tmp_path / "m.pt"))[::2], "nests its contents too deeply")
