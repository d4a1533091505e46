"""The house rules of issue 20, checked on rnn_cli's source (parsed with ast, nothing imported
or run): no import circle, no module over 500 lines, no function over 60 lines, and parameter
names and gate orders spelled only in rnn_cli/core/layout.py.

What each rule catches:
- import circle: two modules that import each other (directly or round a longer loop, at the
  top or inside a function) cannot be understood, tested or moved one without the other, and
  a top-level circle fails at import time depending on which module is imported first. The
  bug: views.screen importing views.grad, which imported views.screen back (before the views package).
- module over 500 lines / function over 60: a room doing two jobs (screen.py held code
  generation, colour math, bench tables and a progress bar); a function that cannot be read
  in one screen (diagram's _full, 92 lines). The bug: the next edit lands in the wrong half.
- a parameter name built or a gate order spelled outside layout.py: two places that must
  agree and can drift apart (onnx_export kept its own torch gate order, config another): a
  checkpoint from a fifth framework would be permuted by one and not the other.
- documents.py, core/ and formats/ reaching rich, typer or a view: every --json run would
  load rich, and the numbers could no longer be driven without the CLI.

Planted and seen failing (issue 20's report): a lazy circle (views.tables importing
views.run inside a function), a module of 501 lines, a function of 61, f"weight_ih_l{k}" in
views/shapes.py, a literal ("i", "f", "g", "o") in views/code.py, and documents.py borrowing
views.bench.format_ms. The checkers themselves are tested on small sources below, so a
checker that silently finds nothing fails too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import rnn_cli
from rnn_cli.core import layout

PACKAGE = Path(rnn_cli.__file__).resolve().parent
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
LAYOUT = "rnn_cli/core/layout.py"

# Allow-lists, empty: the splits of cli/app.py and formats/checkpoint.py (issue 20) have landed.
# An entry here excuses one module from the size rule (SPLIT_IN_FLIGHT) or the parameter-name
# rule (NAMES_IN_FLIGHT) while a branch that splits it is in flight; nothing may stay.
SPLIT_IN_FLIGHT: set[str] = set()
NAMES_IN_FLIGHT: set[str] = set()


# ---- reading the source ---------------------------------------------------------------------------


def modules() -> dict[str, Path]:
    """Every module of rnn_cli by dotted name (a package by its own name, not `.__init__`)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The rnn_cli modules an import statement loads: `from rnn_cli.core import manual` is
    rnn_cli.core.manual, `from rnn_cli.core.config import X` is rnn_cli.core.config."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in known]
    base = node.module or ""
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    names = [f"{base}.{a.name}" for a in node.names]
    return [n if n in known else base for n in names if n in known or base in known]


def import_graph(sources: dict[str, tuple[str, bool]]) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}. Every import statement
    counts: at the top, inside a function (a lazy import is still a dependency), under
    `if TYPE_CHECKING`. A module found by name at run time (importlib.import_module of a
    string from a table, checkpoint.MODULE_READERS) is a plug-in point and does not count."""
    known = set(sources)
    graph: dict[str, dict[str, int]] = {m: {} for m in sources}
    for module, (text, is_package) in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in imported(module, is_package, node, known):
                    if target != module:
                        graph[module].setdefault(target, node.lineno)
    return graph


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One loop per strongly connected group of modules (Tarjan): [a, b, ..., a]."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_loop(graph, min(g), g) for g in groups]


def _loop(graph: dict[str, dict[str, int]], start: str, group: set[str]) -> list[str]:
    """The shortest way from start back to itself inside its group."""
    paths = {start: [start]}
    queue = [start]
    for v in queue:
        for w in sorted(graph[v]):
            if w == start:
                return paths[v] + [start]
            if w in group and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError("a strongly connected group has a loop")


def long_functions(text: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(name, line, length) of every function longer than limit: from its `def` line to its
    last line (decorators not counted; a nested function counts in its parent too)."""
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                out.append((node.name, node.lineno, length))
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants: prose may write `weight_ih_l{k}[_reverse]`."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


PARAM_NAME = re.compile(r"(?:weight|bias)_(?:ih|hh|hr)_l\d+(?:_reverse)?")


