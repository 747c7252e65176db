"""Options every command spells the same way."""

from __future__ import annotations

import typer

from atmospec.cli.main import app


def _commands(group, prefix=""):
    for name, cmd in getattr(group, "commands", {}).items():
        yield f"{prefix}{name}", cmd
        yield from _commands(cmd, f"{prefix}{name} ")


def test_every_out_option_also_answers_to_dash_o():
    # `atmospec molecules F -o D` once read -o as a spectrum file, because that command alone
    # spelled its output folder --out only. Every command with --out takes -o too.
    missing = []
    n = 0
    for name, cmd in _commands(typer.main.get_command(app)):
        for p in getattr(cmd, "params", []):
            if "--out" in getattr(p, "opts", []):
                n += 1
                if "-o" not in p.opts:
                    missing.append(name)
    assert n >= 20, f"only {n} commands with --out found: the walk over commands broke"
    assert not missing, f"--out without -o: {missing}"


def test_every_command_summary_is_one_line():
    # The command lists of `atmospec --help` print a docstring's first paragraph with its
    # line breaks as written: a summary wrapped over several source lines showed up as
    # ragged lines ("... set them beside" / "chi-square fits ..."). Each summary is one line.
    import inspect

    ragged = []
    n = 0
    for name, cmd in _commands(typer.main.get_command(app)):
        if getattr(cmd, "commands", None) or cmd.callback is None:
            continue
        n += 1
        doc = inspect.getdoc(cmd.callback) or ""
        if "\n" in doc.split("\n\n")[0]:
            ragged.append(name)
    assert n >= 30, f"only {n} commands found: the walk over commands broke"
    assert not ragged, f"summaries over several lines: {ragged}"
