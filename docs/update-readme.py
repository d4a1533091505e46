"""Refresh the command output pasted in README.md from real runs.

Every block between
    <!-- output: COMMAND -->
and
    <!-- /output -->
(or `<!-- output machine: COMMAND -->`, for output whose digits depend on the machine:
compare's differences and margins, bench's timings and versions, the memory this machine has) is replaced by what COMMAND prints (stdout, then stderr if any, and the exit status when
it is not 0), run with the installed `rnn-cli` at 80 columns (COLUMNS=80) with colour off.
`<!-- output piped: COMMAND -->` runs it without COLUMNS, as a pipe into a file gets it. A block `<!-- include: PATH -->` ... `<!-- /include -->` takes a file's text
(the benchmark's latest report).

A long output can be cut to the part the text talks about: `<!-- output keep "FIRST".."LAST": COMMAND -->`
(several pairs, separated by spaces; `machine` goes before `keep`) keeps, for each pair in order, the lines from
the first one containing FIRST through the next one containing LAST, and marks what was cut
with a `[...]` line; the exit status line stays. A marker not found in the output is an error,
so a changed screen cannot leave a stale excerpt behind.

    python docs/update-readme.py          # rewrite README.md in place
    python docs/update-readme.py --check  # exit 1 if README.md is stale

--check compares `output:` blocks exactly (their digits are the same on any machine: seeded
draws, shapes, values rounded to 4 places) and `output machine:` blocks with every number
masked, runs of one rule or bar character (`-----`, `####`) shortened to one and spaces
collapsed, so another CPU's timings or last-digit differences pass, and so do the widths
they cause (a column one digit wider, its rule one character longer, a line wrapped elsewhere).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(
    r'(?P<open><!-- output(?P<machine> machine)?(?P<piped> piped)?(?P<keep>(?: keep(?: "[^"]*"\.\."[^"]*")+)?): (?P<cmd>.+?) -->\n)'
    r"(?P<body>.*?)(?P<close><!-- /output -->)",
    re.S,
)
KEEP = re.compile(r'"([^"]*)"\.\."([^"]*)"')
NUMBER = re.compile(r"[-+]?\d[\d.,]*(?:e[-+]?\d+)?")
# bench's warning when a row's timed runs spread more than 1.5x (rnn_cli/views/bench.py show_bench)
BUSY = re.compile(r" ?Warning: the slowest run took more than .*?the machine was busy; rerun\.")
# After numbers are masked: a run of one rule or bar character (a table's rule, whose length
# follows the widest number in its columns; a bar chart's bar, whose length follows a value).
RULE = re.compile(r"([-─━═#█=_])\1+")
INCLUDE = re.compile(r"(<!-- include: (?P<path>.+?) -->\n)(?P<body>.*?)(<!-- /include -->)", re.S)


def excerpt(lines: list[str], keep: list[tuple[str, str]], command: str) -> list[str]:
    """The lines from each FIRST through the next LAST, in order; `[...]` where lines were cut."""
    out, i = [], 0
    for first, last in keep:
        start = next((j for j in range(i, len(lines)) if first in lines[j]), None)
        end = None if start is None else next((j for j in range(start, len(lines)) if last in lines[j]), None)
        if end is None:
            missing = first if start is None else last
            raise SystemExit(f"README.md: {missing!r} is not in what `{command}` prints now; fix the block's keep")
        out += (["[...]"] if start > i else []) + lines[start : end + 1]
        i = end + 1
    return out + (["[...]"] if i < len(lines) else [])


def run(command: str, keep: list[tuple[str, str]] | None = None, piped: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    env.update(NO_COLOR="1", TERM="dumb")
    if not piped:  # as an 80-column terminal would show it; `piped`: as a pipe gets it, no COLUMNS
        env["COLUMNS"] = "80"
    # `rnn-cli` is this checkout's: the console script beside this Python (a virtual
    # environment's bin/, which need not be on PATH), importing rnn_cli from ROOT first
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, env=env, cwd=ROOT)
    text = proc.stdout + proc.stderr
    lines = [line.rstrip() for line in text.rstrip("\n").splitlines()]
    if keep:
        lines = excerpt(lines, keep, command)
    if proc.returncode:
        lines.append(f"# exit status {proc.returncode}")
    return "```console\n$ " + command + "\n" + "\n".join(lines) + "\n```\n"


def _has_onnx_extra() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "onnxscript"))


# Commands whose output depends on the optional onnx extra (bench: its onnxruntime rows).
ONNX_COMMANDS = ("rnn-cli onnx", "rnn-cli bench")


def refresh(text: str, check: bool = False) -> str:
    """Every block re-run. With `check`, the blocks of ONNX_COMMANDS stay as they are where the
    optional onnx extra is not installed (the quick start's test command runs without it), and
    the blocks that read an .onnx file there too, and the blocks that read a .keras file where
    the keras extra is not."""
    import importlib.util

    opened, matched = text.count("<!-- output"), len(BLOCK.findall(text))
    if opened != matched:  # a mistyped block would otherwise stay empty and pass --check
        raise SystemExit(f"README.md: {opened - matched} `<!-- output` block(s) do not parse; see docs/update-readme.py")
    skip_onnx = check and not _has_onnx_extra()
    skip_keras = check and importlib.util.find_spec("h5py") is None  # the keras extra reads Keras files

    def block(m: re.Match) -> str:
        if skip_onnx and (m.group("cmd").startswith(ONNX_COMMANDS) or ".onnx" in m.group("cmd")):
            return m.group(0)  # rnn-cli onnx, bench's onnxruntime rows, and reading an .onnx file
        if skip_keras and ".keras" in m.group("cmd"):
            return m.group(0)
        return m.group("open") + run(m.group("cmd"), KEEP.findall(m.group("keep")), bool(m.group("piped"))) + m.group("close")

    text = BLOCK.sub(block, text)
    return INCLUDE.sub(lambda m: m.group(1) + (ROOT / m.group("path")).read_text() + m.group(4), text)


def masked(text: str) -> str:
    """A machine block's text with its numbers masked, for --check."""
    def mask(m: re.Match) -> str:
        body = m.group("body")
        if m.group("machine"):
            body = " ".join(RULE.sub(r"\1", NUMBER.sub("#", body)).split())
            body = BUSY.sub("", body)  # bench's warning comes and goes with the machine's load
        return m.group("open") + body + m.group("close")

    return BLOCK.sub(mask, text)


def main() -> int:
    old = README.read_text()
    new = refresh(old, check="--check" in sys.argv)
    if "--check" in sys.argv:
        if masked(new) != masked(old):
            stale = [a.group("cmd") for a, b in zip(BLOCK.finditer(masked(old)), BLOCK.finditer(masked(new))) if a.group(0) != b.group(0)]
            print(f"README.md is stale: run python docs/update-readme.py (changed: {'; '.join(stale) or 'includes'})", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
