"""FITS image spectra (IRAF, ESO pipelines, FIRE ...): wavelengths from the header's WCS.

Each layout is written from one real spectrum (GD 165B, SpeX prism, L4) put on the axis the
layout describes; reading it back must give that axis and those arrays, and the answer for
the image file must be the answer for the same arrays read from a table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec import io
from atmospec.errors import FileFormatError, InvalidSpectrumError, UnitError
from atmospec.io.fits_image import air_to_vacuum
from atmospec.spectrum import Spectrum

BUNIT = "erg.cm**(-2).s**(-1).angstrom**(-1)"  # as the ESO pipelines write it


@pytest.fixture(scope="module")
def gd165b(splat_dir: Path) -> Spectrum:
    from atmospec import library

    return library.load("11250_11052").good()  # GD 165B, L4, 1863 K from its luminosity


def _on_axis(spec: Spectrum, wave_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flux (erg/s/cm2/A, the file's scale) and error of ``spec`` interpolated onto an axis."""
    scale = spec.meta["normalisation"]["scale"]
    w = np.asarray(spec.wavelength)
    assert spec.uncertainty is not None
    return np.interp(wave_um, w, spec.flux) * scale, np.interp(wave_um, w, spec.uncertainty) * scale


def _linear_axis_aa() -> np.ndarray:
    return 8500.0 + 25.0 * np.arange(661)  # 0.85-2.50 um, beyond the models' 0.90-2.45 um


def _primary(flux: np.ndarray, **cards: object) -> object:
    from astropy.io import fits

    hdu = fits.PrimaryHDU(flux.astype(np.float32))
    hdu.header.update({"OBJECT": "GD 165B", **cards})
    return hdu


def _wat2_cards(text: str) -> dict[str, str]:
    """IRAF's WAT2 cards: the string cut into 68-character values."""
    return {f"WAT2_{i // 68 + 1:03d}": text[i : i + 68] for i in range(0, len(text), 68)}


def test_linear_axis_with_error_and_quality_extensions(gd165b: Spectrum, tmp_path: Path) -> None:
    # The X-shooter layout: empty primary, FLUX image with CTYPE1 'WAVE' in Angstrom, ERRS and
    # QUAL images. The axis is CRVAL1 + CDELT1 * (i + 1 - CRPIX1); non-zero QUAL is masked.
    from astropy.io import fits

    aa = _linear_axis_aa()
    flux, err = _on_axis(gd165b, aa / 1e4)
    qual = np.zeros(aa.size, dtype=np.int32)
    qual[[10, 11, 300]] = [4, 4096, 1]
    sci = fits.ImageHDU(flux, name="FLUX")
    sci.header.update(
        CTYPE1="WAVE", CUNIT1="Angstrom", CRVAL1=8550.0, CDELT1=25.0, CRPIX1=3.0, BUNIT=BUNIT
    )
    path = tmp_path / "GD165B_SCI_SLIT_FLUX_MERGE1D_NIR.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(header=fits.Header({"OBJECT": "GD 165B"})),
            sci,
            fits.ImageHDU(err, name="ERRS"),
            fits.ImageHDU(qual, name="QUAL"),
        ]
    ).writeto(path)
    assert io.detect_format(path) == "fits-image"
    s = io.read(path)
    np.testing.assert_allclose(s.wavelength, aa / 1e4, rtol=1e-12)
    np.testing.assert_allclose(s.flux, flux, rtol=1e-12)
    assert s.uncertainty is not None
    np.testing.assert_allclose(s.uncertainty, err, rtol=1e-12)
    assert s.mask.sum() == 3 and s.mask[[10, 11, 300]].all()
    assert s.flux_unit == "erg / (Angstrom s cm2)" and s.name == "GD 165B"
    assert s.meta["uncertainty_from"] == "extension ERRS (sigma)"
    assert s.meta["n_quality_masked"] == 3 and "flux_unit_assumed" not in s.meta


