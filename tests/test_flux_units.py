"""Flux densities as files give them: F_nu converted on every route, a missing unit said, and
an F_nu flux read as F_lambda caught by the grids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atmospec import io
from atmospec.errors import UnitError
from atmospec.io.flux_density import ASSUMED_KEY, as_flux_lambda, assumed_note
from atmospec.spectrum import Spectrum

C_UM_PER_S = 2.99792458e14


def _write_csv(path: Path, header: str, wave, flux, err) -> Path:
    keep = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    rows = np.column_stack([wave[keep], flux[keep], err[keep]])
    np.savetxt(path, rows, delimiter=",", header=header, comments="")
    return path


def test_flat_f_nu_becomes_lambda_to_the_minus_two_f_lambda() -> None:
    # F_lambda = F_nu c / lambda^2: a flat 1 Jy spectrum falls as lambda^-2, and 1 Jy at
    # 1 um is 1e-23 erg/s/cm2/Hz * c / (1 um)^2 = 2.998e-9 erg/s/cm2/um.
    s = Spectrum([1.0, 2.0, 4.0], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1], flux_unit="Jy")
    out, notes = as_flux_lambda(s)
    assert out.flux[0] == pytest.approx(1e-23 * C_UM_PER_S, rel=1e-6)
    np.testing.assert_allclose(out.flux / out.flux[0], [1.0, 0.25, 0.0625], rtol=1e-9)
    assert out.uncertainty is not None
    np.testing.assert_allclose(out.uncertainty / out.flux, 0.1, rtol=1e-9)
    assert notes == ["flux converted from Jy (F_nu) to F_lambda (erg / (s cm2 um))"]
    same, said = as_flux_lambda(Spectrum([1.0, 2.0], [1.0, 2.0], flux_unit="W m-2 um-1"))
    assert said == [] and same.flux[1] == 2.0  # F_lambda in any unit passes unchanged
    with pytest.raises(UnitError, match="not a spectral flux density"):
        as_flux_lambda(Spectrum([1.0, 2.0], [1.0, 2.0], flux_unit="mag"))


def test_a_flux_column_named_for_its_unit_is_read_in_that_unit(tmp_path: Path) -> None:
    # `wavelength_um,flux_mjy,flux_err_mjy` (a photometry-style export) was refused for want
    # of a flux column; the name states mJy as `wavelength_um` states um. Read through any
    # reader, it converts to F_lambda like a `flux [mJy]` header: 1 mJy at 2 um is
    # 1e-26 erg/s/cm2/Hz * c / (2 um)^2 = 7.495e-13 erg/s/cm2/um. A name and a unit that
    # disagree, or errors named for another unit, are refused with both named.
    from astropy.table import Table

    w = np.array([1.0, 1.5, 2.0])
    f, e = np.ones(3), np.full(3, 0.1)
    named = _write_csv(tmp_path / "named.csv", "wavelength_um,Flux_mJy,flux_err_mJy", w, f, e)
    s = io.read(named)
    assert s.flux_unit == "mJy" and ASSUMED_KEY not in s.meta
    out, _ = as_flux_lambda(s)
    assert out.flux[2] == pytest.approx(1e-26 * C_UM_PER_S / 4.0, rel=1e-6)
    Table({"wave": w, "fnu_jy": f, "err_jy": e}, units={"wave": "um"}).write(
        tmp_path / "named.ecsv"
    )
    assert io.read(tmp_path / "named.ecsv").flux_unit == "Jy"
    clash = _write_csv(tmp_path / "clash.csv", "wavelength_um,flux_mjy [Jy],error", w, f, e)
    with pytest.raises(
        UnitError, match=r"clash.csv: flux column 'flux_mjy.*' is named for 'mJy' but its unit is"
    ):
        io.read(clash)
    assert io.read(clash, flux_unit="Jy").flux_unit == "Jy"  # the caller decides
    mixed = _write_csv(tmp_path / "mixed.csv", "wavelength_um,flux_mjy,err_jy", w, f, e)
    with pytest.raises(UnitError, match="mixed.csv: error column 'err_jy' is named for 'Jy'"):
        io.read(mixed)


def test_readers_record_a_flux_unit_they_had_to_assume(tmp_path: Path) -> None:
    # A table with no flux unit is read as relative F_lambda, and says so; a unit in the
    # header, one passed by the caller, or a file atmospec wrote (its relative flux is
    # F_lambda) leaves nothing assumed.
    w = np.linspace(1.0, 2.0, 20)
    f, e = np.ones(20), np.full(20, 0.1)
    bare = _write_csv(tmp_path / "bare.csv", "wavelength_um,flux,error", w, f, e)
    jy = _write_csv(tmp_path / "jy.csv", "wavelength [um],flux [Jy],error [Jy]", w, f, e)
    s = io.read(bare)
    assert s.flux_unit == "" and s.meta[ASSUMED_KEY] is True
    assert "no flux unit in the file: read as F_lambda" in str(assumed_note(s))
    assert ASSUMED_KEY not in io.read(jy).meta and io.read(jy).flux_unit == "Jy"
    told = io.read(bare, flux_unit="Jy")
    assert ASSUMED_KEY not in told.meta and told.flux_unit == "Jy"
    for name in ("back.ecsv", "back.fits"):
        Spectrum(w, f, e, name="x").write(tmp_path / name)
        again = io.read(tmp_path / name)
        assert again.flux_unit == "" and ASSUMED_KEY not in again.meta, name
    from astropy.table import Table

    Table({"wavelength": w, "flux": f, "error": e}).write(tmp_path / "other.fits")
    other = io.read(tmp_path / "other.fits", wave_unit="um")
    assert other.meta[ASSUMED_KEY] is True


@pytest.fixture(scope="module")
def gd165b(splat_dir: Path) -> Spectrum:
    from atmospec import library

    return library.load("11250_11052").good()  # GD 165B, L4, 1863 K from its luminosity


def _as_f_nu_mjy(spec: Spectrum) -> Spectrum:
    """The spectrum in F_nu (mJy, a physical scale): F_nu = F_lambda lambda^2 / c."""
    lam = np.asarray(spec.wavelength)
    k = lam**2 / C_UM_PER_S * 1e26 * 1e-15  # erg/s/cm2/um (x 1e-15) -> mJy
    assert spec.uncertainty is not None
    return Spectrum(lam, spec.flux * k, spec.uncertainty * k, flux_unit="mJy", name="gd165b")


@pytest.mark.realdata
def test_chi2_fit_and_npe_read_f_nu_as_the_same_object(gd165b: Spectrum) -> None:
    # GD 165B in F_nu with its unit stated: the classic fit and the NPE convert it to the
    # grids' F_lambda and answer as for the F_lambda spectrum. Before, both compared the F_nu
    # numbers with F_lambda models: the fit gave 1601 K / log g 4.0 instead of 1804 / 4.86
    # (BT-Settl) and the NPE 1322 K instead of 1727 K.
    from atmospec.fitting import fit_chi2
    from atmospec.grids import load_grid
    from atmospec.models import load_model

    fnu = _as_f_nu_mjy(gd165b)
    grid = load_grid("btsettl08")
    a, b = fit_chi2(gd165b, grid), fit_chi2(fnu, grid)
    assert a.best == b.best
    assert 1700 <= b.best["teff"] <= 1900
    assert "flux converted from mJy (F_nu) to F_lambda (erg / (s cm2 um))" in b.notes
    npe = load_model("npe_dback24", kind="npe")
    ta = np.median(npe.sample(gd165b, n=2000, seed=0)[:, 0])
    tb = np.median(npe.sample(fnu, n=2000, seed=0)[:, 0])
    assert tb == pytest.approx(ta, abs=5.0)


@pytest.mark.realdata
def test_f_nu_table_without_a_unit_is_flagged_by_the_grids(
    gd165b: Spectrum, tmp_path: Path
) -> None:
    # GD 165B's F_nu numbers in a CSV with no flux unit are read as F_lambda: the object then
    # looks ~500 K cooler and red (~1300 K, log g ~3.9) without misfitting. The grids that
    # cover the object favour the F_nu reading decisively (tempered 2 ln B >> 2 ln 100) and the
    # row is flagged, with the reason; the same numbers as F_lambda are not flagged but say
    # the unit was assumed; stated as mJy, they are answered as the F_lambda spectrum is.
    from astropy.table import Table

    from atmospec.multigrid import MultiGridPredictor
    from atmospec.multigrid.flux_reading import DECISIVE

    lam, fnu = np.asarray(gd165b.wavelength), _as_f_nu_mjy(gd165b)
    head = "wavelength_um,flux,error"
    f_lam = _write_csv(tmp_path / "flam.csv", head, lam, gd165b.flux, gd165b.uncertainty)
    f_nu = _write_csv(tmp_path / "fnu.csv", head, lam, fnu.flux, fnu.uncertainty)
    mp = MultiGridPredictor(draws=3000, coverage="mask")  # median to ~4 K: rows compared to 20
    res = mp.predict([io.read(f_lam), io.read(f_nu), io.read(f_nu, flux_unit="mJy")])
    res.write(tmp_path / "out", plots=False)
    t = Table.read(tmp_path / "out" / "predictions.ecsv")
    as_lam, as_read, told = t[0], t[1], t[2]
    assert not as_lam["flux_unit_suspect"] and not as_lam["ood_flag"]
    assert "no flux unit in the file: read as F_lambda" in as_lam["notes"]
    assert as_read["flux_unit_suspect"] and as_read["ood_flag"]
    assert "flux_unit" in as_read["ood_reason"]
    assert "flux unit suspect" in as_read["notes"] and "extinction" in as_read["notes"]
    reading = res.flux_readings[1]
    assert reading is not None and sum(v > DECISIVE for v in reading.evidence.values()) >= 2
    assert as_read["teff_median"] < as_lam["teff_median"] - 300  # what the flag guards
    assert res.flux_readings[2] is None and not told["flux_unit_suspect"]
    assert "no flux unit" not in told["notes"]
    assert told["teff_median"] == pytest.approx(as_lam["teff_median"], abs=20.0)


@pytest.mark.realdata
def test_flux_unit_option_reaches_the_reader_and_the_run_record(
    gd165b: Spectrum, tmp_path: Path
) -> None:
    # `--flux-unit` is read for every file of the run and is part of its identity: a rerun
    # into the same folder without it is refused, naming the option.
    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    fnu = _as_f_nu_mjy(gd165b)
    f = _write_csv(
        tmp_path / "fnu.csv",
        "wavelength_um,flux,error",
        *[np.asarray(x) for x in (fnu.wavelength, fnu.flux, fnu.uncertainty)],
    )
    runner = CliRunner()
    base = ["--quiet", "predict", str(f), "--grids", "none", "--draws", "50", "--no-plots"]
    res = runner.invoke(app, [*base, "--flux-unit", "mJy", "-o", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    row = Table.read(tmp_path / "a" / "predictions.ecsv")[0]
    assert "flux converted from mJy (F_nu)" in row["notes"]
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "a")])
    said = res.output + str(res.exception)
    assert res.exit_code != 0 and "flux_unit: mJy -> None" in said
    # the classic fit and posterior sample read files with the same option
    res = runner.invoke(app, ["fit", str(f), "--grid", "btsettl08", "--flux-unit", "mJy"])
    assert res.exit_code == 0, res.output
    assert "flux converted from mJy (F_nu) to F_lambda" in " ".join(res.output.split())
    post = ["posterior", "sample", str(f), "--n", "200", "-o", str(tmp_path / "p")]
    res = runner.invoke(app, post)
    assert "no flux unit in the file" in " ".join((res.output + res.stderr).split())
    res = runner.invoke(app, [*post, "--flux-unit", "mJy"])
    assert "no flux unit in the file" not in " ".join((res.output + res.stderr).split())


def test_fit_warns_when_its_grid_reads_a_unitless_flux_far_better_as_f_nu(
    gd165b: Spectrum, tmp_path: Path
) -> None:
    # `atmospec fit` on GD 165B (L4, ~1860 K) written as F_nu without a unit answered as for a
    # much cooler object with only the generic "no flux unit" note; predict flagged it. It
    # now makes the same test with its one grid, under that grid's model of mismatch
    # (tempered 2 ln Bayes factor of the F_nu reading above 2 ln 100), and the F_lambda
    # file of the same object passes.
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    fnu = _as_f_nu_mjy(gd165b)
    cols = "wavelength_um,flux,error"
    nu = _write_csv(tmp_path / "fnu.csv", cols, fnu.wavelength, fnu.flux, fnu.uncertainty)
    lam = _write_csv(
        tmp_path / "flam.csv", cols, gd165b.wavelength, gd165b.flux, gd165b.uncertainty
    )
    runner = CliRunner()
    res = runner.invoke(app, ["fit", str(nu), "--grid", "btsettl08", "-o", str(tmp_path / "n")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "warning: flux unit suspect" in said and "btsettl08 reproduces it far better" in said
    notes = json.loads((tmp_path / "n" / "fit.json").read_text())["notes"]
    assert any(n.startswith("flux unit suspect") for n in notes)
    res = runner.invoke(app, ["fit", str(lam), "--grid", "btsettl08"])
    assert res.exit_code == 0, res.output
    assert "flux unit suspect" not in res.output
