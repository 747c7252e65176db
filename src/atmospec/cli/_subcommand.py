"""Parsing the arguments of a typer sub-application run by hand from a parent command."""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["parse_subcommand"]


def parse_subcommand(app: typer.Typer, prog: str, args: list[str]) -> dict[str, Any]:
    """The parameters of ``app`` parsed from ``args``; ``--help`` exits 0, a usage error
    prints click's message and exits 2 (as a typer command does).

    Example:
        >>> sub = typer.Typer()
        >>> @sub.command()
        ... def main(n: int = 1) -> None: ...
        >>> parse_subcommand(sub, "demo", ["--n", "3"])["n"]
        3
    """
    import click

    cmd = typer.main.get_command(app)
    try:
        ctx = cmd.make_context(prog, list(args))
    except click.exceptions.Exit:
        raise typer.Exit() from None
    except click.ClickException as err:
        err.show()
        raise typer.Exit(2) from None
    return dict(ctx.params)
