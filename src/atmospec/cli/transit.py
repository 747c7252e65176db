"""``atmospec transit``: simulate Ariel-like visits, reduce them to spectra, score them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]

transit_app = typer.Typer(
    help="Transit time series (Ariel raw format) to transmission spectra with error bars.",
    no_args_is_help=True,
)

_METHODS = ("poly", "pca", "gp", "cnn")


@transit_app.command("simulate")
def simulate_cmd(
    out: Path = typer.Option(..., "--out", help="Dataset folder to write (Ariel raw layout)."),
    planets: int = typer.Option(10, "--planets", min=1, help="Number of planets."),
    seed: int = typer.Option(0, "--seed", help="Random seed (planet i uses stream (seed, i))."),
    exposures: int = typer.Option(400, "--exposures", min=2, help="AIRS-CH0 CDS exposures."),
    clean: bool = typer.Option(False, "--clean", help="No noise and no systematics."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Simulate planets with known injected spectra in the Ariel Data Challenge raw format."""
    from dataclasses import replace

    from atmospec.transit.simulator import SimulationConfig, simulate_dataset

    config = SimulationConfig(n_exposures=exposures)
    if clean:  # files hold uint16, so the ADC rounding stays
        config = replace(config.clean(), quantize=True)
    simulate_dataset(out, planets, config, seed=seed, progress=not quiet)
    if not quiet:
        typer.echo(f"wrote {planets} planets to {out}")


@transit_app.command("reduce")
def reduce_cmd(
    planet_dir: Path = typer.Argument(..., help="ROOT/train/PLANET_ID folder."),
    method: str = typer.Option("gp", "--method", help="poly | pca | gp | cnn"),
    out: Path = typer.Option(Path("."), "--out", help="Output folder."),
    model: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        "--model",
        help="CNN model folder (from `atmospec transit train-cnn`); default: the shipped one.",
    ),
    sigma_scale: float = typer.Option(1.0, "--sigma-scale", help="Factor applied to sigmas."),
    sigma_floor: float = typer.Option(0.0, "--sigma-floor", help="Added in quadrature."),
    sigma_shared_scale: float = typer.Option(
        1.0,
        "--sigma-shared-scale",
        help="Factor on the white-light (shared) part of the sigma (gp and cnn); --sigma-scale "
        "then acts on each bin's own part.",
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write diagnostic PNGs."),
) -> None:
    """Calibrate one planet's raw frames and measure its transmission spectrum.

    Writes PLANET_ID_METHOD.ecsv (wavelength, depth, sigma) and, unless --no-figures, the
    white-light, residual and spectrum figures as PNG.
    """
    from atmospec.transit.calibration import calibrate
    from atmospec.transit.detrenders import make_detrender
    from atmospec.transit.io import read_planet

    if method not in _METHODS:
        raise typer.BadParameter(f"unknown method {method!r}; choose one of {', '.join(_METHODS)}")
    det = make_detrender(method, model=model)
    if (sigma_scale, sigma_shared_scale, sigma_floor) != (1.0, 1.0, 0.0):
        det.set_sigma_model(sigma_scale, sigma_shared_scale, sigma_floor)
    obs = calibrate(read_planet(planet_dir))
    spec = det.fit(obs)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{obs.planet_id}_{method}"
    path = spec.write(out / f"{stem}.ecsv")
    if figures:
        from atmospec._fileio import atomic_path

        for name, fig in zip(("white", "residuals", "spectrum"), det.diagnose(), strict=True):
            with atomic_path(out / f"{stem}_{name}.png") as tmp:
                fig.savefig(tmp, format="png", dpi=110)
    typer.echo(str(path))