def test_variance_and_inverse_variance_planes_become_one_sigma(
    gd165b: Spectrum, tmp_path: Path
) -> None:
    from astropy.io import fits

    aa = _linear_axis_aa()
    flux, err = _on_axis(gd165b, aa / 1e4)
    cards = {"CTYPE1": "WAVE", "CUNIT1": "Angstrom", "CRVAL1": 8500.0, "CDELT1": 25.0, "CRPIX1": 1}
    for name, plane in (("VAR", err**2), ("IVAR", 1.0 / err**2)):
        path = tmp_path / f"{name}.fits"
        bad = plane.copy()
        bad[5] = -1.0  # a negative variance / inverse variance is no error bar: masked
        fits.HDUList([_primary(flux, **cards, BUNIT=BUNIT), fits.ImageHDU(bad, name=name)]).writeto(
            path
        )
        s = io.read(path)
        keep = np.arange(aa.size) != 5
        assert s.uncertainty is not None
        np.testing.assert_allclose(s.uncertainty[keep], err[keep], rtol=1e-10)
        assert s.mask.tolist() == (~keep).tolist()


def test_iraf_log_linear_bands_read_the_sigma_band(gd165b: Spectrum, tmp_path: Path) -> None:
    # IRAF apall output: bands (spectrum, raw, sky, sigma) x 1 aperture x pixels, a log10
    # axis (DC-FLAG = 1) and the unit only in WAT1_001.
    loglam = np.log10(9000.0) + 1.8e-4 * np.arange(600)  # R = 1 / (ln 10 * 1.8e-4) = 2413
    flux, err = _on_axis(gd165b, 10**loglam / 1e4)
    cube = np.stack([flux, flux * 1.1, flux * 0.01, err])[:, None, :]
    cards = {
        "CTYPE1": "LINEAR",
        "CRVAL1": float(loglam[0]),
        "CD1_1": 1.8e-4,
        "CRPIX1": 1.0,
        "DC-FLAG": 1,
        "WAT0_001": "system=equispec",
        "WAT1_001": "wtype=linear label=Wavelength units=angstroms",
        "BANDID1": "spectrum - background fit, weights variance, clean no",
        "BANDID2": "raw - background fit, weights none, clean no",
        "BANDID3": "background - background fit",
        "BANDID4": "sigma - background fit, weights variance, clean no",
    }
    path = tmp_path / "gd165b.ms.fits"
    _primary(cube, **cards).writeto(path)  # type: ignore[attr-defined]
    assert io.detect_format(path) == "fits-image"
    s = io.read(path)
    np.testing.assert_allclose(s.wavelength, 10**loglam / 1e4, rtol=1e-6)  # float32 pixels
    np.testing.assert_allclose(s.flux, flux, rtol=1e-6)
    assert s.uncertainty is not None
    np.testing.assert_allclose(s.uncertainty, err, rtol=1e-6)
    assert s.meta["wavelength_axis"] == "log-linear (DC-FLAG = 1)"
    assert s.meta["flux_unit_assumed"] is True  # no BUNIT: F_lambda assumed, and said


