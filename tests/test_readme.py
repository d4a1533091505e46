"""The README documents every command and every option the CLI has, and its quick start
matches what CI runs."""

from pathlib import Path

import pytest
import typer.main

from rnn_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
GROUP = typer.main.get_command(app)


@pytest.mark.parametrize("name", sorted(GROUP.commands))
def test_every_command_is_in_the_readme(name):
    assert f"rnn-cli {name}" in README


@pytest.mark.parametrize(
    "name,option",
    [
        (name, opt)
        for name, command in sorted(GROUP.commands.items())
        for param in command.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ],
)
def test_every_option_is_in_the_readme(name, option):
    assert f"`{option}" in README or f", `{option}" in README, f"{name} {option} is not documented"


def test_quick_start_is_two_commands_and_ci_runs_the_test_command():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2
    assert commands[0].endswith("rnn-cli torch --layers 2 --bidirectional")
    test_command = commands[1].split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci
