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
