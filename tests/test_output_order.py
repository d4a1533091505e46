"""Files first, then stdout; and a sign of life on long numpy loops.

Bugs caught: the human view printed before --export-svg (or --save) failed, so a run that
exits 2 has already filled stdout (the old order); a failed write that damages the file it
was to replace; the numpy loop reporting no progress (no bar on a long run).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rnn_cli.formats.save
from rnn_cli.core import runs
from rnn_cli.cli.app import app
from rnn_cli.core.config import RunConfig


def _disk_full_at_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.replace inside rnn_cli.formats.save fails as a full disk would, after the data was written."""

    def full(src, dst, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rnn_cli.formats.save.os, "replace", full)


@pytest.mark.parametrize("flag, name", [("--export-svg", "view.svg"), ("--save", "run.npz")])
def test_a_failing_file_leaves_stdout_empty_and_the_old_file_whole(tmp_path: Path, monkeypatch, flag, name):
    target = tmp_path / name
    target.write_bytes(b"the old file")
    _disk_full_at_replace(monkeypatch)
    result = CliRunner().invoke(app, ["manual", "--layers", "2", flag, str(target)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # nothing printed before the failure
    assert result.stderr.count("\n") == 1 and "could not write" in result.stderr
    assert target.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_export_svg_holds_what_stdout_got(tmp_path: Path):
    svg = tmp_path / "view.svg"
    result = CliRunner().invoke(app, ["torch", "--layers", "2", "--bidirectional", "--export-svg", str(svg)])
    assert result.exit_code == 0, result.output
    text = svg.read_text()
    for line in result.stdout.splitlines()[:3]:  # the header and the first lines, as printed
        for word in line.split():
            assert word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in text, word


def test_the_numpy_loop_reports_every_step_of_every_layer():
    cfg = RunConfig(num_layers=3, bidirectional=True, seq_len=7)
    seen: list[tuple[str, int, int]] = []
    runs.run("manual", cfg, progress=lambda label, done, total: seen.append((label, done, total)))
    assert [done for _, done, _ in seen] == list(range(1, 3 * 7 + 1))  # layers x steps, in order
    assert {total for _, _, total in seen} == {3 * 7}
    assert [label for label, _, _ in seen[::7]] == ["layer 0", "layer 1", "layer 2"]
