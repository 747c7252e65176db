"""``atmospec demo``: the main job, end to end on the embedded data."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def demo_cmd(
    out: Path = typer.Option(Path("atmospec-demo"), "--out", "-o", help="Output folder."),
    n_field: int = typer.Option(12, "--n-field", help="L and T field dwarfs from the library."),
    nested: bool = typer.Option(True, "--nested/--no-nested", help="Nested sampling of HD 3651B."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing."),
) -> None:
    """Predict HD 3651B, GJ 570D and field L/T dwarfs with the learned models, set them beside
    chi-square fits and literature values, and write OUT/report.html."""
    from atmospec.demo import run_demo

    run_demo(out, quiet=quiet, n_field=n_field, nested=nested, seed=seed)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)
