"""Real-data tests of highres: HPF spectra (shared data), muler templates and the solar atlas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atmospec.highres.io import read_hpf, read_muler_template, read_solar_atlas

torch.set_num_threads(1)

pytestmark = pytest.mark.realdata

# Triaud et al. 2013 (A&A 551, A80): WASP-69 systemic velocity -9.628 km/s (barycentric)
WASP69_GAMMA = -9.628


def test_goldilocks_layout(shared_dir) -> None:
    path = next((shared_dir / "hpf").glob("Goldilocks_*.fits"))
    orders = read_hpf(path)
    assert len(orders) == 28 and all(len(o) == 2048 for o in orders)
    # HPF covers 8079-12786 Å (shared/data README)
    assert (
        abs(orders[0].wavelength[0] * 1e4 - 8079) < 2
        and abs(orders[-1].wavelength[-1] * 1e4 - 12786) < 2
    )
    assert orders[0].meta["berv_kms"] is not None


def test_goldilocks_is_in_observatory_frame(shared_dir, muler_dir) -> None:
    """Telluric lines sit at rest in the file's wavelengths: the frame is topocentric."""
    from atmospec.highres.emulator import LineEmulator, train_clone
    from atmospec.highres.extrinsic import ExtrinsicModel
    from atmospec.highres.fit import scan_rv
    from atmospec.highres.linefinder import find_lines
    from atmospec.highres.pipeline import normalize_order

    path = next((shared_dir / "hpf").glob("Goldilocks_*.fits"))
    spec = normalize_order(read_hpf(path, order=3)[0])  # 8416-8525 Å: H2O lines, 12 % deep
    w = spec.wavelength * 1e4
    tel = read_muler_template("telfit")
    tw = tel.wavelength * 1e4
    m = (tw > w[0] - 5) & (tw < w[-1] + 5)
    em = LineEmulator(
        find_lines(tw[m], tel.flux[m], prominence=0.005), profile="pseudo-voigt", device="cpu"
    )
    train_clone(em, tw[m], tel.flux[m], epochs=60)
    good = ~spec.mask
    assert spec.uncertainty is not None
    fl = torch.as_tensor(np.where(good, spec.flux, 1.0))
    wt = torch.as_tensor(good / spec.uncertainty**2)
    ext = ExtrinsicModel(w, vsini=1.0, device="cpu")
    rv, _ = scan_rv(ext, em, fl, wt, np.arange(-40.0, 40.1, 0.5))
    # the barycentric correction of this exposure is about -21.9 km/s: a barycentric frame would
    # put the tellurics near +21.9 km/s; the observatory frame puts them at 0
    assert abs(rv) < 1.5


def test_solar_atlas_components_multiply(splat_dir) -> None:
    """The atlas's total is the product of its solar and atmospheric components."""
    atlas = read_solar_atlas(5875)
    wave = atlas["total"].wavelength
    assert np.all(np.diff(wave) > 0) and abs(wave[0] - 1e4 / 5900) < 1e-3
    product = atlas["solar"].flux * atlas["telluric"].flux
    # each page is scaled independently: compare after matching the medians
    ratio = atlas["total"].flux / product
    assert np.std(ratio) / np.median(ratio) < 0.02


