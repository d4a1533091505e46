"""Is the CLI's output byte-identical before and after a change? (issue 20's check)

Runs about 100 commands covering every command and its major flags: every -h text (the
root's and each command's), the --json documents of manual, torch, compare, bench, inspect
(the docs/examples files) and onnx, the default screens piped at COLUMNS=80 and a few at
COLUMNS=60 and with no COLUMNS, a few in colour (the heat maps' colour math), --show all,
--grad, --no-pack --lengths, the recipes, --export-svg's file, and the errors (exit 2, one
line). Each command's stdout, stderr, exit status and the files it wrote go into a folder
of their own under DIR; two such recordings are compared file by file.

    python docs/same-output.py record DIR              # this checkout's rnn_cli
    python docs/same-output.py record DIR --ref REF    # a git commit or branch of this repository
    python docs/same-output.py diff DIR_A DIR_B        # exit 1 and a diff where they differ
    python docs/same-output.py check [--ref REF]       # record REF (default main) and this
                                                       # checkout in temporary folders; diff
    --only REGEX (record, check): only the cases whose folder name matches, e.g. 'colour_|bench'

A ref is recorded from `git archive REF` unpacked into a temporary folder (no worktree, no
checkout is touched). The tree recorded is put first on PYTHONPATH and its console script
(pyproject.toml's [project.scripts] rnn-cli, which moved from rnn_cli.entry to
rnn_cli.cli.entry) is called as `rnn-cli` would call it, with this Python; a tree whose
rnn_cli is not the one imported is an error. Commands run in a fresh temporary folder
holding a copy of the tree's docs/examples, so the paths they print are the same relative
paths in every recording. `-j N` runs N commands at a time (default 2).

Masked, because they are not deterministic or belong to the machine, not the code:
- time: every command runs with time.perf_counter replaced by a clock that advances 1/1024 s
  per reading, so every bench run takes exactly that (0.977 ms), and bench's table, its
  widths, the spread warning (never: the runs are equal) and the JSON are the same on every
  run; so is whether a progress bar (views/progress.py, stderr on a terminal: the colour
  cases) thinks the work looks long enough to show, which on the real clock depends on the
  machine's load;
- versions (numpy, torch, onnx, onnxruntime, onnxscript, the BLAS, rnn-cli's own): the
  installed version strings are replaced by <NAME version>;
- the memory available in the memory guard's message (MemAvailable moves);
- the temporary folders' paths: <work>, <tree>.
Everything else (values, differences, thread counts) is compared exactly: a difference
there is a real one, or a sign of a nondeterministic computation worth knowing about.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SMALL_BENCH = "--seq-len 5 --batch 2 --hidden-size 8 --input-size 5 --repeat 3 --warmup 1"
LSTM_PACKED = "--cell lstm --layers 2 --bidirectional --proj-size 3 --lengths 10,7,3 --batch 3"
GRU_COST = "--cell gru --lengths 7,5,5,2,1,1 --hidden-size 32 --input-size 16"

# (how it is run, command line after `rnn-cli`). How: "80" (COLUMNS=80, no colour, piped, as
# docs/update-readme.py runs), "60", "piped" (no COLUMNS), "colour" (COLUMNS=80, truecolor).
CASES: list[tuple[str, str]] = [
    # ---- help texts -------------------------------------------------------------------
    ("80", "-h"),
    ("80", "--help"),
    ("80", "-V"),
    *[("80", f"{c} -h") for c in ("manual", "torch", "compare", "bench", "inspect", "onnx")],
    ("60", "manual -h"),
    ("piped", "compare --help"),
    # ---- JSON documents ---------------------------------------------------------------
    ("80", "manual --json"),
    ("80", f"manual {LSTM_PACKED} --json"),
    ("80", "manual --grad --cell gru --bidirectional --json"),
    ("80", "manual --no-values --json"),
    ("80", "torch --json"),
    ("80", f"torch {GRU_COST} --json"),
    ("80", "torch --lengths 10,7,3 --bidirectional --no-pack --json"),
    ("80", "torch --unbatched --cell lstm --json"),
    ("80", "compare --json"),
    ("80", "compare --cell gru --json"),
    ("80", f"compare --grad {LSTM_PACKED} --json"),
    ("80", "compare --cell lstm --atol 0 --rtol 0 --json"),
    ("80", f"bench {SMALL_BENCH} --json"),
    ("80", f"bench {SMALL_BENCH} --grad --cell lstm --json"),
    *[("80", f"inspect docs/examples/{f} --json") for f in ("model.pt", "broken.pt", "pickled.pt", "encoder.jit", "port.npz")],
    ("80", "inspect docs/examples/model.pt docs/examples/broken.pt --json"),
    ("80", "onnx --json"),
    ("80", "onnx --cell gru --lengths 5,3 --json"),
    # ---- default screens, 80 columns --------------------------------------------------
    ("80", "manual"),
    ("80", "torch"),
    ("80", "compare"),
    ("80", "torch --layers 2 --bidirectional"),
    ("80", "manual --cell lstm --layers 2 --bidirectional --proj-size 3"),
    ("80", "manual --seq-len 4 --hidden-size 4 --input-size 3 --no-diagram"),
    ("80", "torch --cell lstm --lengths 5,2,4 --bidirectional --batch-first --show shapes"),
    ("80", f"compare {LSTM_PACKED}"),
    ("80", "compare --cell lstm --atol 0 --rtol 0"),
    ("80", "torch --lengths 5,2 --batch 2 --seq-len 5"),
    ("80", "torch --batch 2 --lengths 5,2,1"),
    ("80", f"bench {SMALL_BENCH}"),
    ("80", f"bench {SMALL_BENCH} --grad"),
    ("80", f"bench {SMALL_BENCH} --cell gru --layers 2 --bidirectional --lengths 5,3"),
    *[("80", f"inspect docs/examples/{f}") for f in ("model.pt", "broken.pt", "pickled.pt", "encoder.jit", "port.npz")],
    ("80", "inspect docs/examples/model.pt docs/examples/broken.pt"),
    ("80", "inspect docs/examples/model.pt --batch 3 --seq-len 4 --batch-first"),
    ("80", "onnx --cell lstm --layers 2 --bidirectional"),
    ("80", "onnx --cell gru --lengths 5,3"),
    # ---- flags that change the screen -------------------------------------------------
    ("80", "manual --cell lstm --brief"),
    ("80", "torch --unbatched"),
    ("80", "manual --batch-first --batch 3 --precision 2 --batch-index 1"),
    ("80", "manual --no-heatmap --h0 random --cell lstm"),
    ("80", "torch --no-values --nonlinearity relu --no-bias"),
    ("80", "manual --cell gru --show all"),
    ("80", "torch --cell lstm --lengths 5,3 --show all"),
    ("80", "compare --show all --layers 2"),
    ("80", "torch --cell lstm --layers 2 --bidirectional --proj-size 3 --show shapes,params,code"),
    ("80", "manual --grad --loss last --seq-len 50 --show grad"),
    ("80", "manual --grad --cell lstm --lengths 4,2"),
    ("80", f"compare --grad {LSTM_PACKED}"),
    ("80", "torch --lengths 10,7,3 --bidirectional --no-pack --show padding"),
    ("80", "manual --cell gru --lengths 10,7,3 --no-pack"),
    ("80", "torch --cell lstm --layers 2 --bidirectional --lengths 10,7,3 --show recipes"),
    ("80", f"torch {GRU_COST} --show cost"),
    ("80", "manual --cell lstm --layers 2 --bidirectional --proj-size 4 --grad --show cost"),
    ("80", "compare --params docs/examples/model.pt:0 --input docs/examples/x.npy"),
    ("80", "torch --params docs/examples/model.pt:0 --hidden-size 8"),
    ("80", "compare --params docs/examples/encoder.jit:encoder.rnn --seq-len 4 --batch 2"),
    ("80", "torch --params docs/examples/port.npz:enc --seq-len 3 --show shapes"),
    ("80", "manual --save out.npz --export-svg out.svg"),
    ("80", "compare --brief --cell gru --lengths 4,2"),
    ("80", "torch --brief --grad --cell lstm"),
    ("80", "torch --show code --h0 random --cell lstm --lengths 5,3 --batch-first --dtype float64"),
    ("80", "manual --show code,params --cell gru --bidirectional --unbatched"),
    ("80", "compare --show values --layers 2 --bidirectional --hidden-size 20 --seq-len 15"),
    # ---- narrow, unsized and colour terminals -----------------------------------------
    ("60", "manual"),
    ("60", "torch --layers 2 --bidirectional"),
    ("60", "compare --cell lstm"),
    ("60", "manual --cell gru --show all"),
    ("60", "inspect docs/examples/model.pt"),
    ("60", f"bench {SMALL_BENCH}"),
    ("60", "onnx --cell lstm"),
    ("piped", "torch"),
    ("colour", "manual"),
    ("colour", "compare --cell lstm --grad"),
    ("colour", "torch --cell gru --layers 2 --show all"),
    # ---- errors: exit 2, one line on stderr -------------------------------------------
    ("80", "manual --cell foo"),
    ("80", "manual --proj-size 3"),
    ("80", "manual --lengths 3,11 --seq-len 10"),
    ("80", "manual --no-pack"),
    ("80", "torch --device cuda:7"),
    ("80", "compare --atol -1"),
    ("80", "bench --repeat 0"),
    ("80", "inspect nope.pt"),
    ("80", "manual --input docs/examples/model.pt"),
    ("80", "manual --params docs/examples/model.pt:nope"),
    ("80", "manual --hidden-size 1000000 --layers 1000"),
    ("80", "compare --params docs/examples/model.pt:0 --input docs/examples/x.npy --save docs/examples/x.npy"),
    ("80", "manual --export-svg docs"),
]

# The console script, as pip writes it; the entry point comes from the recorded tree.
SHIM = r"""
import os, sys
if os.environ.get("SAME_OUTPUT_CLOCK"):  # every perf_counter reading 1/1024 s after the last
    import itertools, time
    _ticks = itertools.count(1)
    time.perf_counter = lambda: next(_ticks) / 1024  # exact binary steps
