"""Every command's --help explains every option and argument (issue 17 item 9): the test walks the Typer app."""
from __future__ import annotations

import click
import typer.main
from typer.testing import CliRunner

from jleval.cli import app


def _commands(group: click.Command, path=()):
    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, (*path, name))


def test_every_option_and_argument_has_help_text():
    root = typer.main.get_command(app)
    missing = []
    for path, cmd in _commands(root):
        if not (cmd.help or "").strip():
            missing.append(f"jleval {' '.join(path)}: the command itself")
        for p in cmd.params:
            if not (getattr(p, "help", None) or "").strip():
                missing.append(f"jleval {' '.join(path)} {p.opts[0] if p.opts else p.name}")
    assert not missing, "no --help text for:\n" + "\n".join(missing)


def test_help_renders_for_every_command():
    root = typer.main.get_command(app)
    runner = CliRunner()
    for path, _ in _commands(root):
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, (path, r.output)


def _bracketed(text: str) -> list[str]:
    """Bracketed words in a help text ("[run]", "[[model]]", "jleval[wandb]"): what Rich markup would swallow."""
    import re

    return re.findall(r"\[+[^\]\s]+\]+", text or "")


def test_help_shows_every_bracketed_word():
    """A help string's "[run]" or "[[model]]" is printed as written, never read as markup and dropped."""
    root = typer.main.get_command(app)
    runner = CliRunner()
    lost, seen = [], 0
    for path, cmd in _commands(root):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        words = [w for t in texts for w in _bracketed(t)]
        if not words:
            continue
        out = " ".join(runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output.split())
        seen += len(words)
        lost += [f"jleval {' '.join(path)}: {w}" for w in words if w not in out]
    assert seen >= 3, "the sweep, tasks and wandb help texts have bracketed words"
    assert not lost, "bracketed words missing from --help:\n" + "\n".join(lost)