def built_names(text: str) -> list[tuple[int, str]]:
    """(line, what) for every parameter name built or spelled by hand, outside docstrings:
    - an f-string with `_l` just before a field: f"weight_ih_l{k}", f"_l{layer}";
    - an f-string with `_reverse` just after a field: f"{name}_reverse";
    - the string "_reverse" itself (name + "_reverse", "_reverse" if d else "");
    - a string that is a whole layered name: "weight_ih_l0", "bias_hh_l1_reverse".
    Prose that mentions a name inside a sentence ("has no backward (_reverse) twin") passes."""
    tree = ast.parse(text)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            for a, b in zip(parts, parts[1:]):
                literal_a = isinstance(a, ast.Constant) and isinstance(a.value, str)
                literal_b = isinstance(b, ast.Constant) and isinstance(b.value, str)
                if literal_a and a.value.endswith("_l") and isinstance(b, ast.FormattedValue):
                    found.append((node.lineno, f'f"..._l{{...}}" (...{a.value[-12:]!r})'))
                if literal_b and b.value.startswith("_reverse") and isinstance(a, ast.FormattedValue):
                    found.append((node.lineno, 'f"{...}_reverse"'))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value == "_reverse" or PARAM_NAME.fullmatch(node.value):
                found.append((node.lineno, repr(node.value)))
    return found


def _orders() -> set[tuple[str, ...]]:
    """Every framework's gate order of every gated cell, as layout.py states them."""
    return {layout.gate_names(cell, fw) for fw in layout.FRAMEWORKS for cell in layout.CELLS if cell != "rnn"}


def spelled_gate_orders(text: str) -> list[tuple[int, str]]:
    """(line, what) for every gate order written out, outside docstrings: a tuple or list of
    strings equal to one of layout's orders (("i", "f", "g", "o"), ["z", "r", "h"]), or a
    string that is such an order joined by "", ",", ", " or " " ("ifgo", "r, z, n")."""
    orders = _orders()
    joined = {sep.join(o) for o in orders for sep in ("", ",", ", ", " ")}
    tree = ast.parse(text)
    docs = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)) and node.elts:
            items = [e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None for e in node.elts]
            if None not in items and tuple(items) in orders:
                found.append((node.lineno, repr(tuple(items))))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            if node.value in joined:
                found.append((node.lineno, repr(node.value)))
    return found


# ---- the rules on rnn_cli ---------------------------------------------------------------------------


def test_no_import_circle():
    """Catches two modules that import each other, round any loop, lazily or not (views.screen
    <-> views.grad, core.bench <-> formats.bench_onnx, formats.diagnose <-> formats.checkpoint)."""
    mods = modules()
    graph = import_graph({m: (p.read_text(), p.name == "__init__.py") for m, p in mods.items()})
    found = [" -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(loop, loop[1:])) + f" -> {loop[-1]}"
             for loop in circles(graph)]
    assert not found, "import circles inside rnn_cli:\n" + "\n".join(found)


def _external(text: str) -> set[str]:
    """Top-level packages outside rnn_cli that a source imports (anywhere in it)."""
    out = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - {"rnn_cli"}


def test_documents_and_the_core_never_reach_rich():
    """Catches documents.py (the --json documents), core/ or formats/ importing a view or rich
    and typer, directly or through another module: every --json run would then load rich, and
    the numbers could not be driven without the CLI (a view's format_ms borrowed for a document)."""
    mods = modules()
    graph = import_graph({m: (p.read_text(), p.name == "__init__.py") for m, p in mods.items()})
    starts = ["rnn_cli.documents"] + [m for m in mods if m.startswith(("rnn_cli.core.", "rnn_cli.formats."))]
    reached, stack = set(starts), list(starts)
    while stack:
        for target in graph[stack.pop()]:
            if target not in reached:
                reached.add(target)
                stack.append(target)
    edge = sorted(m for m in reached if m.startswith(("rnn_cli.views", "rnn_cli.cli")))
    assert not edge, f"documents/core/formats reach the views or the CLI: {edge}"
    ui = {m: sorted(_external(mods[m].read_text()) & {"rich", "typer"}) for m in reached}
    assert not {m: u for m, u in ui.items() if u}, "documents/core/formats import rich or typer"