import rnn_cli
if not os.path.abspath(rnn_cli.__file__).startswith(os.environ["SAME_OUTPUT_TREE"] + os.sep):
    sys.exit(f"same-output: imported {rnn_cli.__file__}, not the recorded tree")
module, _, function = os.environ["SAME_OUTPUT_ENTRY"].partition(":")
sys.argv[0] = "rnn-cli"
import importlib
sys.exit(getattr(importlib.import_module(module), function)())
"""


def slug(how: str, command: str) -> str:
    """A folder name for a case: `80_manual--cell-lstm--json`."""
    name = re.sub(r"[^A-Za-z0-9.,:=-]+", "-", command).strip("-").replace("/", "-")
    return f"{how}_{name}"[:150]


def entry_point(tree: Path) -> str:
    with open(tree / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["scripts"]["rnn-cli"]


def versions() -> dict[str, str]:
    """The installed version strings to mask, longest first (torch's 2.13.0+cpu before 2.13.0)."""
    from importlib import metadata

    found = {}
    for name in ("numpy", "torch", "onnx", "onnxruntime", "onnxscript", "rnn-cli"):
        try:
            v = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found[v] = name
        found.setdefault(v.split("+")[0], name)
    try:
        import numpy

        blas = numpy.__config__.CONFIG["Build Dependencies"]["blas"]
        found[str(blas["version"])] = str(blas["name"])
    except (AttributeError, KeyError, TypeError, ImportError):
        pass
    return dict(sorted(found.items(), key=lambda kv: -len(kv[0])))


MEMORY = re.compile(r"(more than the )[\d.]+ [KMGTPE]?i?B( available)")


def mask(text: str, paths: dict[str, str], known: dict[str, str]) -> str:
    for path, name in paths.items():
        text = text.replace(path, name)
    for version, name in known.items():
        text = re.sub(rf"(?<![\w.+]){re.escape(version)}(?![\w.+])", f"<{name} version>", text)
    return MEMORY.sub(r"\1<memory>\2", text)


def environment(how: str, tree: Path, command: str) -> dict[str, str]:
    drop = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "COLUMNS", "LINES", "TERM", "COLORTERM")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SAME_OUTPUT")}
    env.update(PYTHONPATH=str(tree), PYTHONHASHSEED="0", SAME_OUTPUT_TREE=str(tree), SAME_OUTPUT_ENTRY=entry_point(tree))
    if how == "colour":
        env.update(FORCE_COLOR="1", TERM="xterm-256color", COLORTERM="truecolor", COLUMNS="80")
    else:
        env.update(NO_COLOR="1", TERM="dumb")
        if how != "piped":
            env["COLUMNS"] = how
    env["SAME_OUTPUT_CLOCK"] = "1"  # bench's timings, and whether a progress bar "looks longer than 2 s"
    return env