@transit_app.command("train-cnn")
def train_cnn_cmd(
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    kind: str = typer.Option("1d", "--kind", help="1d | 2d"),
    planets: int = typer.Option(200, "--planets", min=4, help="Simulated training planets."),
    calibration_planets: int = typer.Option(
        32,
        "--calibration-planets",
        min=0,
        help="Further simulated planets (not trained on) on which the sigma model is fitted.",
    ),
    epochs: int = typer.Option(40, "--epochs", min=1),
    seed: int = typer.Option(1, "--seed"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a transit CNN on simulated planets (in memory), calibrate its sigmas on other
    simulated planets, and save it (safetensors + JSON with the provenance)."""
    from dataclasses import asdict

    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from atmospec.transit.calibration import calibrate
    from atmospec.transit.detrenders.base import sigma_model_from
    from atmospec.transit.detrenders.cnn import CNNConfig, CNNDetrender, cnn_features
    from atmospec.transit.simulator import SimulationConfig, simulate_planet

    torch.set_num_threads(1)
    sim = SimulationConfig()
    feats, depths, held_out = [], [], []
    total = planets + calibration_planets
    for i in tqdm(range(total), desc="simulating", disable=quiet):
        raw, truth = simulate_planet(str(i), sim, np.random.default_rng([seed, i]))
        obs = calibrate(raw)
        feats.append(cnn_features(obs))
        depths.append(truth.depth)
        if i >= planets:
            held_out.append(obs)
    det = CNNDetrender(CNNConfig(kind=kind, epochs=epochs, seed=seed))
    stats = det.train_features(feats[:planets], depths[:planets], progress=not quiet)
    record: dict[str, object] = {"training_planets": planets, "simulation": asdict(sim), **stats}
    if calibration_planets:
        specs = [det.fit(o, f) for o, f in zip(held_out, feats[planets:], strict=True)]
        model = sigma_model_from(np.concatenate(depths[planets:]), specs)
        det.set_sigma_model(*model)
        record["sigma_calibration"] = {
            "planets": calibration_planets,
            "stream": f"simulate_planet rng([seed, i]) for i in {planets}..{total - 1}",
            "scale_own_shared_floor": list(model),
        }
    det.save(out, **record)
    typer.echo(f"saved {det.name} to {out} (validation NLL {stats['val_nll']:.3f})")


@transit_app.command("score")
def score_cmd(
    predictions: list[Path] = typer.Argument(..., help="ECSV spectra written by `reduce`."),
    labels: Path = typer.Option(..., "--labels", help="A *_labels.csv with the true depths."),
    reference: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--reference", help="Training labels for the reference (default: --labels)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Ariel 2024 GLL score, RMSE and 68% coverage of spectra against known depths."""
    import numpy as np

    from atmospec.errors import FileFormatError
    from atmospec.transit.detrenders.base import DepthSpectrum
    from atmospec.transit.io import read_labels
    from atmospec.transit.scoring import ariel_score, coverage, rmse_ppm

    truth = read_labels(labels.parent, labels.name.removesuffix("_labels.csv"))
    ref = (
        truth
        if reference is None
        else read_labels(reference.parent, reference.name.removesuffix("_labels.csv"))
    )
    ref_all = np.concatenate(list(ref.values()))
    ys, mus, sgs = [], [], []
    for p in predictions:
        spec = DepthSpectrum.read(p)
        if spec.planet_id not in truth:
            raise FileFormatError(f"{p}: planet {spec.planet_id} is not in {labels}")
        ys.append(truth[spec.planet_id])
        mus.append(spec.depth)
        sgs.append(spec.sigma)
    y, mu, sg = np.concatenate(ys), np.concatenate(mus), np.concatenate(sgs)
    result = {
        "planets": len(predictions),
        "gll_score": ariel_score(
            y, mu, sg, ref_mean=float(ref_all.mean()), ref_sigma=float(ref_all.std())
        ),
        "rmse_ppm": rmse_ppm(y, mu),
        "coverage68": coverage(y, mu, sg),
    }
    if as_json:
        typer.echo(json.dumps(result))
    else:
        for k, v in result.items():
            typer.echo(f"{k:>12}: {v:.4f}" if isinstance(v, float) else f"{k:>12}: {v}")


def register(app: typer.Typer) -> None:
    app.add_typer(transit_app, name="transit")
