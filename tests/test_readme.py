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


def test_quick_start_is_clone_venv_and_two_commands_and_ci_runs_the_test_command():
    block = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 4
    assert commands[0].startswith("git clone ") and "venv" in commands[1]
    assert commands[2].endswith("rnn-cli torch --layers 2 --bidirectional")
    test_command = commands[3].split("&&")[-1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci


def test_quick_start_tells_cpu_only_users_where_the_small_torch_is():
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in quick
    assert "CUDA" in quick  # what the public index serves on Linux


def test_readme_has_no_internal_vocabulary():
    import re

    assert not re.search(r"\b(issue|target) \d", README, re.I)


def test_readme_outputs_are_what_the_commands_print_now():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "update-readme.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