def record_one(how: str, command: str, tree: Path, out: Path, known: dict[str, str]) -> str:
    """Run one case in a fresh folder holding docs/examples; write what it printed and wrote."""
    with tempfile.TemporaryDirectory(prefix="same-output-") as work:
        shutil.copytree(tree / "docs" / "examples", Path(work) / "docs" / "examples")
        argv = [sys.executable, "-c", SHIM, *shlex.split(command)]
        proc = subprocess.run(argv, cwd=work, env=environment(how, tree, command), capture_output=True, timeout=600)
        paths = {os.path.realpath(work): "<work>", work: "<work>", str(tree): "<tree>"}
        case = out / slug(how, command)
        case.mkdir(parents=True)
        (case / "command").write_text(f"[{how}] rnn-cli {command}\n")
        for name, data in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            (case / name).write_text(mask(data.decode("utf-8", "backslashreplace"), paths, known))
        (case / "rc").write_text(f"{proc.returncode}\n")
        for written in sorted(Path(work).iterdir()):
            if written.name == "docs":
                continue
            if written.suffix == ".svg":  # text; .npz/.onnx are zip/protobuf with timestamps: named only
                (case / f"file-{written.name}").write_text(mask(written.read_text(), paths, known))
            else:
                (case / f"file-{written.name}").write_text("(written)\n")
    return f"{proc.returncode}  [{how}] rnn-cli {command}"


