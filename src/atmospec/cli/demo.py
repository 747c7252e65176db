"""``atmospec demo``: the main job, end to end on the embedded data."""

from __future__ import annotations

from pathlib import Path

import typer

from atmospec.cli._checks import SEED_MAX

__all__ = ["register"]


def demo_cmd(
    out: Path = typer.Option(Path("atmospec-demo"), "--out", "-o", help="Output folder."),
    n_field: int = typer.Option(12, "--n-field", help="L and T field dwarfs from the library."),
    nested: bool = typer.Option(True, "--nested/--no-nested", help="Nested sampling of HD 3651B."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Random seed."),
) -> None:
    """Predict benchmark brown dwarfs beside chi-square fits and literature; write OUT/report.html.

    HD 3651B, GJ 570D and field L/T dwarfs of the SpeX library, with the learned models.

    ``atmospec --quiet demo`` prints only warnings and errors.
    """
    from atmospec.cli._console import summary_console
    from atmospec.demo import run_demo

    result = run_demo(out, n_field=n_field, nested=nested, seed=seed)
    console = summary_console(width=None if summary_console().is_terminal else 150)
    console.print(result.benchmark_table())
    if result.report is not None:
        console.print(f"open {result.report}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
