"""Real processes: the installed console script, `python -m rnn_cli`, and which commands import torch.

Kept to three subprocesses: each one that touches torch pays its import (~2 s here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# Not a terminal, 80 columns, no colour forced: what a script or CI log gets.
ENV = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
ENV.update(COLUMNS="80", PYTHONWARNINGS="default")


def test_console_script_runs_the_first_example():
    # The script pip installed beside this interpreter; missing means the install is broken.
    exe = os.path.join(os.path.dirname(sys.executable), "rnn-cli")
    assert os.path.exists(exe), f"rnn-cli is not installed next to {sys.executable}"
    proc = subprocess.run(
        [exe, "torch", "--layers", "2", "--bidirectional"], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "nn.RNN, cpu" in out
    assert "(10, 1, 16)" in out and "(4, 1, 8)" in out  # output (L, N, D*H_out), h_n (D*num_layers, N, H_out)
    assert "Where h_n comes from" in out
    assert "\x1b[" not in out  # piped: plain text
    assert max(len(line) for line in out.splitlines()) <= 80


def test_python_dash_m_manual_json():
    proc = subprocess.run(
        [sys.executable, "-m", "rnn_cli", "manual", "--json"], capture_output=True, text=True, env=ENV, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["command"] == "manual"
    assert doc["tensors"]["output"]["shape"] == [10, 1, 8]  # defaults: L=10, N=1, H_out=8
    assert doc["tensors"]["h_n"]["shape"] == [1, 1, 8]


# Calls the CLI in-process, one command after another, and reports after each whether torch was imported.
_IMPORT_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from rnn_cli.cli.app import app

    # Modules a forward run never uses: --grad's backward pass, the file writer, inspect's findings.
    IDLE = ("rnn_cli.core.backward", "rnn_cli.formats.save", "rnn_cli.formats.diagnose")
    seen = {}
    for args in (["manual", "--json", "--cell", "lstm"], ["--help"], ["manual", "--help"], ["manual"],
                 ["torch", "--no-values", "--cell", "lstm", "--proj-size", "3"], ["manual", "--json", "--grad"]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = app(args, standalone_mode=False)
        seen[" ".join(args)] = {"code": code, "torch": "torch" in sys.modules, "rich": "rich" in sys.modules,
                                "printed": len(out.getvalue()),
                                "idle": sorted(m for m in IDLE if m in sys.modules)}
    print(json.dumps(seen))
    """
)


def test_help_and_manual_never_import_torch_but_torch_does():
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # Nothing on stderr from successful runs: in particular no warning from inside torch (an LSTM
    # with proj_size makes oneDNN warn once per process; users cannot act on it).
    assert proc.stderr == ""
    seen = json.loads(proc.stdout)
    for args in ("--help", "manual --help", "manual", "manual --json --cell lstm"):
        assert seen[args]["code"] in (0, None), (args, seen[args])
        assert seen[args]["printed"] > 0, args  # it really ran and printed something
        assert seen[args]["torch"] is False, f"`rnn-cli {args}` imported torch"
    # JSON is for scripts: it must not pay for rich's import (it runs first, so nothing else loaded it)
    assert seen["manual --json --cell lstm"]["rich"] is False
    assert seen["manual"]["rich"] is True  # the probe can see rich being imported
    # Start-up (issue 26): a forward without files to write imports none of them (the bug: the
    # guard's estimate imported backward for every run; emit imported the writer, documents the
    # findings' codes), and the probe sees them when they are used: --grad imports backward.
    assert seen["manual --json --cell lstm"]["idle"] == []
    assert seen["manual --json --grad"]["idle"] == ["rnn_cli.core.backward"]
    # the probe can see an import: the torch command does import it
    ran_torch = seen["torch --no-values --cell lstm --proj-size 3"]
    assert ran_torch["torch"] is True and ran_torch["code"] in (0, None)
    assert ran_torch["printed"] > 0
