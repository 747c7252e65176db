"""Readers of every format on real files (library spectra) and on small files the tests write."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import FileFormatError, InvalidSpectrumError
from atmospec.io import detect_format, read, read_jwst_x1d
from atmospec.spectrum import Spectrum

C_UM_HZ = 2.99792458e14  # speed of light in um Hz


def spex_file(splat_dir: Path, key: str) -> Path:
    return splat_dir / "resources/Spectra/Public/SPEX-PRISM" / f"{key}.fits.gz"


# ---------------------------------------------------------------- SpeX prism library FITS
def test_spex_gz_and_plain_fits_read_the_same(splat_dir: Path, tmp_path: Path) -> None:
    from astropy.io import fits

    src = spex_file(splat_dir, "10703_10070")  # HD 3651B
    plain = tmp_path / "hd3651b.fits"
    with gzip.open(src, "rb") as fin, open(plain, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    a, b = read(src), read(plain)
    assert detect_format(src) == detect_format(plain) == "spex"
    raw = fits.getdata(src)  # the 3 x N array: wavelength, flux, error
    assert raw.shape == (3, 564)
    np.testing.assert_array_equal(a.wavelength, raw[0].astype(np.float64))
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_array_equal(a.uncertainty, raw[2].astype(np.float64))
    assert 0.64 < a.wavelength[0] < 0.66 and 2.55 < a.wavelength[-1] < 2.57  # SpeX prism range


def test_spex_invalid_pixels_are_masked_not_dropped(splat_dir: Path) -> None:
    from astropy.io import fits

    path = spex_file(splat_dir, "10020_11100")  # GJ 570D: some errors are -inf in the file
    raw = fits.getdata(path).astype(np.float64)
    s = read(path)
    assert len(s) == raw.shape[1]  # nothing dropped
    bad = ~np.isfinite(raw[1]) | ~np.isfinite(raw[2]) | (raw[2] <= 0)
    assert bad.sum() > 0
    np.testing.assert_array_equal(s.mask, bad)
    s.validate()


@pytest.mark.parametrize(
    ("key", "yunits", "unit"),
    [  # every YUNITS spelling found in the library headers
        ("10001_10443", "Wm-2um-1", "W m-2 um-1"),
        ("10408_11401", "W m-2 um-1", "W m-2 um-1"),
        ("10032_10787", "ergss-1cm-2A-1", "erg s-1 cm-2 AA-1"),
        ("12437_12170", "ergs s-1 cm-2 A-1", "erg s-1 cm-2 AA-1"),
        ("10002_10782", None, ""),
        ("12876_12606", "", ""),
    ],
)
def test_spex_units_from_header(splat_dir: Path, key: str, yunits: str | None, unit: str) -> None:
    import astropy.units as u
    from astropy.io import fits

    path = spex_file(splat_dir, key)
    assert fits.getheader(path).get("YUNITS") == yunits
    s = read(path)
    if unit:
        assert u.Unit(s.flux_unit) == u.Unit(unit)
    else:
        assert s.flux_unit == ""
    assert s.meta["format"] == "spex"


def test_spex_transposed_3d_and_flagged_layouts(splat_dir: Path) -> None:
    from astropy.io import fits

    t = read(spex_file(splat_dir, "12204_11940"))  # stored N x 3
    assert fits.getdata(spex_file(splat_dir, "12204_11940")).shape == (564, 3)
    assert len(t) == 564 and t.wavelength[0] < t.wavelength[-1]
    three = read(spex_file(splat_dir, "11008_11146"))  # 2 apertures x 3 x N
    assert three.meta["n_apertures"] == 2 and len(three) == 564
    second = read(spex_file(splat_dir, "11008_11146"), aperture=1)
    assert not np.array_equal(np.nan_to_num(three.flux), np.nan_to_num(second.flux))
    flagged = read(spex_file(splat_dir, "12043_11769"))  # 4th row: Spextool flags, 147 set
    assert flagged.meta["n_flagged"] == 147
    assert read(spex_file(splat_dir, "12043_11769"), mask_flagged=True).mask.sum() >= 147


def test_spex_cross_dispersed_orders_are_never_read_as_their_first(
    splat_dir: Path, tmp_path: Path
) -> None:
    # 2M1207A's SXD spectrum (merged by Spextool: NORDERS 1) cut back into three overlapping
    # orders, as Spextool writes them before xmergeorders (orders x rows x pixels). Read as
    # the first order it would silently lose two thirds of the spectrum: refused, naming the
    # orders; aperture= reads one order on purpose.
    from astropy.io import fits

    path = spex_file(splat_dir, "12300_10869")
    data, header = fits.getdata(path, header=True)
    size = data.shape[1]
    length = size // 3 + 50
    starts = (0, size // 3, size - length)
    cube = np.stack([data[:, k : k + length] for k in starts])
    header["NORDERS"], header["ORDERS"] = 3, "5,4,3"
    out = tmp_path / "unmerged.fits"
    fits.PrimaryHDU(cube, header=header).writeto(out)
    with pytest.raises(
        FileFormatError, match="spectrum of 3 orders \\(5,4,3\\) not merged"
    ) as info:
        read(out)
    assert str(out) in str(info.value)
    middle = read(out, aperture=1)
    assert middle.wavelength[0] == pytest.approx(data[0, starts[1]], rel=1e-6)
    with pytest.raises(FileFormatError, match="aperture 1 requested but the file holds one"):
        read(path, aperture=1)  # a merged file: one spectrum


def test_spex_nan_wavelength_pixels_are_dropped_and_counted(tmp_path: Path) -> None:
    from astropy.io import fits

    w = np.linspace(0.7, 2.5, 50)
    f = np.ones(50)
    e = np.full(50, 0.1)
    w[10] = np.nan
    f[20] = np.nan
    path = tmp_path / "x.fits"
    fits.PrimaryHDU(np.vstack([w, f, e]).astype(np.float32)).writeto(path)
    s = read(path)
    assert len(s) == 49 and s.meta["dropped_pixels"] == 1
    assert s.mask.sum() == 1 and np.isnan(s.flux[s.mask]).all()


# -------------------------------------------------------------------------- JWST x1d
def write_x1d(path: Path, spectrum: Spectrum, n_ext: int = 1) -> None:
    """A small x1d file with the layout of the JWST pipeline (MultiSpecModel)."""
    from astropy.io import fits

    n = len(spectrum)
    assert spectrum.uncertainty is not None
    prim = fits.PrimaryHDU()
    for k, v in {
        "TELESCOP": "JWST",
        "INSTRUME": "NIRSPEC",
        "DETECTOR": "NRS1",
        "FILTER": "CLEAR",
        "GRATING": "PRISM",
        "EXP_TYPE": "NRS_FIXEDSLIT",
        "TARGNAME": "HD 3651B",
        "DATAMODL": "MultiSpecModel",
    }.items():
        prim.header[k] = v
    hdus = [prim]
    for i in range(n_ext):
        fjy = spectrum.flux * (1 + i)
        ejy = spectrum.uncertainty * (1 + i)
        dq = np.zeros(n, dtype=np.int32)
        dq[:3] = 1  # DO_NOT_USE at the blue edge
        fjy = fjy.copy()
        fjy[-2:] = np.nan  # the pipeline writes NaN where nothing was extracted
        cols = [
            fits.Column("WAVELENGTH", "D", unit="um", array=spectrum.wavelength),
            fits.Column("FLUX", "D", unit="Jy", array=fjy),
            fits.Column("FLUX_ERROR", "D", unit="Jy", array=ejy),
            fits.Column("FLUX_VAR_POISSON", "D", unit="Jy^2", array=ejy**2),
            fits.Column("SURF_BRIGHT", "D", unit="MJy/sr", array=fjy * 1e3),
            fits.Column("SB_ERROR", "D", unit="MJy/sr", array=ejy * 1e3),
            fits.Column("DQ", "J", array=dq),
            fits.Column("BACKGROUND", "D", unit="MJy/sr", array=np.zeros(n)),
            fits.Column("NPIXELS", "D", array=np.full(n, 5.0)),
        ]
        ext = fits.BinTableHDU.from_columns(cols, name="EXTRACT1D")
        ext.header["EXTVER"] = i + 1
        ext.header["SLTNAME"] = "S200A1"
        hdus.append(ext)
    fits.HDUList(hdus).writeto(path)


@pytest.fixture(scope="module")
def jy_spectrum(splat_dir: Path) -> Spectrum:
    """HD 3651B from the library, on an absolute scale in Jy (from its 2MASS J magnitude)."""
    from atmospec.library import load
    from atmospec.photometry import flux_calibrate

    return flux_calibrate(load("10703_10070").good(), {"J": 16.16}).to_flux_unit("Jy")


def test_jwst_x1d(jy_spectrum: Spectrum, tmp_path: Path) -> None:
    path = tmp_path / "jw01234-o001_t001_nirspec_clear-prism_x1d.fits"
    write_x1d(path, jy_spectrum)
    assert detect_format(path) == "jwst-x1d"
    s = read(path)
    assert s.flux_unit == "Jy" and s.meta["instrume"] == "NIRSPEC" and s.name == "HD 3651B"
    np.testing.assert_array_equal(s.wavelength, jy_spectrum.wavelength)
    assert s.mask[:3].all() and s.mask[-2:].all() and s.mask.sum() == 5  # DQ + NaN
    good = ~s.mask
    np.testing.assert_allclose(s.flux[good], jy_spectrum.flux[good], rtol=0, atol=0)
    # a T dwarf at J = 16 has F_nu(1.27 um) of order 1594 Jy * 10**(-0.4 * 16) ~ 6e-4 Jy
    peak = s.flux[good][np.argmin(np.abs(s.wavelength[good] - 1.27))]
    assert 1e-4 < peak < 3e-3


def test_jwst_x1d_several_extensions(jy_spectrum: Spectrum, tmp_path: Path) -> None:
    path = tmp_path / "multi_x1d.fits"
    write_x1d(path, jy_spectrum, n_ext=2)
    one, two = read_jwst_x1d(path), read_jwst_x1d(path, extension=1)
    assert one.meta["n_extract1d"] == 2
    good = ~one.mask
    np.testing.assert_allclose(two.flux[good], 2 * one.flux[good])  # the test wrote 2x flux


# ----------------------------------------------------------------- generic FITS tables
def test_fits_table_case_insensitive_columns_and_tunit(tmp_path: Path) -> None:
    from astropy.io import fits

    w_aa = np.array([10000.0, 12000.0, 15000.0, 20000.0])
    flam = np.array([1.0, 2.0, 1.5, 0.5]) * 1e-16
    cols = [
        fits.Column("Lambda", "D", unit="Angstrom", array=w_aa),
        fits.Column("FLUX", "D", unit="erg/s/cm2/Angstrom", array=flam),
        fits.Column("Sigma", "D", unit="erg/s/cm2/Angstrom", array=flam / 10),
    ]
    path = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    assert detect_format(path) == "fits-table"
    s = read(path)
    np.testing.assert_allclose(s.wavelength, w_aa / 1e4, rtol=1e-15)
    np.testing.assert_array_equal(s.uncertainty, flam / 10)
    # F_lambda -> W m-2 um-1: 1 erg s-1 cm-2 AA-1 = 1e-7 W / 1e-4 m2 / 1e-4 um = 10 W m-2 um-1
    np.testing.assert_allclose(s.to_flux_unit("W m-2 um-1").flux, flam * 10, rtol=1e-12)


def test_fits_table_single_row_of_arrays(tmp_path: Path) -> None:
    from astropy.io import fits

    w = np.linspace(1.0, 2.0, 7)
    cols = [
        fits.Column("WAVE", "7D", unit="um", array=w[None, :]),
        fits.Column("FLUX", "7D", unit="Jy", array=np.ones((1, 7))),
    ]
    path = tmp_path / "vector.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    s = read(path)
    np.testing.assert_array_equal(s.wavelength, w)
    assert s.uncertainty is None and s.flux_unit == "Jy"
    # two rows of arrays are two spectra: refused as such, not read as the first
    two = [
        fits.Column("WAVE", "7D", unit="um", array=np.vstack([w, w])),
        fits.Column("FLUX", "7D", unit="Jy", array=np.ones((2, 7))),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(two)]).writeto(
        tmp_path / "two.fits"
    )
    with pytest.raises(FileFormatError, match=r"two\.fits: column 'WAVE' holds 2 spectra"):
        read(tmp_path / "two.fits")


# ---------------------------------------------------------------------- text formats
def test_text_units_in_header_a_nm_um_agree(tmp_path: Path) -> None:
    w_um = np.array([1.0, 1.25, 1.5, 2.0])
    f = np.array([3.0, 4.0, 2.0, 1.0])
    for unit, factor in (("um", 1.0), ("nm", 1e3), ("AA", 1e4), ("Å", 1e4), ("micron", 1.0)):
        path = tmp_path / f"s_{factor:g}.txt"
        rows = "\n".join(f"{w * factor:.10g} {v}" for w, v in zip(w_um, f, strict=True))
        path.write_text(f"# object: test\n# wavelength [{unit}] flux [W m-2 um-1]\n{rows}\n")
        s = read(path)
        np.testing.assert_allclose(s.wavelength, w_um, rtol=1e-14)
        assert s.flux_unit == "W / (um m2)" and s.meta["header"]["object"] == "test"


def test_csv_with_units_and_error_column(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        "wavelength (nm),flux (mJy),flux_err (mJy)\n1000,2.0,0.1\n1500,2.5,0.2\n2000,1.0,0.1\n"
    )
    s = read(path)
    assert detect_format(path) == "csv" and s.flux_unit == "mJy"
    np.testing.assert_allclose(s.wavelength, [1.0, 1.5, 2.0])
    np.testing.assert_array_equal(s.uncertainty, [0.1, 0.2, 0.1])
    # mJy -> Jy by astropy: factor 1e-3
    np.testing.assert_allclose(s.to_flux_unit("Jy").flux, [2e-3, 2.5e-3, 1e-3])


def test_variance_and_inverse_variance_columns_give_sigma(tmp_path: Path) -> None:
    # an `ivar` or `variance` column was ignored: the spectrum had no errors and prediction
    # refused it for that; now sigma = 1/sqrt(ivar) = sqrt(variance), and the file says which
    from astropy.io import fits
    from astropy.table import Table

    w = np.array([1.0, 1.5, 2.0, 2.3])
    f = np.array([2.0, 2.5, 1.0, 0.5])
    sigma = np.array([0.1, 0.2, 0.1, 0.05])
    head = "wavelength [um],flux [W m-2 um-1],"
    (tmp_path / "ivar.csv").write_text(
        head
        + "ivar\n"
        + "".join(f"{a},{b},{1 / c**2!r}\n" for a, b, c in zip(w, f, sigma.tolist(), strict=True))
    )
    Table({"wave": w, "flux": f, "variance": sigma**2}).write(tmp_path / "var.ecsv")
    cols = [fits.Column(name=n, format="D", array=v) for n, v in
            (("WAVELENGTH", w), ("FLUX", f), ("IVAR", 1 / sigma**2))]  # fmt: skip
    fits.BinTableHDU.from_columns(cols).writeto(tmp_path / "ivar.fits")
    for name, kind in (("ivar.csv", "inverse variance"), ("var.ecsv", "variance"),
                       ("ivar.fits", "inverse variance")):  # fmt: skip
        s = read(tmp_path / name, wave_unit="um")
        assert s.uncertainty is not None
        np.testing.assert_allclose(s.uncertainty, sigma, rtol=1e-12)
        assert s.meta["uncertainty_from"].startswith(f"{kind} column")
    # ivar = 0 (no information) is an invalid pixel: refused by default, masked on request
    (tmp_path / "zero.csv").write_text(
        head + "ivar\n1.0,2.0,100\n1.5,2.5,0\n2.0,1.0,100\n2.3,0.5,400\n"
    )
    with pytest.raises(InvalidSpectrumError, match="zero.csv"):
        read(tmp_path / "zero.csv")
    masked = read(tmp_path / "zero.csv", invalid="mask")
    assert masked.mask.tolist() == [False, True, False, False]
    # a 1-sigma column wins over a variance beside it (no ambiguity)
    (tmp_path / "both.csv").write_text(head + "error,variance\n1.0,2.0,0.1,9\n1.5,2.5,0.2,9\n")
    both = read(tmp_path / "both.csv")
    assert both.uncertainty is not None
    np.testing.assert_allclose(both.uncertainty, [0.1, 0.2])


def test_a_snr_column_is_named_when_errors_are_missing(tmp_path: Path) -> None:
    from atmospec.prediction.coverage import prepare_input

    path = tmp_path / "snr.csv"
    path.write_text("wavelength [um],flux [W m-2 um-1],S/N\n1.0,2.0,50\n1.5,2.5,60\n2.0,1.0,40\n")
    s = read(path)
    assert s.uncertainty is None and s.meta["snr_column"] == "S/N"
    with pytest.raises(InvalidSpectrumError, match=r"the file's column 'S/N' holds S/N, not 1-s"):
        prepare_input(s, np.linspace(1.1, 1.9, 5))


def test_semicolon_separated_csv(tmp_path: Path) -> None:
    # a spreadsheet's export where ',' is the decimal mark separates columns with ';': once
    # refused ("cannot read '1000;2.0;0.1' as a number"), now read as the comma version is
    text = "wavelength (nm),flux (mJy),flux_err (mJy)\n1000,2.0,0.1\n1500,2.5,0.2\n2000,1.0,0.1\n"
    comma, semi = tmp_path / "c.csv", tmp_path / "s.csv"
    comma.write_text(text)
    semi.write_text(text.replace(",", ";"))
    a, b = read(comma), read(semi)
    np.testing.assert_array_equal(a.wavelength, b.wavelength)
    np.testing.assert_array_equal(a.flux, b.flux)
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    assert b.flux_unit == "mJy" and b.meta["format"] == "csv"
    # with decimal commas the values cannot be read: refused, never split at the commas
    decimal = tmp_path / "d.csv"
    decimal.write_text("wavelength (nm);flux (mJy)\n1000,5;2,0\n1500,5;2,5\n")
    with pytest.raises(FileFormatError, match="d.csv"):
        read(decimal)


def test_ecsv_from_astropy(tmp_path: Path) -> None:
    import astropy.units as u
    from astropy.table import Table

    t = Table()
    t["WAVE"] = [1.0, 1.1, 1.2] * u.um
    t["Flux"] = [1.0, 2.0, 3.0] * u.Unit("erg s-1 cm-2 AA-1")
    t["Err"] = [0.1, 0.1, 0.1] * u.Unit("erg s-1 cm-2 AA-1")
    t.meta["object"] = "someone"
    path = tmp_path / "astropy.ecsv"
    t.write(path, format="ascii.ecsv")
    s = read(path)
    assert s.meta["format"] == "ecsv" and s.meta["object"] == "someone"
    assert s.flux_unit == "erg / (Angstrom s cm2)"
    np.testing.assert_array_equal(s.uncertainty, [0.1, 0.1, 0.1])


def test_decreasing_wavelengths_are_reversed(tmp_path: Path) -> None:
    path = tmp_path / "desc.txt"
    path.write_text("# wavelength [um] flux [Jy]\n2.0 1.0\n1.5 2.0\n1.0 3.0\n")
    s = read(path)
    assert s.wavelength.tolist() == [1.0, 1.5, 2.0] and s.flux.tolist() == [3.0, 2.0, 1.0]
    assert s.meta["reversed"] is True


# ------------------------------------------------------------------ TelescopeML fluxcal
def test_telescopeml_fluxcal(tmp_path: Path) -> None:
    # The layout TelescopeML's Predictor reads: '#' comments, whitespace, columns
    # wl [um], F_lambda [erg s-1 cm-2 AA-1], F_lambda_error; extra columns ignored.
    path = tmp_path / "HD3651B_fluxcal.dat"
    path.write_text(
        "# HD 3651B SpeX prism, flux calibrated\n"
        "0.9 1.10e-17 2.0e-18 0\n1.27 9.40e-17 3.0e-18 0\n1.6 3.10e-17 2.5e-18 0\n"
        "2.1 1.20e-17 2.2e-18 0\n"
    )
    assert detect_format(path) == "telescopeml"
    s = read(path)
    assert s.name == "HD3651B" and s.flux_unit == "erg / (Angstrom s cm2)"
    # TelescopeML's F_lambda -> F_nu: F_nu = F_lambda lambda^2 / c, with F_lambda per AA:
    # 9.4e-17 erg s-1 cm-2 AA-1 * (1.27e4 AA)^2 / 2.998e18 AA s-1 = 5.057e-27 erg s-1 cm-2 Hz-1
    fnu = s.to_flux_unit("erg s-1 cm-2 Hz-1").flux[1]
    assert fnu == pytest.approx(9.4e-17 * (1.27e4) ** 2 / 2.99792458e18, rel=1e-12)


def test_fluxcal_negative_error_masked_on_request(tmp_path: Path) -> None:
    path = tmp_path / "X_fluxcal.dat"
    path.write_text("1.0 1e-16 1e-17\n1.1 1e-16 0\n1.2 1e-16 1e-17\n1.3 1e-16 1e-17\n")
    s = read(path, invalid="mask")
    assert s.mask.tolist() == [False, True, False, False]


def test_an_error_column_of_zeros_is_named_and_an_assumed_snr_serves_it(
    splat_dir: Path, tmp_path: Path
) -> None:
    # A CSV whose error column is all 0 had every pixel masked by its error, so predict and
    # fit said only "fewer than 2 unmasked pixels (0 of 564)", and --assume-snr could not
    # help. Now the column is read as no errors, the refusal says why, and an assumed S/N
    # serves it (noted). A few zero errors still only mask their pixels.
    from atmospec import library
    from atmospec.errors import InvalidSpectrumError
    from atmospec.io import read
    from atmospec.prediction.predictor import Predictor

    s = library.load("11250_11052")  # GD 165B
    good = ~s.mask
    w, f = s.wavelength[good], s.flux[good]
    path = tmp_path / "zeros.csv"
    np.savetxt(
        path,
        np.c_[w, f, np.zeros_like(f)],
        delimiter=",",
        header="wavelength,flux,error",
        comments="",
    )
    sp = read(path, wave_unit="um", invalid="mask")
    assert sp.uncertainty is None and not sp.mask.any()
    assert sp.meta["errors_unusable"].startswith(f"{f.size} of {f.size} uncertainties are zero")
    with pytest.raises(InvalidSpectrumError, match="error column cannot be used: .* zero"):
        Predictor("dback24-spex", ood=False, draws=50).predict(sp)
    res = Predictor("dback24-spex", ood=False, draws=50, assume_snr=50).predict(sp)
    assert 1200 < res.table()["teff_median"][0] < 2400
    assert "error column was not used" in res.table()["notes"][0]
    some = tmp_path / "some.csv"
    assert s.uncertainty is not None
    e = s.uncertainty[good].copy()
    e[:10] = 0.0
    np.savetxt(some, np.c_[w, f, e], delimiter=",", header="wavelength,flux,error", comments="")
    sp = read(some, wave_unit="um", invalid="mask")
    assert sp.uncertainty is not None and int(sp.mask.sum()) == 10
    with pytest.raises(InvalidSpectrumError, match="positive|uncertaint"):
        read(path, wave_unit="um")  # the strict reader still refuses zero errors
