"""Semi-empirical transfer of a template clone to a star it does not match."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atmospec.highres.emulator import LineEmulator
from atmospec.highres.extrinsic import C_KMS, ExtrinsicModel
from atmospec.highres.linefinder import LineList
from atmospec.highres.transfer import TransferConfig, line_table, transfer

# a "star" of six lines; the "template" has three of them at the right rest wavelengths with
# wrong strengths and widths, plus one line the star does not have (at 8712.0)
STAR = LineList(
    np.array([8702.0, 8704.5, 8707.0, 8709.3, 8713.5, 8716.0]),
    np.array([0.020, 0.012, 0.030, 0.008, 0.015, 0.010]),
    np.array([0.035, 0.035, 0.040, 0.035, 0.035, 0.035]),
    np.array([0.004, 0.004, 0.005, 0.004, 0.004, 0.004]),
)
TEMPLATE = LineList(
    np.array([8702.0, 8707.0, 8712.0, 8716.0]),
    np.array([0.010, 0.060, 0.020, 0.005]),
    np.array([0.080, 0.080, 0.080, 0.080]),
    np.array([0.004, 0.004, 0.004, 0.004]),
)
RV, VSINI, NOISE = 12.0, 4.0, 2e-3


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    w = np.linspace(8700.0, 8718.0, 600)
    truth = LineEmulator(STAR, device="cpu")
    ext = ExtrinsicModel(w, rv=RV, vsini=VSINI, resolution=55_000.0, device="cpu")
    clean = ext(truth).detach().numpy()
    rng = np.random.default_rng(1)
    flux = clean + rng.normal(0.0, NOISE, w.size)
    tmpl = LineEmulator(TEMPLATE, device="cpu")
    # a width prior 20 % off the truth (1.0 against 1.2 km/s): without one, the learned
    # line widths take up most of the rotation (they are nearly degenerate below the
    # 5.5 km/s resolution element)
    cfg = TransferConfig(rounds=2, epochs=120, intrinsic_kms=1.0, intrinsic_sd=0.2)
    res = transfer(
        w, flux, np.full(w.size, NOISE), tmpl, rv_range=(-40, 40), config=cfg, device="cpu",
    )  # fmt: skip
    return res, clean


def test_transfer_recovers_rv_vsini_and_reaches_the_noise(fitted) -> None:
    res, clean = fitted
    # the template's lines sit at the right rest wavelengths: RV to a small fraction of the
    # 5.5 km/s resolution element
    assert abs(res.params["rv"] - RV) < 0.3
    # v sin i = 4 km/s, below the resolution element: the learned widths still trade against
    # rotation (the Laplace interval is statistical only), so the check is 1.5 km/s, and the
    # rotation must be detected (above 2 km/s, half the truth)
    assert abs(res.params["vsini"] - VSINI) < 1.5
    assert res.params["vsini"] > 2.0
    # residuals down to the injected noise (the model cannot do better than the noise)
    assert res.rms_percent < 100 * NOISE * 1.3
    # the model is closer to the noiseless truth than the noise itself
    good = ~res.mask
    assert np.sqrt(np.mean((res.model - clean)[good] ** 2)) < NOISE


def test_transfer_adds_missing_lines_and_prunes_absent_ones(fitted) -> None:
    res, _ = fitted
    table = line_table(res.lines)
    rest = table["wavelength_A"]
    # the three star lines missing from the template were learned from the data
    for lam in (8704.5, 8709.3, 8713.5):
        near = np.abs(rest - lam) < 0.05
        assert near.any(), lam
        assert set(table["origin"][near]) == {"data"}
    # the template line the star lacks (8712.0) is gone or left with a negligible depth
    gone = np.abs(rest - 8712.0) < 0.05
    assert not gone.any() or float(np.max(table["depth"][gone])) < 2 * NOISE
    assert res.meta["n_lines_data"] >= 3 and res.meta["n_lines_added"] >= 3


def _weak_line() -> LineList:
    return LineList(np.array([8700.0]), np.array([0.002]), np.array([0.04]), np.array([0.002]))


def test_line_table_equivalent_width_of_a_weak_line() -> None:
    # a weak line's equivalent width is its integrated optical depth: amplitude 2e-3 A
    t = line_table(_weak_line())
    assert float(t["ew_mA"][0]) == pytest.approx(2.0, rel=0.02)
    # FWHM in km/s: the Voigt FWHM / lambda * c
    assert float(t["fwhm_kms"][0]) == pytest.approx(
        float(_weak_line().fwhm[0]) / 8700.0 * C_KMS, abs=0.01
    )


@pytest.mark.realdata
def test_truncated_hpf_file_is_a_clear_error(shared_dir, tmp_path) -> None:
    from atmospec.errors import FileFormatError
    from atmospec.highres.io import read_hpf

    src = shared_dir / "hpf" / "WASP_69_hpf_stack.fits"
    if not src.is_file():
        pytest.skip(f"{src} is absent")
    cut = tmp_path / "cut.fits"
    cut.write_bytes(src.read_bytes()[:40_000])  # the header survives, the table is cut
    with pytest.raises(FileFormatError, match="cut.fits: not a readable FITS file"):
        read_hpf(cut)


def test_template_with_a_non_finite_flux_is_refused(tmp_path) -> None:
    from atmospec.errors import FileFormatError
    from atmospec.highres.pipeline import load_template

    path = tmp_path / "t.csv"
    rows = [(8700.0 + 0.1 * i, 1.0) for i in range(20)]
    rows[3] = (rows[3][0], float("inf"))
    path.write_text("wavelength,flux\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n")
    with pytest.raises(FileFormatError, match="t.csv: 1 row"):
        load_template(str(path))


def test_physical_width_range_keeps_rotation_out_of_the_lines() -> None:
    """A star whose lines have 1.4 km/s intrinsic sigma rotating at 6 km/s; the template's
    lines are twice too wide (a hotter star). Each line's width is held inside the physical
    range at the star's temperature (:func:`intrinsic_width_range`, 0.9-1.9 km/s at 4,700 K)
    and anchored to the shared width, not the template's: the broadening beyond it must be
    rotation, and the profile likelihood brackets the truth."""
    from atmospec.highres.transfer import intrinsic_width_range

    v_int, vsini = 1.4, 6.0
    centres = np.array(STAR.center)
    star = LineList(
        centres, STAR.amplitude, centres * v_int / C_KMS, 0.05 * centres * v_int / C_KMS
    )
    w = np.linspace(8700.0, 8718.0, 600)
    ext = ExtrinsicModel(w, rv=RV, vsini=vsini, resolution=55_000.0, device="cpu")
    with torch.no_grad():
        clean = ext(LineEmulator(star, device="cpu")).numpy()
    flux = clean + np.random.default_rng(3).normal(0.0, NOISE, w.size)
    tmpl = LineEmulator(LineList(centres, STAR.amplitude, 2 * star.sigma, star.gamma),
                        device="cpu")  # fmt: skip
    lo, hi = intrinsic_width_range(4700.0)
    assert (lo, hi) == pytest.approx((0.91, 1.86), abs=0.01)
    cfg = TransferConfig(rounds=1, epochs=120, intrinsic_range_kms=(lo, hi), width_anchor="shared",
                         vsini=3.0, vsini_grid=(4.5, 6.0, 7.5), profile_epochs=40)  # fmt: skip
    torch.manual_seed(0)
    res = transfer(w, flux, np.full(w.size, NOISE), tmpl, rv_range=(-40, 40), config=cfg,
                   device="cpu")  # fmt: skip
    a, b = res.meta["vsini_interval_68"]
    assert a <= vsini <= b
    assert abs(res.params["vsini"] - vsini) < 1.0
    assert lo <= res.meta["intrinsic_sigma_kms"] <= hi
    assert res.meta["residual_correlation_px"] >= 1.0


def test_profile_interval_is_exact_for_a_quadratic_profile_at_a_coarse_grid() -> None:
    """A quadratic profile chi2 = c0 + (v - v0)^2 / sigma^2 (scaled by 2 for chi2_red x
    correlation): the 68 % interval is v0 +- sigma x sqrt(2) whatever the 0.5 km/s grid step and
    wherever v0 falls between grid points (here 2.75, between the two lowest points, as on
    WASP-69). Linear interpolation of Delta chi2 from the lowest grid point puts the lower end
    at 2.41 instead of 2.46."""
    from atmospec.highres.broadening import profile_interval

    v0, sigma, scale = 2.75, 0.208, 2.0
    grid = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)
    scan = [(v, 9000.0 + ((v - v0) / sigma) ** 2) for v in grid]
    lo, hi = profile_interval(scan, scale, v0)
    half = sigma * np.sqrt(scale)
    assert lo == pytest.approx(v0 - half, abs=1e-6)
    assert hi == pytest.approx(v0 + half, abs=1e-6)


def test_vsini_interval_adds_independent_errors_in_quadrature() -> None:
    """Lines at their width ceiling (the WASP-69 case): the width range is closed below, so
    the lower end is the fit minus the statistical and the R parts in quadrature; with R
    fitted (the profile re-fits it) the R part is 0. Computed by hand from the broadening
    budget: T^2 = s^2 + (k v)^2 + s_inst(R)^2 with s_inst = c / R / 2.3548."""
    from atmospec.highres.broadening import intrinsic_width_range, rotation_sd_per_vsini
    from atmospec.highres.transfer_config import vsini_interval

    floor, ceiling = intrinsic_width_range(4715.0)
    cfg = TransferConfig(intrinsic_range_kms=(floor, ceiling))
    p = {"vsini": 2.75, "resolution": 55_000.0}
    (lo, hi), parts = vsini_interval(p, ceiling, (2.45, 3.05), cfg)
    k = rotation_sd_per_vsini(0.6)

    def inst(r: float) -> float:
        return C_KMS / r / 2.354820045

    # R one prior sd (2,750) lower: the instrument takes more of the total, rotation less
    v_r = np.sqrt((k * 2.75) ** 2 + inst(55_000.0) ** 2 - inst(52_250.0) ** 2) / k
    assert parts["width_range"][0] == pytest.approx(2.75)
    assert parts["resolution_shifts"][0] == pytest.approx(2.75 - v_r, rel=1e-6)
    assert lo == pytest.approx(2.75 - np.hypot(0.30, 2.75 - v_r), rel=1e-6)
    assert lo < min(2.45, v_r)  # below either part alone
    assert hi > parts["width_range"][1] > 3.05
    fitted = TransferConfig(intrinsic_range_kms=(floor, ceiling), fit_resolution=True)
    (lo_f, _), parts_f = vsini_interval(p, ceiling, (2.45, 3.05), fitted)
    assert parts_f["resolution_shifts"] == [0.0, 0.0]
    assert lo_f == pytest.approx(2.45)


def test_injection_at_the_fitted_values_reproduces_the_fit() -> None:
    """Injected at the fit's own v sin i, no macroturbulence and the lines at the fitted shared
    width, the synthetic star is the fit's model plus the data's noise: its residual against
    the model has the noise's sd."""
    from atmospec.highres.injection import inject

    w = np.linspace(8700.0, 8718.0, 600)
    ext = ExtrinsicModel(w, rv=RV, vsini=4.0, resolution=55_000.0, device="cpu")
    with torch.no_grad():
        clean = ext(LineEmulator(STAR, device="cpu")).numpy()
    flux = clean + np.random.default_rng(5).normal(0.0, NOISE, w.size)
    tmpl = LineEmulator(STAR, device="cpu")
    cfg = TransferConfig(rounds=1, epochs=60)
    res = transfer(w, flux, np.full(w.size, NOISE), tmpl, rv_range=(-40, 40), config=cfg,
                   device="cpu")  # fmt: skip
    fake = inject(res, tmpl.settings(), vsini=res.params["vsini"], macroturbulence=0.0,
                  line_sigma_kms=res.meta["intrinsic_sigma_kms"], floor_kms=0.0, config=cfg,
                  seed=1)  # fmt: skip
    assert np.std(fake - res.model) == pytest.approx(NOISE, rel=0.1)
    assert abs(np.mean(fake - res.model)) < 4 * NOISE / np.sqrt(w.size)


