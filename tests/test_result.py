"""A RunResult is a value: made whole by rnn_cli.core.runs, with every check the run was asked
for attached when it is built, and never changed after."""

from __future__ import annotations

import dataclasses

import pytest

from rnn_cli.core import runs
from rnn_cli.core.config import RunConfig

CFG = RunConfig(cell="gru", num_layers=2, bidirectional=True, batch=3, lengths=(4, 2, 3), pack=False)


@pytest.mark.parametrize("extras, present", [
    (runs.Extras(), {"sources"}),
    (runs.Extras(recipes=True), {"sources", "recipes"}),
    (runs.Extras(padding=True), {"sources", "padding_effect"}),
    (runs.Extras(recipes=True, padding=True, grad="last"), {"sources", "recipes", "padding_effect", "gradients", "upstream"}),
])
def test_a_run_comes_back_with_exactly_the_checks_asked_for(extras, present):
    """Bug: a check the flags asked for left unset (the section silently missing from the screen
    and the JSON), or one computed that nobody asked for (time and memory spent for nothing).
    --no-pack with lengths, so the padding check applies."""
    result = runs.run("manual", CFG, extras=extras)
    checks = ("sources", "recipes", "padding_effect", "gradients", "upstream")
    assert {name for name in checks if getattr(result, name) is not None} == present
    # one h_n source per layer and direction, and as many c_n ones for an LSTM only (GRU: none)
    assert [s.index for s in result.sources] == list(range(CFG.num_layers * CFG.D))


def test_a_result_cannot_be_changed_after_it_is_built():
    """Bug: a view or a later step writing over a result's checks (`result.recipes = ...`), so
    the screen and the JSON could disagree about one run."""
    result = runs.run("manual", CFG, extras=runs.Extras(recipes=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.recipes = []
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.sources = None
