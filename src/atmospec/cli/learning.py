"""``atmospec train / evaluate / tune / models``: the learning commands (thin over the API)."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

__all__ = ["register"]


def train_cmd(
    config: str = typer.Option(
        ..., "--config", "-c", help="TOML recipe, e.g. configs/dback24_spex.toml."
    ),
    out: Optional[str] = typer.Option(  # noqa: UP045
        None, "--out", "-o", help="Output folder (default: runs/<name>)."
    ),
    work: Optional[str] = typer.Option(None, help="Folder for training sets and checkpoints."),  # noqa: UP045
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    threads: Optional[int] = typer.Option(None, help="Torch CPU threads (overrides the config)."),  # noqa: UP045
) -> None:
    """Build the training sets of a recipe, train the estimator, evaluate it and save it."""
    from atmospec.learning.recipe import load_recipe, run_recipe

    recipe = load_recipe(config)
    if threads is not None:
        recipe.num_threads = threads
    out_dir = out or f"runs/{recipe.name}"
    _, report = run_recipe(recipe, out_dir, work_dir=work, resume=resume)
    _print_report(report)
    typer.echo(f"model written to {out_dir}/model; report in {out_dir}/evaluation/index.html")


def evaluate_cmd(
    model: str = typer.Argument(
        ..., help="Shipped model name (atmospec models) or a model folder."
    ),
    out: str = typer.Option("evaluation", "--out", "-o", help="Report folder."),
    n_test: Optional[int] = typer.Option(None, help="Test spectra (default: as in the recipe)."),  # noqa: UP045
    work: Optional[str] = typer.Option(None, help="Folder for the rebuilt test set."),  # noqa: UP045
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Evaluate a model on its grid-aware held-out test split (rebuilt from its recipe)."""
    from pathlib import Path

    from atmospec.estimators.base import load_estimator
    from atmospec.learning.evaluation import evaluate
    from atmospec.learning.recipe import Recipe, build_sets
    from atmospec.models import model_path

    path = Path(model) if Path(model).exists() else model_path(model)
    est = load_estimator(path)
    recipe = Recipe.from_record(est.meta_.get("recipe"), str(path))  # its grid checked
    if n_test is not None:
        recipe.n_test = n_test
    recipe.n_train = recipe.n_val = 16  # only the test part is needed; keep the others tiny
    sets = build_sets(recipe, Path(work) if work else Path(out) / "work")
    report = evaluate(
        est,
        sets["test"],
        out_dir=out,
        split=sets["split"].description,
        title=f"{est.meta_.get('name', path.name)}: held-out evaluation",
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        _print_report(report)
        typer.echo(f"report: {out}/index.html")


def tune_cmd(
    config: str = typer.Option(
        ..., "--config", "-c", help="TOML recipe providing data and estimator."
    ),
    trials: int = typer.Option(20, help="Trials run by this process."),
    storage: Optional[str] = typer.Option(None, help="SQLite file or RDB URL (shared study)."),  # noqa: UP045
    study: Optional[str] = typer.Option(None, help="Study name (default: the recipe name)."),  # noqa: UP045
    out: str = typer.Option("tuning", "--out", "-o", help="Output folder."),
    max_epochs: int = typer.Option(30, help="Epochs per trial (Hyperband resource)."),
    timeout: Optional[float] = typer.Option(None, help="Stop after this many seconds."),  # noqa: UP045
) -> None:
    """Tune hyperparameters with Optuna (TPE + Hyperband); the study lives in SQLite or an RDB."""
    from pathlib import Path

    from atmospec._optional import require
    from atmospec.learning.recipe import (
        build_sets,
        load_recipe,
        make_estimator,
        tunable_recipe,
    )
    from atmospec.training.tuning import tune

    require("optuna", "tune")  # before the training sets are built, not after
    recipe = tunable_recipe(load_recipe(config))  # so is an estimator that cannot be tuned
    sets = build_sets(recipe, Path(out) / "work")
    base = dict(recipe.params)
    base.pop("max_cpu_seconds", None)
    base["num_threads"] = recipe.num_threads
    base["n_members"] = 1
    result = tune(
        lambda p: make_estimator(recipe.estimator, {**base, **p}),
        sets["train"].arrays(),
        sets["val"].arrays(),
        sets["train"].fit_kwargs(),
        n_trials=trials,
        storage=storage,
        study_name=study or recipe.name,
        out_dir=out,
        max_epochs=max_epochs,
        timeout=timeout,
        seed=recipe.seed,
    )
    typer.echo(f"best validation loss {result.best_value:.4g} with {result.best_params}")


def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every model shipped with atmospec (brown dwarfs, NPE, molecules, transit)."""
    from atmospec.models import list_models

    rows = list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="pretrained models (atmospec.models.load_model(name))")
    cols = ("name", "aliases", "family", "kind", "grid", "parameters", "held-out RMSE")
    for col in (*cols, "cov68/95", "size"):
        table.add_column(col)
    for r in rows:
        rmse = ", ".join(f"{p} {v:.3g}" for p, v in r["rmse"].items() if v is not None)
        cov = f"{r['coverage68']:.2f}/{r['coverage95']:.2f}" if r["coverage68"] is not None else "-"
        table.add_row(
            r["name"],
            ", ".join(r["aliases"]),
            r["family"],
            r["kind"],
            str(r["grid"] or "-"),
            ", ".join(r["param_names"] or []),
            rmse,
            cov,
            f"{r['bytes'] / 1e6:.1f} MB",
        )
    Console().print(table)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(report.get("title", "evaluation")))
    for col in ("S/N", "param", "R2", "RMSE", "MAE", "bias", "cov68", "cov95"):
        table.add_column(col)
    groups = {"all": report["overall"], **report["by_snr"]}
    for lev, rows in groups.items():
        for p, m in rows.items():
            table.add_row(
                lev,
                p,
                f"{m['r2']:.3f}",
                f"{m['rmse']:.3g}",
                f"{m['mae']:.3g}",
                f"{m['bias']:+.3g}",
                f"{m.get('coverage68', float('nan')):.2f}",
                f"{m.get('coverage95', float('nan')):.2f}",
            )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("tune")(tune_cmd)
    app.command("models")(models_cmd)
