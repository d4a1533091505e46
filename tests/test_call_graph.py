"""Issue 20's measure, held: `rnn-cli manual`, followed from manual_command through the code
(docs/call-graph.py), goes down the layers. The one call that climbs back up is the progress
bar the CLI hands the numpy loop (a callback, views.progress.LazyProgress); nothing else below
the edge calls a higher layer."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "call-graph.py"


def _script():
    spec = importlib.util.spec_from_file_location("call_graph", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv", [["manual"], ["manual", "--json"], ["manual", "--grad", "--cell", "lstm"]])
def test_manual_goes_down_the_layers(argv):
    """Bug: a core module calling up into formats, views or the CLI (a file read, a note
    printed or a view drawn from the numbers' layer), or the CLI's flag classes doing the
    core's work again; the issue allows at most 5 climbs back up."""
    graph = _script()
    tracer = graph.measure(argv)
    assert tracer.paths, "manual_command was never called"
    climbs = graph.summary(tracer.paths)["climbs"]
    assert len(climbs) <= 5
    assert [tracer.paths[p] for p in climbs if not tracer.paths[p].endswith("LazyProgress.__call__")] == []