def test_iraf_multispec_apertures(gd165b: Spectrum, tmp_path: Path) -> None:
    # Two apertures with their own dispersion in the joined WAT2 cards, one of them cut after
    # a blank (FITS drops trailing blanks of a string value; the reader must restore them).
    aa = _linear_axis_aa()
    flux, _ = _on_axis(gd165b, aa / 1e4)
    # IRAF writes the numbers with all their digits; here the first card ends at the blank
    # after dw, so with the blank dropped dw and nw would run together and every later field
    # would shift (z would read 101.5)
    spec1 = 'spec1 = "1 1 0 8500.000000000000 25.000000000000000 661 0. 101.5 110.5"'
    spec2 = 'spec2 = "2 2 2 8500. 25. 661 0. 130.5 140.5 1. 0. 2 3 1. 661. 8500. 25. 0."'
    cards = _wat2_cards(f"wtype=multispec {spec1} {spec2}")
    assert cards["WAT2_001"].endswith("25.000000000000000 ")
    hdr = {
        "WAT0_001": "system=multispec",
        "WAT1_001": "wtype=multispec label=Wavelength units=angstroms",
        "CTYPE1": "MULTISPE",
        "CRVAL1": 1.0,
        **cards,
    }
    path = tmp_path / "two_apertures.fits"
    _primary(np.stack([flux, flux * 0.5]), **hdr).writeto(path)  # type: ignore[attr-defined]
    with pytest.raises(FileFormatError, match="holds 2 spectra .* choose one with aperture="):
        io.read(path)  # never a silent pick of one of them
    s = io.read(path, aperture=0)
    np.testing.assert_allclose(s.wavelength, aa / 1e4, rtol=1e-12)
    assert s.meta["wavelength_axis"] == "multispec spec1 linear" and s.uncertainty is None
    with pytest.raises(FileFormatError, match="non-linear dispersion function"):
        io.read(path, aperture=1)
    with pytest.raises(FileFormatError, match="holds 2 spectra"):
        io.read(path, aperture=2)


def test_air_wavelengths_become_vacuum(gd165b: Spectrum, tmp_path: Path) -> None:
    # Refractivity of standard air (Morton 2000, eq. 8): (n - 1) 1e8 = 8342.54 + 2406147 /
    # (130 - s^2) + 15998 / (38.9 - s^2), s the vacuum wavenumber in 1/um: 2.7417e-4 at 1 um
    # (the reader inverts it to go from air to vacuum).
    air_nm = 1000.0 + 2.5 * np.arange(600, dtype=np.float64)
    vac = air_to_vacuum(air_nm / 1e3)
    s2 = (1.0 / vac) ** 2
    morton = 1e-8 * (8342.54 + 2406147.0 / (130.0 - s2) + 15998.0 / (38.9 - s2))
    np.testing.assert_allclose(vac / (air_nm / 1e3) - 1.0, morton, atol=2e-9)
    assert vac[0] == pytest.approx(1.00027417, abs=2e-8)
    flux, err = _on_axis(gd165b, vac)
    path = tmp_path / "air.fits"
    hdr = {"CTYPE1": "AWAV", "CUNIT1": "nm", "CRVAL1": 1000.0, "CDELT1": 2.5, "CRPIX1": 1.0}
    from astropy.io import fits

    fits.HDUList([_primary(flux, **hdr, BUNIT=BUNIT), fits.ImageHDU(err, name="ERR")]).writeto(path)
    s = io.read(path)
    np.testing.assert_allclose(s.wavelength, vac, rtol=1e-12)
    assert s.meta["air_to_vacuum"] is True


@pytest.mark.parametrize(
    ("cards", "kwargs", "exc", "message"),
    [
        ({}, {}, FileFormatError, "a 1-D array but no wavelength axis"),
        (
            {"CTYPE1": "RA---TAN", "CUNIT1": "deg", "CRVAL1": 10.0},
            {},
            FileFormatError,
            "not a spectral axis",
        ),
        ({"CTYPE1": "LINEAR", "CRVAL1": 9000.0, "CDELT1": 25.0}, {}, UnitError, "has no unit"),
        (
            {"CTYPE1": "WAVE", "CUNIT1": "um", "CRVAL1": "1.0", "CDELT1": 0.01},
            {},
            FileFormatError,
            "CRVAL1 = '1.0' is not a number",
        ),
        (
            {"CTYPE1": "WAVE", "CUNIT1": "um", "CRVAL1": -0.1, "CDELT1": 0.01, "CRPIX1": 1.0},
            {},
            InvalidSpectrumError,
            "11 of 50 wavelengths are zero or negative",
        ),
        (
            {"CTYPE1": "WAVE", "CUNIT1": "Angstrom", "CRVAL1": 9000.0, "CDELT1": 25.0},
            {"wave_unit": "nm"},
            UnitError,
            "is in 'Angstrom' (CUNIT1 / WAT1_001) but 'nm' was given",
        ),
    ],
)
def test_image_spectra_that_cannot_be_read_are_refused(
    tmp_path: Path, cards: dict, kwargs: dict, exc: type[Exception], message: str
) -> None:
    path = tmp_path / "bad.fits"
    _primary(np.linspace(1.0, 2.0, 50), **cards).writeto(path)  # type: ignore[attr-defined]
    with pytest.raises(exc) as info:
        io.read(path, **kwargs)
    assert str(path) in str(info.value) and message in str(info.value)