def test_no_module_over_500_lines():
    """Catches a module grown into two jobs (views/screen.py was 881 lines)."""
    too_long = {rel(p): n for p in modules().values() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    unexpected = {k: v for k, v in too_long.items() if k not in SPLIT_IN_FLIGHT}
    assert not unexpected, f"modules over {MAX_MODULE_LINES} lines: {unexpected}"


def test_no_function_over_60_lines():
    """Catches a function that cannot be read in one screen (diagram's _full was 92 lines)."""
    found = [f"{rel(p)}:{line} {name} ({n} lines)" for p in modules().values()
             for name, line, n in long_functions(p.read_text())]
    assert not found, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_only_layout_builds_parameter_names():
    """Catches a second place that spells `weight_ih_l{k}[_reverse]` (it was built in five)."""
    found = [f"{rel(p)}:{line} {what}" for p in modules().values()
             if rel(p) != LAYOUT and rel(p) not in NAMES_IN_FLIGHT for line, what in built_names(p.read_text())]
    assert not found, "parameter names built outside core/layout.py (ask layout.param_name):\n" + "\n".join(found)


def test_only_layout_spells_gate_orders():
    """Catches a second copy of a gate order (onnx_export's TORCH_GATES and config's GATE_NAMES were two)."""
    found = [f"{rel(p)}:{line} {what}" for p in modules().values()
             if rel(p) != LAYOUT for line, what in spelled_gate_orders(p.read_text())]
    assert not found, "gate orders spelled outside core/layout.py (ask layout.gate_names):\n" + "\n".join(found)


def test_allow_lists_name_real_modules():
    """Catches an allow-list entry left behind after its module was split or renamed: it would
    excuse whatever takes its path next."""
    paths = {rel(p) for p in modules().values()}
    assert SPLIT_IN_FLIGHT | NAMES_IN_FLIGHT <= paths


# ---- the checkers, on planted code: a checker that finds nothing fails here -------------------------


def test_circles_finds_a_lazy_loop_and_only_loops():
    graph = import_graph({
        "rnn_cli.a": ("from rnn_cli import b\n", False),
        "rnn_cli.b": ("def f():\n    from rnn_cli.c import x\n", False),
        "rnn_cli.c": ("import rnn_cli.a\n", False),
        "rnn_cli.d": ("from rnn_cli import a\n", False),  # into the loop, not part of it
        "rnn_cli": ("", True),
    })
    assert circles(graph) == [["rnn_cli.a", "rnn_cli.b", "rnn_cli.c", "rnn_cli.a"]]
    del graph["rnn_cli.c"]["rnn_cli.a"]
    assert circles(graph) == []


def test_long_functions_counts_from_def_to_last_line():
    body = "".join(f"    x{i} = {i}\n" for i in range(59))
    assert long_functions("@decorator\ndef f():\n" + body) == []  # 60 lines
    assert long_functions("def f():\n" + body + "    return 1\n") == [("f", 1, 61)]


@pytest.mark.parametrize("source, caught", [
    ('n = f"weight_ih_l{k}"', True),
    ('n = f"{kind}_l{k}_reverse"', True),
    ('n = f"{name}_reverse"', True),
    ('n = name + "_reverse"', True),
    ('keys = ("weight_ih_l0", "x")', True),
    ('msg = "layer 0 has no backward (_reverse) twin"', False),
    ('def f():\n    """weight_ih_l{k}[_reverse]: torch\'s names"""', False),
    ('n = f"{a}_l"', False),
])
def test_built_names(source, caught):
    assert bool(built_names(source)) == caught


@pytest.mark.parametrize("source, caught", [
    ('G = ("i", "f", "g", "o")', True),
    ('G = ["z", "r", "h"]', True),
    ('G = "ifgo"', True),
    ('label = "r, z, n"', True),
    ('G = ("i", "f", "o")', False),
    ('def f():\n    """gates i, f, g, o"""', False),
])
def test_spelled_gate_orders(source, caught):
    assert bool(spelled_gate_orders(source)) == caught