def record(out: Path, tree: Path, jobs: int, only: str | None = None) -> None:
    names = [slug(h, c) for h, c in CASES]
    assert len(set(names)) == len(names), "two cases share a folder name"
    cases = [case for case, name in zip(CASES, names) if only is None or re.search(only, name)]
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    known = versions()
    with ThreadPoolExecutor(jobs) as pool:
        for line in pool.map(lambda case: record_one(*case, tree, out, known), cases):
            print(line, file=sys.stderr)


def record_ref(out: Path, ref: str, jobs: int, only: str | None = None) -> None:
    """Record `git archive REF` unpacked in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="same-output-tree-") as tree:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        record(out, Path(tree).resolve(), jobs, only)


def _near_difference(left: str, right: str, width: int = 160) -> tuple[list[str], list[str]]:
    """Both texts' lines, a long line (a JSON document) cut to `width` characters around the
    first place where it differs from its counterpart."""
    a, b = left.splitlines(), right.splitlines()
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and max(len(x), len(y)) > width:
            at = next((k for k, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
            start = max(0, at - width // 2)
            a[i], b[i] = (("..." if start else "") + t[start : start + width] + "..." for t in (x, y))
    return a, b


def diff(a: Path, b: Path, limit: int = 60) -> int:
    """Print what differs between two recordings; 0 when they are byte-identical."""
    files = sorted({p.relative_to(a) for p in a.rglob("*") if p.is_file()} | {p.relative_to(b) for p in b.rglob("*") if p.is_file()})
    differing = 0
    for rel in files:
        left, right = a / rel, b / rel
        if left.is_file() and right.is_file() and left.read_bytes() == right.read_bytes():
            continue
        differing += 1
        if not (left.is_file() and right.is_file()):
            print(f"only in {a if left.is_file() else b}: {rel}")
            continue
        lines = list(difflib.unified_diff(*_near_difference(left.read_text(), right.read_text()), f"{a.name}/{rel}",
                                          f"{b.name}/{rel}", lineterm=""))
        print("\n".join(lines[:limit] + ([f"... {len(lines) - limit} more diff lines"] if len(lines) > limit else [])))
    cases = len({rel.parts[0] for rel in files})
    print(f"{cases} cases, {len(files)} files: " + (f"{differing} differ" if differing else "byte-identical"), file=sys.stderr)
    return 1 if differing else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    rec = sub.add_parser("record", help="record this checkout (or --ref) into DIR")
    rec.add_argument("dir", type=Path)
    rec.add_argument("--ref", help="a git ref of this repository instead of the checkout")
    dif = sub.add_parser("diff", help="compare two recordings")
    dif.add_argument("a", type=Path)
    dif.add_argument("b", type=Path)
    chk = sub.add_parser("check", help="record --ref (default main) and this checkout, then diff")
    chk.add_argument("--ref", default="main")
    for p in (rec, chk):
        p.add_argument("-j", "--jobs", type=int, default=2)
        p.add_argument("--only", help="a regular expression: only the cases whose folder name matches")
    args = parser.parse_args()
    if args.action == "diff":
        return diff(args.a, args.b)
    if args.action == "record":
        record_ref(args.dir, args.ref, args.jobs, args.only) if args.ref else record(args.dir, ROOT, args.jobs, args.only)
        return 0
    with tempfile.TemporaryDirectory(prefix="same-output-") as tmp:
        before, after = Path(tmp) / args.ref.replace("/", "-"), Path(tmp) / "checkout"
        record_ref(before, args.ref, args.jobs, args.only)
        record(after, ROOT, args.jobs, args.only)
        return diff(before, after)


if __name__ == "__main__":
    raise SystemExit(main())