def test_calibrated_vsini_inverts_the_recovery_curves() -> None:
    """Two recovery curves (recovered = a + b x injected) read back exactly; the interval is
    the union over the curves of the injected values whose recovery is within the
    half-widths; a curve that does not grow is refused."""
    from atmospec.errors import InvalidSpectrumError
    from atmospec.highres.injection import calibrated_vsini

    rows = [{"vsini_true": t, "macroturbulence_true": z, "vsini": a + 0.5 * t}
            for z, a in ((1.0, 2.0), (3.0, 1.5)) for t in (1.0, 2.0, 3.0, 4.0)]  # fmt: skip
    out = calibrated_vsini(3.0, (0.25, 0.25), rows, reference_macroturbulence=3.0)
    assert out["vsini"] == pytest.approx(3.0)  # (3.0 - 1.5) / 0.5
    assert out["by_macroturbulence"]["1"] == pytest.approx(2.0)
    # lower end: curve z=1 at 2.75 -> 1.5; upper end: curve z=3 at 3.25 -> 3.5
    assert out["interval_68"] == pytest.approx([1.5, 3.5])
    assert out["limits"] == []
    # an observed value below every recovery: the interval is open at the grid's lowest
    low = calibrated_vsini(2.0, (0.1, 0.1), rows)
    assert low["interval_68"][0] == 1.0 and low["limits"]
    flat = [{**r, "vsini": 2.5} for r in rows]
    with pytest.raises(InvalidSpectrumError, match="does not grow"):
        calibrated_vsini(2.5, (0.1, 0.1), flat)


