"""Issue 23's file fuzz: real checkpoints of every format rnn-cli reads (zip and legacy torch
.pt, .safetensors, .npz) and .npy inputs, mutated: truncated at every section boundary (and
at evenly spaced points), header bytes flipped, zero-length, wrong magic, dtype codes rnn-cli
does not support. At least 500 files.

All cases run in ONE child process under a 1 GB address-space limit (resource.setrlimit), which
calls the console script's main in-process for each file and records its exit status, its
stderr lines and whether it ended within 10 s of CPU time (SIGPROF: a busy machine does not trip it). Every case must end with exit 0, 1 or
2, at most one line on stderr, and within the 10 s; the expected outcomes come from the issue.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

LIMIT_AS = 1 << 30
CASE_SECONDS = 10

CHILD = r"""
import io, json, os, signal, sys, time, warnings
warnings.simplefilter("always")
warnings.filterwarnings("ignore", category=ResourceWarning)  # the harness's own; every warning shows: a second stderr line is caught each time
from rnn_cli.cli import entry
import numpy, torch  # the harness's imports, before any case: a deadline firing inside `import torch` left it half-imported (a later case segfaulted)

class Hung(BaseException):
    pass

def alarm(*_):
    raise Hung

# The deadline counts this process's CPU time (SIGPROF), not the wall clock: a loop that never
# ends still trips it, and a machine busy with other work does not (a hang blocked on I/O is
# caught by the parent's timeout).
signal.signal(signal.SIGPROF, alarm)
cases_path, results_path = sys.argv[1], sys.argv[2]
with open(cases_path) as f:
    cases = json.load(f)
results = []
for args in cases:
    out, err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = out, err
    sys.argv = ["rnn-cli", *args]
    code, start = None, time.monotonic()
    signal.setitimer(signal.ITIMER_PROF, %d)
    try:
        entry.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Hung:
        code = "hung"
    except BaseException as e:
        code = "raised " + type(e).__name__ + ": " + str(e)[:200]
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    results.append({"args": args, "code": code, "stderr": err.getvalue()[:2000]})
with open(results_path, "w") as f:
    json.dump(results, f)
""" % CASE_SECONDS


def _seeds(d: Path) -> dict[str, Path]:
    """One real file per format: an nn.LSTM's state_dict (and an .npy input for it)."""
    torch.manual_seed(0)
    sd = torch.nn.LSTM(3, 4, num_layers=2).state_dict()
    seeds = {"zip.pt": d / "seed_zip.pt", "legacy.pt": d / "seed_legacy.pt", "st": d / "seed.safetensors",
             "npz": d / "seed.npz", "npy": d / "seed.npy"}
    torch.save(sd, seeds["zip.pt"])
    torch.save(sd, seeds["legacy.pt"], _use_new_zipfile_serialization=False)
    from safetensors.torch import save_file

    save_file(sd, str(seeds["st"]))
    np.savez(seeds["npz"], **{k: v.numpy() for k, v in sd.items()})
    np.save(seeds["npy"], np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32))
    return seeds


