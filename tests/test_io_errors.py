"""Every bad input gets a clear error that names the file and the problem."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atmospec.errors import DataNotFoundError, FileFormatError, InvalidSpectrumError, UnitError
from atmospec.io import detect_format, read, read_fits_table, read_jwst_x1d, read_spex, write
from atmospec.spectrum import Spectrum

HEADER = "# wavelength [um] flux [W m-2 um-1] error [W m-2 um-1]\n"


def text_file(tmp_path: Path, body: str, name: str = "s.txt", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + body)
    return path


def check(exc: type[Exception], path: Path, message: str, **kw: Any) -> None:
    with pytest.raises(exc) as info:
        read(path, **kw)
    text = str(info.value)
    assert str(path) in text, f"file not named in: {text}"
    assert message in text, f"{message!r} not in: {text}"


# ------------------------------------------------------------------ missing / empty files
def test_missing_file(tmp_path: Path) -> None:
    check(DataNotFoundError, tmp_path / "nope.fits", "no such file")


def test_directory(tmp_path: Path) -> None:
    check(FileFormatError, tmp_path, "is a directory")


def test_empty_file(tmp_path: Path) -> None:
    for name in ("e.fits", "e.txt", "e.csv", "e.ecsv", "E_fluxcal.dat"):
        (tmp_path / name).write_bytes(b"")
        check(FileFormatError, tmp_path / name, "the file is empty (0 bytes)")


def test_blank_text_file(tmp_path: Path) -> None:
    check(FileFormatError, text_file(tmp_path, "\n  \n", header=""), "the file is empty (no data")


def test_header_only_text_file(tmp_path: Path) -> None:
    check(FileFormatError, text_file(tmp_path, ""), "no numeric data rows")


# ----------------------------------------------------------------------- bad values
def test_nan_flux_in_user_file_is_an_error(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1.0 0.1\n1.1 nan 0.1\n1.2 1.0 0.1\n")
    check(InvalidSpectrumError, path, "1 flux value(s) are NaN or infinite (first at 1.1 um)")
    assert read(path, invalid="mask").mask.tolist() == [False, True, False]


def test_nan_flux_in_user_arrays_is_an_error() -> None:
    with pytest.raises(InvalidSpectrumError, match=r"my-arrays: 1 flux value\(s\) are NaN"):
        Spectrum([1.0, 2.0, 3.0], [1.0, np.nan, 1.0], meta={"source": "my-arrays"})
    ok = Spectrum([1.0, 2.0, 3.0], [1.0, np.nan, 1.0], mask=[False, True, False])
    assert ok.mask.sum() == 1  # masked NaN is allowed


@pytest.mark.parametrize("value", ["0", "-0.1", "nan"])
def test_bad_uncertainty(tmp_path: Path, value: str) -> None:
    path = text_file(tmp_path, f"1.0 1.0 0.1\n1.1 1.0 {value}\n1.2 1.0 0.1\n")
    check(InvalidSpectrumError, path, "1 uncertainty value(s) are missing, zero, negative or NaN")


def test_unsorted_wavelengths(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1 0.1\n1.2 1 0.1\n1.1 1 0.1\n1.3 1 0.1\n")
    check(InvalidSpectrumError, path, "wavelengths are not sorted in increasing order (first")


def test_repeated_wavelengths(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1 0.1\n1.1 1 0.1\n1.1 1 0.1\n")
    check(InvalidSpectrumError, path, "wavelengths are not unique (1.1 repeats at index 2)")


def test_nan_wavelength_in_user_file(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1 0.1\nnan 1 0.1\n1.2 1 0.1\n")
    check(InvalidSpectrumError, path, "1 wavelength value(s) are NaN or infinite")


def test_zero_or_negative_wavelengths(tmp_path: Path) -> None:
    # Sorted and finite, but no wavelength is <= 0: such a column is an offset, a velocity or
    # a wrong unit, and was read as it was.
    path = text_file(tmp_path, "-0.1 1 0.1\n0.0 1 0.1\n0.1 1 0.1\n0.2 1 0.1\n")
    check(
        InvalidSpectrumError, path, "2 of 4 wavelengths are zero or negative (the first is -0.1 um)"
    )


def test_single_row(tmp_path: Path) -> None:
    check(InvalidSpectrumError, text_file(tmp_path, "1.0 1 0.1\n"), "needs at least 2 points")


# -------------------------------------------------------------------------- units
def test_unknown_unit(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1 1\n2 1\n", header="# wavelength [um] flux [bananas per s]\n")
    check(UnitError, path, "unknown unit 'bananas per s' for column 'flux'")


def test_wavelength_unit_that_is_not_a_wavelength(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1 1\n2 1\n", header="# wavelength [Jy] flux [Jy]\n")
    check(UnitError, path, "has unit 'Jy', which is not a wavelength")


def test_flux_unit_that_is_not_a_flux_density(tmp_path: Path) -> None:
    # erg s-1 cm-2 is a power per area (an SED's lambda F_lambda): the remedy is named
    path = text_file(tmp_path, "1 1\n2 1\n", header="# wavelength [um] flux [erg s-1 cm-2]\n")
    check(UnitError, path, "which is not a spectral flux density")
    check(UnitError, path, "divide such a column by the wavelength")
    kelvin = text_file(tmp_path, "1 1\n2 1\n", name="k.txt", header="# wavelength [um] flux [K]\n")
    check(UnitError, kelvin, "which is not a spectral flux density")
    with pytest.raises(UnitError) as err:
        read(kelvin)
    assert "divide" not in str(err.value)


@pytest.mark.parametrize("unit", ["ct/s", "adu", "electron s-1", "DN"])
def test_detector_counts_are_refused_as_not_flux_calibrated(tmp_path: Path, unit: str) -> None:
    # a raw extraction's shape holds the throughput and telluric bands: not a flux density,
    # and read as relative flux it would be fitted as if it were the object's
    path = text_file(tmp_path, "1 1\n2 1\n", header=f"# wavelength [um] flux [{unit}]\n")
    check(UnitError, path, "detector counts")
    check(UnitError, path, "flux-calibrate it first")
    assert read(path, flux_unit="").flux_unit == ""  # the caller's statement is taken


def test_missing_wavelength_unit(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1 1\n2 1\n", header="")
    check(UnitError, path, "no unit for the wavelength column")
    # the remedy in both spellings: command line and Python
    check(UnitError, path, "--wave-unit um on the command line, wave_unit='um' in Python")
    assert read(path, wave_unit="nm").wavelength.tolist() == [0.001, 0.002]


def test_unknown_tunit_in_fits_table(tmp_path: Path) -> None:
    from astropy.io import fits

    cols = [
        fits.Column("WAVE", "D", unit="um", array=[1.0, 2.0]),
        fits.Column("FLUX", "D", unit="furlongs", array=[1.0, 1.0]),
    ]
    path = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    check(UnitError, path, "unknown unit 'furlongs' for column 'FLUX'")


# ------------------------------------------------------------ corrupt / truncated files
def real_fits_bytes(tmp_path: Path) -> bytes:
    from astropy.io import fits

    path = tmp_path / "good.fits"
    fits.PrimaryHDU(np.vstack([np.linspace(1, 2, 2000), np.ones(2000), np.ones(2000)])).writeto(
        path
    )
    return path.read_bytes()


def test_truncated_fits(tmp_path: Path) -> None:
    raw = real_fits_bytes(tmp_path)
    path = tmp_path / "cut.fits"
    path.write_bytes(raw[: len(raw) // 2])
    check(FileFormatError, path, "not a readable FITS file (truncated or corrupt)")


def test_truncated_fits_gz(tmp_path: Path) -> None:
    raw = gzip.compress(real_fits_bytes(tmp_path))
    path = tmp_path / "cut.fits.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(FileFormatError, match="cut.fits.gz") as info:
        read(path)
    assert "corrupt" in str(info.value) or "truncated" in str(info.value)


def test_corrupt_fits_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.fits"
    path.write_bytes(b"SIMPLE  =                    T" + b"\x07garbage" * 400)
    check(FileFormatError, path, "not a readable FITS file (truncated or corrupt)")


def test_fits_name_without_fits_content(tmp_path: Path) -> None:
    path = tmp_path / "fake.fits"
    path.write_text("1 2\n3 4\n")
    check(FileFormatError, path, "does not start with a FITS header")


def test_binary_file_of_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\x00\x01\x02" * 100)
    check(FileFormatError, path, "binary file of unknown format")


# ------------------------------------------------------------------ layout / columns
def test_text_row_with_missing_column(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1 0.1\n1.1 1\n1.2 1 0.1\n")
    check(FileFormatError, path, "line 3 has 2 columns, expected 3")


def test_text_value_not_a_number(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1 0.1\n1.1 abc 0.1\n")
    check(FileFormatError, path, "line 3: cannot read 'abc' as a number")


def test_text_value_with_digit_separators_is_not_a_number(tmp_path: Path) -> None:
    # Python's float() reads '10703_10070' (digit groups) but the table parser does not: a
    # list of library keys under a path line leaked numpy's bare ValueError, naming no file.
    path = text_file(tmp_path, "1.0 1_000\n1.1 2\n", header="")
    check(FileFormatError, path, "line 1: cannot read '1_000' as a number")
    listing = tmp_path / "list.txt"
    listing.write_text("spectra/a.fits\n10703_10070\n")
    check(FileFormatError, listing, "line 2: cannot read '10703_10070' as a number")


def test_header_names_wrong_number_of_columns(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1.0 1\n1.1 1\n", header="wavelength flux error\n")
    check(FileFormatError, path, "the header names 3 columns")


def test_one_column(tmp_path: Path) -> None:
    check(FileFormatError, text_file(tmp_path, "1\n2\n", header=""), "needs at least 2 columns")


def test_missing_flux_column_in_text(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1 1\n2 1\n", header="# wavelength [um] counts [Jy]\n")
    check(FileFormatError, path, "no flux column; expected one of")


def test_missing_column_in_fits_table(tmp_path: Path) -> None:
    from astropy.io import fits

    cols = [fits.Column("WAVE", "D", unit="um", array=[1.0, 2.0])]
    path = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    with pytest.raises(FileFormatError, match="no flux column") as info:
        read_fits_table(path)
    assert str(path) in str(info.value) and "['WAVE']" in str(info.value)


def test_missing_column_in_x1d(tmp_path: Path) -> None:
    from astropy.io import fits

    cols = [fits.Column("WAVELENGTH", "D", unit="um", array=[1.0, 2.0])]
    path = tmp_path / "x1d.fits"
    hdu = fits.BinTableHDU.from_columns(cols, name="EXTRACT1D")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    check(FileFormatError, path, "no flux column")


def test_x1d_format_forced_on_other_fits(tmp_path: Path) -> None:
    from astropy.io import fits

    path = tmp_path / "img.fits"
    fits.PrimaryHDU(np.ones((3, 10))).writeto(path)
    with pytest.raises(FileFormatError, match="no EXTRACT1D extension"):
        read_jwst_x1d(path)


def test_fits_without_spectrum(tmp_path: Path) -> None:
    from astropy.io import fits

    path = tmp_path / "empty.fits"
    fits.PrimaryHDU().writeto(path)
    check(FileFormatError, path, "neither a spectrum array in the primary HDU nor a table")


def test_spex_wrong_shape(tmp_path: Path) -> None:
    from astropy.io import fits

    path = tmp_path / "wrong.fits"
    fits.PrimaryHDU(np.ones((6, 6))).writeto(path)
    check(FileFormatError, path, "expected a 2-4 x N array (wavelength, flux, error[, flag])")


def test_spex_primary_without_data(tmp_path: Path) -> None:
    from astropy.io import fits

    path = tmp_path / "nodata.fits"
    fits.PrimaryHDU().writeto(path)
    with pytest.raises(FileFormatError, match="the primary HDU holds no data"):
        read_spex(path)


def test_ecsv_name_without_ecsv_content(tmp_path: Path) -> None:
    path = tmp_path / "x.ecsv"
    path.write_text("wavelength,flux\n1,2\n")
    check(FileFormatError, path, "named .ecsv but the first line is not '# %ECSV")


def test_malformed_ecsv(tmp_path: Path) -> None:
    path = tmp_path / "x.ecsv"
    path.write_text("# %ECSV 1.0\n# ---\n# datatype: [ {name: a\nwavelength flux\n1 2\n")
    check(FileFormatError, path, "malformed ECSV")


def test_fluxcal_with_two_columns(tmp_path: Path) -> None:
    path = tmp_path / "X_fluxcal.dat"
    path.write_text("1.0 1e-16\n1.1 1e-16\n")
    check(FileFormatError, path, "a TelescopeML fluxcal file has 3 columns")


def test_unknown_format_name(tmp_path: Path) -> None:
    path = text_file(tmp_path, "1 1 1\n2 1 1\n")
    check(FileFormatError, path, "unknown format 'hdf5'", format="hdf5")


def test_detect_does_not_guess_content_of_fits_named_text(tmp_path: Path) -> None:
    path = tmp_path / "s.fits.gz"
    path.write_bytes(gzip.compress(b"1 2\n3 4\n"))
    with pytest.raises(FileFormatError, match="does not start with a FITS header"):
        detect_format(path)


# ------------------------------------------------------------------------ writing
def test_write_unknown_extension(tmp_path: Path) -> None:
    s = Spectrum([1.0, 2.0], [1.0, 1.0])
    with pytest.raises(FileFormatError, match=r"s\.txt: cannot choose a format from the name"):
        write(s, tmp_path / "s.txt")


def test_failed_write_leaves_existing_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "keep.ecsv"
    target.write_text("previous content")
    bad = Spectrum([1.0, 2.0], [1.0, 1.0], meta={"obj": object()})
    with pytest.raises(FileFormatError, match="metadata cannot be written"):
        write(bad, target)
    assert target.read_text() == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.ecsv"]  # no temporary left