def test_calibrated_vsini_leaves_out_failed_recoveries() -> None:
    """An injection whose fit found no interior minimum (at the scan's floor) is a failed
    recovery: left out of the curve and counted, not read as a falling curve."""
    from atmospec.highres.injection import calibrated_vsini

    rows = [{"vsini_true": t, "macroturbulence_true": 2.0, "vsini": 1.0 + 0.5 * t,
             "at_scan_floor": False} for t in (1.0, 2.0, 3.0)]  # fmt: skip
    rows.append({"vsini_true": 4.0, "macroturbulence_true": 2.0, "vsini": 0.5,
                 "at_scan_floor": True})  # fmt: skip
    out = calibrated_vsini(2.25, (0.25, 0.25), rows)
    assert out["vsini"] == pytest.approx(2.5)
    assert out["failed"] == 1 and "v sin i 4 / zeta 2" in out["limits"][-1]


def test_vsini_by_injection_needs_the_observed_fits_scan() -> None:
    """The calibration reads the observed v sin i through recoveries made the same way; a
    transfer config without a v sin i scan cannot make them, so it is refused up front."""
    from atmospec.highres.injection import macroturbulence_vf05, vsini_by_injection

    # Valenti & Fischer (2005): 3.98 km/s at the Sun's 5770 K, 1 km/s less per 650 K
    assert macroturbulence_vf05(5770.0) == pytest.approx(3.98)
    assert macroturbulence_vf05(5120.0) == pytest.approx(2.98)
    with pytest.raises(ValueError, match="vsini_grid"):
        vsini_by_injection(None, None, 4715.0, TransferConfig())  # type: ignore[arg-type]


