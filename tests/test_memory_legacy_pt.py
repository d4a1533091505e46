"""Issue 23: a legacy (non-zip) torch checkpoint declares each storage's size in its pickle,
and torch.load allocates every declared storage before reading its bytes. rnn-cli checks the
declared sizes against the file first (formats/torch_read.py), without running the pickle's
code and without making a storage."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = 2**36  # float32 elements: 256 GiB


def _crafted(path) -> int:
    """A real legacy checkpoint whose first storage declares HUGE elements instead of 40."""
    torch.save({"weight_ih_l0": torch.zeros(8, 5), "weight_hh_l0": torch.zeros(8, 8)}, path,
               _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    declared = data.index(b"cpu") + 3  # the location string, then a memo put, then numel (BININT1 40)
    assert data[declared:declared + 4] == b"q\x06K(", data[declared - 10:declared + 10]
    path.write_bytes(data[:declared + 2] + b"\x8a\x05" + HUGE.to_bytes(5, "little") + data[declared + 4:])
    return len(path.read_bytes())


def test_a_tiny_legacy_pt_declaring_a_huge_storage_is_one_line_without_allocating(tmp_path):
    """Bug: the size check missed legacy files, so torch.load tried to allocate the 256 GiB a
    1 KB file declares: under an address-space limit that ended as an out-of-memory message
    about the allocation (or, within the limit, a huge allocation the file could not fill).
    Now the declared bytes are compared with the file's before torch is asked."""
    path = tmp_path / "layer.pt"
    size = _crafted(path)
    limit = 3 * 2**30

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    done = subprocess.run([sys.executable, "-m", "rnn_cli", "inspect", str(path)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, preexec_fn=cap, timeout=300)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr[-2000:]
    # declared: the crafted storage (float32) and weight_hh_l0's 8x8 float32
    assert done.stderr == (f"rnn-cli: error: {path}: declares {HUGE * 4 + 8 * 8 * 4:,} bytes of tensor data but the file "
                           f"holds {size:,} bytes: it is truncated or crafted\n")


def test_a_legacy_pt_whose_sizes_agree_with_the_file_is_read(tmp_path):
    """The check must not refuse the real thing (bug: counting a storage once per tensor view)."""
    path = tmp_path / "layer.pt"
    gru = torch.nn.GRU(3, 4, bidirectional=True)
    torch.save(gru.state_dict(), path, _use_new_zipfile_serialization=False)
    done = subprocess.run([sys.executable, "-m", "rnn_cli", "inspect", str(path), "--json"], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
