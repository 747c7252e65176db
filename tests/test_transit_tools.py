"""Scoring, the CNN detrender (train / save / load) and the ``atmospec transit`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from atmospec.errors import ModelFileError
from atmospec.transit.calibration import calibrate
from atmospec.transit.detrenders.base import DepthSpectrum
from atmospec.transit.detrenders.cnn import CNNConfig, CNNDetrender, cnn_features
from atmospec.transit.scoring import ariel_score, coverage, gaussian_log_likelihood
from atmospec.transit.simulator import SimulationConfig, simulate_planet

TINY = SimulationConfig(n_exposures=80, airs_cols=20, airs_rows=8, fgs_size=6)


def test_ariel_score_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(0.005, 0.015, size=(4, 10))
    ref_mean, ref_sigma = float(y.mean()), float(y.std())
    # the ideal prediction (truth, 10 ppm) scores 1, the reference scores 0
    assert ariel_score(y, y, np.full(y.shape, 1e-5), ref_mean=ref_mean, ref_sigma=ref_sigma) == 1.0
    assert (
        ariel_score(
            y,
            np.full(y.shape, ref_mean),
            np.full(y.shape, ref_sigma),
            ref_mean=ref_mean,
            ref_sigma=ref_sigma,
        )
        == 0.0
    )
    # an unbiased prediction with sigma s and z ~ N(0,1) errors: the expected score is
    # [ln(s_ref/s) + (z_ref^2 - 1)/2] / [ln(s_ref/1e-5) + (z_ref^2 - 1)/2]-ish; check direction
    s = 1e-4
    mu = y + rng.normal(0, s, y.shape)
    sc = ariel_score(y, mu, np.full(y.shape, s), ref_mean=ref_mean, ref_sigma=ref_sigma)
    gll = gaussian_log_likelihood(y, mu, np.full(y.shape, s))
    gll_ref = gaussian_log_likelihood(y, np.full(y.shape, ref_mean), np.full(y.shape, ref_sigma))
    gll_ideal = gaussian_log_likelihood(y, y, np.full(y.shape, 1e-5))
    assert sc == pytest.approx((gll - gll_ref) / (gll_ideal - gll_ref))
    assert 0.3 < sc < 0.9
    assert coverage(y, mu, np.full(y.shape, 1e-9)) < 0.05


def test_depth_spectrum_ecsv_round_trip(tmp_path: Path) -> None:
    s = DepthSpectrum(
        np.array([0.7, 2.0, 3.0]),
        np.array([0.010, 0.0102, 0.0101]),
        np.array([5e-5, 8e-5, 9e-5]),
        planet_id="42",
        method="gp",
    )
    back = DepthSpectrum.read(s.write(tmp_path / "s.ecsv"))
    np.testing.assert_allclose(back.depth, s.depth)
    assert back.planet_id == "42" and back.method == "gp"
    assert s.to_spectrum().uncertainty is not None


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_cnn_trains_saves_and_reloads(tmp_path: Path, kind: str) -> None:
    import torch

    torch.set_num_threads(1)
    obs, depths = [], []
    for i in range(8):
        raw, truth = simulate_planet(str(i), TINY, np.random.default_rng([5, i]))
        obs.append(calibrate(raw))
        depths.append(truth.depth)
    feats = [cnn_features(o) for o in obs]
    det = CNNDetrender(CNNConfig(kind=kind, epochs=3, width=8, seed=0))
    stats = det.train_features(feats[:6], depths[:6])
    assert np.isfinite(stats["val_nll"])
    spec = det.fit(obs[7])
    assert spec.depth.shape == depths[7].shape and (spec.sigma > 0).all()
    # the white-light depth anchors the prediction: within 20% of the true mean depth
    assert abs(spec.depth.mean() / depths[7].mean() - 1) < 0.2
    again = CNNDetrender.load(det.save(tmp_path / "m"))
    np.testing.assert_allclose(again.fit(obs[7]).depth, spec.depth, rtol=1e-6)
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["config"]["kind"] == kind and "provenance" in meta
    (tmp_path / "m" / "weights.safetensors").unlink()
    with pytest.raises(ModelFileError, match="weights.safetensors"):
        CNNDetrender.load(tmp_path / "m")


def test_cli_simulate_reduce_score(tmp_path: Path) -> None:
    from atmospec.cli.main import app

    runner = CliRunner()
    data = tmp_path / "data"
    r = runner.invoke(
        app,
        [
            "--quiet",
            "transit",
            "simulate",
            "--planets",
            "2",
            "--out",
            str(data),
            "--seed",
            "3",
            "--exposures",
            "120",
        ],
    )
    assert r.exit_code == 0, r.output
    outs = []
    for pid in ("3000000", "3000001"):
        r = runner.invoke(
            app,
            [
                "transit",
                "reduce",
                str(data / "train" / pid),
                "--method",
                "poly",
                "--out",
                str(tmp_path / "out"),
            ],
        )
        assert r.exit_code == 0, r.output
        outs.append(r.output.strip().splitlines()[-1])
    assert (tmp_path / "out" / "3000000_poly_spectrum.png").exists()
    r = runner.invoke(
        app, ["transit", "score", *outs, "--labels", str(data / "train_labels.csv"), "--json"]
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["planets"] == 2 and 0.0 <= res["gll_score"] <= 1.0 and res["rmse_ppm"] > 0
    r = runner.invoke(
        app,
        [
            "transit",
            "reduce",
            str(data / "train" / "3000000"),
            "--method",
            "cnn",
            "--model",
            str(tmp_path / "no-such-model"),
        ],
    )
    assert r.exit_code != 0
    # the GP and (when shipped) the default CNN run from the CLI and report both sigma parts
    from atmospec.models import list_models

    shipped = {m["name"] for m in list_models()}
    methods = ["gp"] + (["cnn"] if "transit-cnn1d" in shipped else [])
    for method in methods:
        r = runner.invoke(
            app,
            [
                "transit",
                "reduce",
                str(data / "train" / "3000000"),
                "--method",
                method,
                "--out",
                str(tmp_path / "out"),
                "--no-figures",
            ],
        )
        assert r.exit_code == 0, r.output
        spec = DepthSpectrum.read(r.output.strip().splitlines()[-1])
        assert spec.meta["white_depth_sigma"] > 0 and np.all(spec.sigma > 0)


def test_2d_cnn_saved_without_arch2d_loads_as_the_first_architecture(tmp_path: Path) -> None:
    import torch

    from atmospec.serialization import load_arrays, save_arrays
    from atmospec.transit.detrenders.cnn import _build

    det = CNNDetrender(CNNConfig(kind="2d", width=8, arch2d=1))
    torch.manual_seed(0)
    det.net_ = _build(det.config)
    det.save(tmp_path / "new")
    record, arrays = load_arrays(tmp_path / "new")
    assert record["config"]["arch2d"] == 1
    # a record written before the field existed (resealed, so only the field is missing)
    old = {
        k: v
        for k, v in record.items()
        if k not in ("format", "format_version", "checksum", "weights_sha256")
    }
    old["config"] = {k: v for k, v in record["config"].items() if k != "arch2d"}
    save_arrays(tmp_path / "old", old, arrays)
    back = CNNDetrender.load(tmp_path / "old")
    assert back.config.arch2d == 1 and back.config.kind == "2d"
    for k, v in det.net_.state_dict().items():
        assert torch.equal(v, back.net_.state_dict()[k]), k
    # the second (default) architecture has other layers: its weights are refused for arch 1
    save_arrays(
        tmp_path / "other",
        old,
        {
            f"net.{k}": v.numpy()
            for k, v in _build(CNNConfig(kind="2d", width=8)).state_dict().items()
        },
    )
    with pytest.raises(ModelFileError, match="unreadable CNN model"):
        CNNDetrender.load(tmp_path / "other")


@pytest.mark.parametrize("kind", ["1d", "2d"])
def test_shipped_cnn_is_small_calibrated_and_runs(kind: str) -> None:
    from atmospec.models import list_models, model_path
    from atmospec.transit.detrenders import make_detrender

    if f"transit-cnn{kind}" not in {m["name"] for m in list_models()}:
        pytest.skip(f"no shipped {kind} transit CNN in this build")
    folder = model_path(f"transit-cnn{kind}")
    # the issue allows a shipped model only below 3 MB
    assert sum(f.stat().st_size for f in folder.iterdir()) < 3_000_000
    meta = json.loads((folder / "model.json").read_text())
    assert meta["provenance"]["training_planets"] > 0
    assert meta["provenance"]["sigma_calibration"]["planets"] > 0
    det = make_detrender(f"cnn{kind}")  # what `transit reduce --method cnn1d|cnn2d` loads
    assert isinstance(det, CNNDetrender)
    assert det.config.kind == kind and det.name == f"cnn{kind}"
    assert det.sigma_scale > 0 and det.sigma_shared_scale > 0
    raw, truth = simulate_planet("9", TINY, np.random.default_rng([17, 0]))
    spec = det.fit(calibrate(raw))
    assert spec.depth.shape == truth.depth.shape and np.all(spec.sigma > 0)
    # the white-light anchor keeps even a small visit within 20% of the mean depth
    assert abs(spec.depth.mean() / truth.depth.mean() - 1) < 0.2


def test_planet_nll_is_the_multivariate_gaussian_nll() -> None:
    import torch

    from atmospec.transit.detrenders.cnn import _planet_nll

    g = torch.Generator().manual_seed(0)
    out = torch.randn(3, 5, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 5, generator=g, dtype=torch.float64)
    s_white = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    # direct: covariance diag(exp(2 ln s)) + s_white^2 (all bins of a planet share it),
    # averaged per bin, with the constant ln(2 pi)/2 the closed form leaves out
    ref = []
    for b in range(3):
        cov = torch.diag(torch.exp(2 * out[b, :, 1])) + s_white[b] ** 2
        mvn = torch.distributions.MultivariateNormal(out[b, :, 0], covariance_matrix=cov)
        ref.append(-mvn.log_prob(y[b]) / 5 - 0.5 * np.log(2 * np.pi))
    assert float(_planet_nll(out, y, s_white)) == pytest.approx(float(torch.stack(ref).mean()))


def test_sigma_model_coverage_target_holds_on_other_planets() -> None:
    """Heavy-tailed errors (Student t, 3 dof, per bin and per planet): the likelihood's best
    sigma model over-covers (the tails widen it), the coverage target brings the 68 %
    intervals to 68 % on the calibration planets and on planets it never saw."""
    from atmospec.transit.detrenders.base import sigma_model_from

    rng = np.random.default_rng(5)

    def planets(n: int) -> tuple[np.ndarray, list[DepthSpectrum]]:
        ys, specs = [], []
        for _ in range(n):
            own = rng.uniform(50e-6, 150e-6, 60)
            white = rng.uniform(20e-6, 60e-6)
            y = own * rng.standard_t(3, 60) + white * rng.standard_t(3)
            meta = {"sigma_relative": own, "white_depth_sigma": white}
            specs.append(DepthSpectrum(np.arange(60.0), np.zeros(60), np.hypot(own, white),
                                       meta=meta))  # fmt: skip
            ys.append(y)
        return np.concatenate(ys), specs

    def cover(model: tuple[float, float, float], y: np.ndarray, specs: list) -> float:
        a, b, c = model
        s = np.concatenate([np.sqrt((a * sp.meta["sigma_relative"]) ** 2
                                    + (b * sp.meta["white_depth_sigma"]) ** 2 + c**2)
                            for sp in specs])  # fmt: skip
        return coverage(y, 0.0, s)

    y_cal, cal = planets(300)
    y_new, new = planets(300)
    lik = sigma_model_from(y_cal, cal, "likelihood")
    cov = sigma_model_from(y_cal, cal, "coverage")
    assert cover(lik, y_cal, cal) > 0.71  # t(3): the likelihood's sigma covers too much
    assert abs(cover(cov, y_cal, cal) - 0.68) < 0.005
    assert abs(cover(cov, y_new, new) - 0.68) < 0.02
    with pytest.raises(ValueError, match="coverage"):
        sigma_model_from(y_cal, cal, "median")
