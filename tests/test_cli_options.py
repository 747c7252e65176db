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