def _boundaries(kind: str, data: bytes, path: Path) -> set[int]:
    """Section boundaries of a file: where truncation cuts a structure in two."""
    cuts = {0, 1, 4, 7, 8, 9, 10, len(data) - 1, len(data) // 2}
    if kind in ("zip.pt", "npz"):
        with zipfile.ZipFile(path) as z:
            for i in z.infolist():
                start = i.header_offset
                name_end = start + 30 + len(i.filename.encode())
                cuts |= {start, start + 30, name_end, name_end + i.compress_size // 2, name_end + i.compress_size}
        eocd = data.rfind(b"PK\x05\x06")
        cd = data.rfind(b"PK\x01\x02")
        cuts |= {eocd, eocd + 4, eocd + 22, cd, data.find(b"PK\x01\x02")}
    elif kind == "st":
        n = int.from_bytes(data[:8], "little")
        cuts |= {8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1}
        header = json.loads(data[8 : 8 + n])
        for info in header.values():
            if isinstance(info, dict) and "data_offsets" in info:
                s, e = info["data_offsets"]
                cuts |= {8 + n + s, 8 + n + (s + e) // 2, 8 + n + e}
    elif kind == "npy":
        hlen = int.from_bytes(data[8:10], "little")
        cuts |= {6, 10, 10 + hlen // 2, 10 + hlen - 1, 10 + hlen, 10 + hlen + 4}
    else:  # legacy torch: pickles back to back; cut evenly
        cuts |= {len(data) * k // 40 for k in range(40)}
    return {c for c in cuts if 0 <= c < len(data)}


def _unsupported_dtypes(d: Path) -> list[Path]:
    out = []
    for code in ("<c8", "<U4", "<M8[s]", "|V8", "|S4", "<f16" if hasattr(np, "float128") else "<c16"):
        p = d / f"dtype_{len(out)}.npy"
        np.save(p, np.zeros((5, 2, 3), dtype=code))
        out.append(p)
    for code in ("F8_E5M2", "C64", "XX", "", "F4"):
        header = json.dumps({"weight_ih_l0": {"dtype": code, "shape": [16, 3], "data_offsets": [0, 192]}}).encode()
        p = d / f"dtype_{len(out)}.safetensors"
        p.write_bytes(len(header).to_bytes(8, "little") + header + bytes(192))
        out.append(p)
    for dt in (torch.float8_e5m2, torch.complex64, torch.uint16, torch.quint8):
        p = d / f"dtype_{len(out)}.pt"
        t = torch.zeros(16, 3)
        with warnings.catch_warnings():  # quantized tensors are deprecated; still in files
            warnings.simplefilter("ignore")
            t = torch.quantize_per_tensor(t, 0.1, 0, dt) if dt == torch.quint8 else t.to(dt)
        torch.save({"weight_ih_l0": t, "weight_hh_l0": torch.zeros(16, 4)}, p)
        out.append(p)
    np.savez(d / f"dtype_{len(out)}.npz", weight_ih_l0=np.zeros((16, 3), "<c8"), weight_hh_l0=np.zeros((16, 4), "<U3"))
    out.append(d / f"dtype_{len(out)}.npz")
    return out


SUFFIX = {"zip.pt": ".pt", "legacy.pt": ".pt", "st": ".safetensors", "npz": ".npz", "npy": ".npy"}


def make_cases(d: Path) -> list[list[str]]:
    """(argv) for every mutated file: inspect for checkpoints, manual --input for .npy."""
    files: list[Path] = []
    for kind, seed in _seeds(d).items():
        data = seed.read_bytes()
        sfx = SUFFIX[kind]
        variants = {f"cut{c}": data[:c] for c in sorted(_boundaries(kind, data, seed))}
        for i in range(min(48, len(data))):  # flipped header bytes, one at a time
            variants[f"flip{i}"] = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
        for i in range(0, len(data), max(1, len(data) // 16)):  # and some deep inside
            variants[f"bit{i}"] = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
        variants["empty"] = b""
        variants["magic"] = b"\x00BAD" + data[4:]
        variants["magic2"] = b"GIF89a" + data[6:]
        for name, content in variants.items():
            p = d / f"{kind.replace('.', '_')}_{name}{sfx}"
            p.write_bytes(content)
            files.append(p)
    files += _unsupported_dtypes(d)
    cases = []
    for p in files:
        if p.suffix == ".npy":
            cases.append(["manual", "--input", str(p), "--brief"])
        else:
            cases.append(["inspect", str(p), "--json"] if len(cases) % 2 else ["inspect", str(p)])
    return cases


def test_make_cases_covers_every_format_and_at_least_500_files(tmp_path):
    cases = make_cases(tmp_path)
    assert len(cases) >= 500
    suffixes = {Path(c[2] if c[0] == "manual" else c[1]).suffix for c in cases}
    assert suffixes == {".pt", ".safetensors", ".npz", ".npy"}


def run_cases(cases: list[list[str]], d: Path) -> list[dict]:
    (d / "cases.json").write_text(json.dumps(cases))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))

    env = {**os.environ, "NO_COLOR": "1", "RNN_CLI_FIFO_TIMEOUT": "2", "COLUMNS": "100"}
    r = subprocess.run([sys.executable, "-c", CHILD, str(d / "cases.json"), str(d / "results.json")],
                       cwd=d, env=env, capture_output=True, text=True, preexec_fn=cap,
                       timeout=CASE_SECONDS * len(cases) + 120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((d / "results.json").read_text())


def test_every_mutated_file_ends_in_exit_0_1_or_2_with_at_most_one_stderr_line(tmp_path):
    cases = make_cases(tmp_path)
    results = run_cases(cases, tmp_path)
    assert len(results) == len(cases)
    bad = [r for r in results if r["code"] not in (0, 1, 2) or len(r["stderr"].splitlines()) > 1
           or (r["code"] == 2 and not r["stderr"].startswith("rnn-cli: error: "))]
    assert not bad, f"{len(bad)} of {len(results)} cases failed; first: {bad[:3]}"
    codes = [r["code"] for r in results]
    assert codes.count(2) > len(codes) // 2  # most mutations must be refused, not read as something else