def test_cli_clone_then_fit_wasp69(tmp_path, shared_dir, muler_dir) -> None:
    """End to end through the CLI: clone PHOENIX over the WASP-69 order, then fit the star."""
    import json

    from typer.testing import CliRunner

    from atmospec.cli.main import app

    runner = CliRunner()
    clone_dir, fit_dir = tmp_path / "clone", tmp_path / "fit"
    r = runner.invoke(
        app,
        [
            "--quiet", "highres", "clone", "phoenix", "--band", "8636", "8788", "--epochs", "60",
            "--rounds", "1", "--profile", "pseudo-voigt", "--device", "cpu",
            "-o", str(clone_dir),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    for name in ("clone/model.json", "clone_lines.ecsv", "clone.json", "clone.png"):
        assert (clone_dir / name).is_file()
    r = runner.invoke(
        app,
        [
            "--quiet", "highres", "fit", str(shared_dir / "hpf" / "WASP_69_hpf_stack.fits"),
            "--clone", str(clone_dir / "clone"), "--epochs", "40",
            "--rv-range", "-60", "60", "--device", "cpu", "-o", str(fit_dir),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    for name in ("fit_params.json", "fit_lines.ecsv", "fit.png"):
        assert (fit_dir / name).is_file()
    out = json.loads((fit_dir / "fit_params.json").read_text())
    rv, berv = out["params"]["rv"], out["meta"]["berv_kms"]
    # In the observatory frame the star would sit at gamma - BERV = -9.63 + 27.52 = +17.9 km/s.
    # The fitted RV instead agrees with the barycentric systemic velocity: the stacked flux of
    # this file was moved to the barycentric frame when stacked (its wavelength column is the
    # fixed HPF solution). Tolerance 1.5 km/s: the 10,000 K PHOENIX clone is a poor match to a
    # K5 star (template mismatch), far above the Laplace error.
    assert abs(rv - WASP69_GAMMA) < 1.5
    assert abs(rv - (WASP69_GAMMA - berv)) > 20
    # WASP-69 is a slow rotator (vsini 2.2 ± 0.4 km/s, Anderson et al. 2014): below the HPF
    # resolution element c/R = 5.5 km/s
    assert out["params"]["vsini"] < 5.5
    assert np.isfinite(out["errors"]["rv"]) and out["errors"]["rv"] > 0
    # the resolving power stays within its default bounds around HPF's R = 55,000
    assert 45_000 - 1e-6 <= out["params"]["resolution"] <= 65_000 + 1e-6


def test_telfit_template_is_already_at_hpf_resolution(shared_dir, muler_dir) -> None:
    """The muler TelFit template's weak water lines are as wide as those in the real HPF
    A-star spectra (which include the instrument), so the template is already convolved with
    HPF's profile: fitting it through the instrument again would broaden it twice, which is
    why :func:`remove_instrument` is applied first. (Native water lines near 9,500 Å are
    Doppler ~0.8 km/s FWHM plus ~3.5 km/s of pressure broadening at the HET's altitude,
    narrower than HPF's 5.5 km/s resolution element.)"""
    from scipy.signal import find_peaks, peak_widths

    from atmospec.highres.io import read_hpf, read_muler_template
    from atmospec.highres.pipeline import normalize_order
    from atmospec.highres.standards import TELFIT_TEMPLATE_RESOLUTION, remove_instrument

    def weak_fwhm_kms(w: np.ndarray, f: np.ndarray) -> float:
        p, _ = find_peaks(-f, prominence=0.05)
        width = peak_widths(-f, p, rel_height=0.5)[0]
        step = np.median(np.diff(w) / w[1:]) * 299_792.458
        depth = 1.0 - f[p]
        sel = (depth > 0.05) & (depth < 0.3)  # weak: the width is the profile's, not saturation
        return float(np.median(width[sel]) * step)

    tel = read_muler_template("telfit")
    w = tel.wavelength * 1e4
    band = (w > 9468.0) & (w < 9590.0)  # HPF order 11, inside the 9,400 Å water band
    template = weak_fwhm_kms(w[band], tel.flux[band] / np.percentile(tel.flux[band], 99))
    observed = []
    for f in sorted((shared_dir / "hpf").glob("Goldilocks_*.fits")):
        s = normalize_order(read_hpf(f, order=11)[0])
        g = ~s.mask
        observed.append(weak_fwhm_kms(s.wavelength[g] * 1e4, s.flux[g]))
    inst = 299_792.458 / TELFIT_TEMPLATE_RESOLUTION
    assert template > inst  # wider than the instrument alone
    assert template == pytest.approx(np.mean(observed), rel=0.15)
    # removing the instrument leaves lines narrower than the resolution element
    from atmospec.highres.linefinder import LineList

    ll = LineList(
        np.array([9500.0]),
        np.array([0.01]),
        np.array([9500.0 * template / 299_792.458 / 2.3548]),
        np.array([0.0]),
    )
    native = remove_instrument(ll, TELFIT_TEMPLATE_RESOLUTION).fwhm[0] / 9500.0 * 299_792.458
    assert native < 0.7 * inst
