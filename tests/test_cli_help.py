"""Every command's --help reads as text for people: no printf escapes left in it (click prints help verbatim)."""

from __future__ import annotations

import click
from click.testing import CliRunner

from bigseg.cli import cli


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_help_of_every_command_has_no_printf_escapes():
    runner = CliRunner()
    names = list(_commands(cli))
    assert len(names) > 15
    for path in names:
        out = runner.invoke(cli, [*path, "--help"])
        assert out.exit_code == 0, (path, out.output)
        assert "%%" not in out.output, (path, [ln for ln in out.output.splitlines() if "%%" in ln])