def test_transfer_cli_refuses_injections_without_teff(tmp_path) -> None:
    """`highres transfer --vsini-injections` without --teff stops before any work (the
    injected lines' widths follow the star's temperature) and writes nothing."""
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["highres", "transfer", "missing.fits", "--vsini-injections", "--out", str(out)]
    )
    assert res.exit_code == 2
    assert "--teff" in res.output
    assert not out.exists()


def test_laplace_errors_with_no_line_found_in_the_data() -> None:
    # With every line from the template (rounds=0, or no new line found), the shared width
    # shift of the data lines moves nothing: its Hessian row was zero and every error NaN.
    # It is left out then; the errors scale as 1/sqrt(weight), and a data line (whose width
    # trades against rotation) widens v sin i's.
    from atmospec.highres.transfer_optimise import laplace
    from atmospec.highres.transfer_state import new_state

    a = np.array
    lines = LineList(a([8702.0, 8704.0]), a([0.03, 0.02]), a([0.04, 0.04]), a([0.005, 0.005]))
    w = np.linspace(8700.0, 8706.0, 300)
    errors = {}
    for found in (False, True):
        is_t = np.array([True, not found])
        st = new_state(
            lines,
            is_t,
            lines.select(is_t),
            LineEmulator(lines, device="cpu").settings(),
            torch.device("cpu"),
            1.2,
        )
        ext = ExtrinsicModel(w, rv=3.0, vsini=3.2, device="cpu")
        fl = ext(st.star).detach()
        wt = torch.full((w.size,), 1e6, dtype=torch.float64)
        e1 = laplace(ext, st, fl, wt, TransferConfig())
        e4 = laplace(ext, st, fl, 4.0 * wt, TransferConfig())
        assert np.isfinite(e1["rv"]) and np.isfinite(e1["vsini"]), e1
        assert e4["rv"] / e1["rv"] == pytest.approx(0.5) and e4["vsini"] / e1["vsini"] == (
            pytest.approx(0.5)
        )
        errors[found] = e1
    assert errors[True]["vsini"] > 1.1 * errors[False]["vsini"]
    assert errors[True]["rv"] == pytest.approx(errors[False]["rv"], rel=1e-3)