def test_an_error_plane_of_another_length_is_refused(tmp_path: Path) -> None:
    from astropy.io import fits

    path = tmp_path / "short_err.fits"
    hdr = {"CTYPE1": "WAVE", "CUNIT1": "um", "CRVAL1": 1.0, "CDELT1": 0.01}
    fits.HDUList([_primary(np.ones(50), **hdr), fits.ImageHDU(np.ones(49), name="ERR")]).writeto(
        path
    )
    with pytest.raises(
        FileFormatError, match="extension ERR has shape \\(49,\\), but the flux has 50"
    ) as info:
        io.read(path)
    assert str(path) in str(info.value)


def test_a_unitless_axis_is_read_with_the_unit_given(tmp_path: Path) -> None:
    path = tmp_path / "nounit.fits"
    hdr = {"CTYPE1": "LINEAR", "CRVAL1": 9000.0, "CDELT1": 25.0, "CRPIX1": 1.0}
    _primary(np.ones(50), **hdr).writeto(path)  # type: ignore[attr-defined]
    s = io.read(path, wave_unit="AA")
    assert s.wavelength[0] == pytest.approx(0.9) and s.wavelength[-1] == pytest.approx(1.0225)


@pytest.mark.realdata
def test_predict_answers_an_image_file_as_the_same_table(gd165b: Spectrum, tmp_path: Path) -> None:
    # The command a user runs on an X-shooter-like file gives the answer the same arrays give
    # from a table (one path for both, so that both draw the same random numbers: the draws
    # are seeded by the source), and GD 165B comes out an L dwarf near its 1863 K.
    from astropy.io import fits
    from astropy.table import Table
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    aa = _linear_axis_aa()
    flux, err = (x.astype(np.float32) for x in _on_axis(gd165b, aa / 1e4))
    path = tmp_path / "gd165b_1d.dat"
    hdr = {"CTYPE1": "WAVE", "CUNIT1": "Angstrom", "CRVAL1": 8500.0, "CDELT1": 25.0, "CRPIX1": 1.0}
    image = fits.HDUList([_primary(flux, **hdr, BUNIT=BUNIT), fits.ImageHDU(err, name="ERR")])
    table = Table(
        {"wavelength": aa / 1e4, "flux": flux, "error": err},
        units={"wavelength": "um", "flux": BUNIT, "error": BUNIT},
    )
    runner = CliRunner()
    rows = []
    for out, kind in (("a", "fits-image"), ("b", "ecsv")):
        if kind == "fits-image":
            image.writeto(path)
        else:
            table.write(path, format="ascii.ecsv", overwrite=True)
        assert io.detect_format(path) == kind
        args = ["--quiet", "predict", str(path), "--draws", "200", "--no-plots", "-o"]
        res = runner.invoke(app, [*args, str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        rows.append(Table.read(tmp_path / out / "predictions.ecsv")[0])
    assert rows[0]["teff_median"] == pytest.approx(rows[1]["teff_median"], abs=1.0)
    assert 1600 <= rows[0]["teff_median"] <= 2100
    assert "no flux unit" not in rows[0]["notes"]


@pytest.mark.realdata
def test_aperture_option_on_the_command_line(gd165b: Spectrum, tmp_path: Path) -> None:
    # A file of two apertures: predict and fit refuse to pick one silently (the row fails,
    # naming the choice), take --aperture; a table takes no such option and says so.
    from astropy.io import fits
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    aa = _linear_axis_aa()
    flux, err = _on_axis(gd165b, aa / 1e4)
    hdr = {"CTYPE1": "WAVE", "CUNIT1": "Angstrom", "CRVAL1": 8500.0, "CDELT1": 25.0}
    hdr |= {"CRPIX1": 1.0, "WAT0_001": "system=equispec", "BUNIT": BUNIT}
    path = tmp_path / "two.fits"
    image = fits.PrimaryHDU(np.stack([flux, flux]))
    image.header.update(hdr)
    fits.HDUList([image, fits.ImageHDU(np.stack([err, err]), name="ERR")]).writeto(path)
    runner = CliRunner()
    base = ["--quiet", "predict", str(path), "--grids", "none", "--draws", "50", "--no-plots"]
    res = runner.invoke(app, [*base, "-o", str(tmp_path / "a")])
    assert res.exit_code == 4
    assert "choose one with aperture=" in (tmp_path / "a" / "failures.csv").read_text()
    res = runner.invoke(app, [*base, "--aperture", "1", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["fit", str(path), "--grid", "btsettl08", "--aperture", "0"])
    assert res.exit_code == 0, res.output
    table = tmp_path / "t.csv"
    table.write_text("wavelength [um],flux,error\n1.0,1.0,0.1\n1.1,1.0,0.1\n")
    res = runner.invoke(app, ["fit", str(table), "--grid", "btsettl08", "--aperture", "0"])
    said = " ".join((res.output + str(res.exception)).split())
    assert res.exit_code != 0 and "takes no aperture option" in said


def test_fire_error_spectrum_beside_the_flux_is_read_with_it(
    gd165b: Spectrum, tmp_path: Path
) -> None:
    # FIREHOSE writes NAME_F.fits (flux) and NAME_E.fits (errors), both log-linear images. The
    # flux file reads its errors from the other; a batch run lists the pair once; an error
    # file on another axis is refused naming both.

    from atmospec.prediction.sources import Catalog

    loglam = np.log10(8500.0) + 2e-4 * np.arange(500)
    flux, err = _on_axis(gd165b, 10**loglam / 1e4)
    cards = {"CTYPE1": "LINEAR", "CUNIT1": "Angstrom", "CRVAL1": float(loglam[0])}
    cards |= {"CDELT1": 2e-4, "CRPIX1": 1.0, "DC-FLAG": 1}
    _primary(flux, **cards).writeto(tmp_path / "J1424_F.fits")  # type: ignore[attr-defined]
    _primary(err, **cards).writeto(tmp_path / "J1424_E.fits")  # type: ignore[attr-defined]
    s = io.read(tmp_path / "J1424_F.fits")
    assert s.uncertainty is not None
    np.testing.assert_allclose(s.uncertainty, err, rtol=1e-6)
    assert s.meta["uncertainty_from"] == "file J1424_E.fits (the error spectrum beside it)"
    assert Catalog.from_folder(tmp_path).items == (str(tmp_path / "J1424_F.fits"),)
    pair = [tmp_path / "J1424_E.fits", tmp_path / "J1424_F.fits"]
    assert Catalog.from_files(pair).items == (str(tmp_path / "J1424_F.fits"),)
    assert Catalog.from_files(pair[:1]).items == (str(pair[0]),)  # alone, it is what was asked
    _primary(err, **{**cards, "CRVAL1": 3.9}).writeto(  # type: ignore[attr-defined]
        tmp_path / "J1424_E.fits", overwrite=True
    )
    with pytest.raises(FileFormatError, match="J1424_E.fits does not match it \\(cards") as info:
        io.read(tmp_path / "J1424_F.fits")
    assert str(info.value).startswith(str(tmp_path / "J1424_F.fits"))
