"""Delimited tables: an empty field is a missing value, read as NaN (what pandas writes for NaN);
a row with no value, or a pixel without a wavelength, is refused naming its line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atmospec.errors import FileFormatError, InvalidSpectrumError
from atmospec.io import read
from atmospec.prediction.sources import read_spectrum


def _frame(n: int = 60) -> pd.DataFrame:
    """A smooth spectrum (wavelength in micron, per the column's name) with 1-sigma errors."""
    w = np.linspace(0.9, 2.4, n)
    return pd.DataFrame(
        {"wavelength_um": w, "flux": np.exp(-((w - 1.25) ** 2)), "flux_err": np.full(n, 0.01)}
    )


def _gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """Five missing fluxes and two missing errors, each at a known row."""
    out = frame.copy()
    out.loc[10:14, "flux"] = np.nan
    out.loc[[30, 41], "flux_err"] = np.nan
    return out


def test_pandas_empty_fields_read_as_nan_tokens(tmp_path: Path) -> None:
    frame = _gaps(_frame())
    empty, tokens = tmp_path / "empty.csv", tmp_path / "tokens.csv"
    frame.to_csv(empty, index=False)  # pandas' default: NaN written as an empty field
    frame.to_csv(tokens, index=False, na_rep="nan")
    assert "," * 2 in empty.read_text() and "nan" not in empty.read_text()
    a, b = read(empty, invalid="mask"), read(tokens, invalid="mask")
    np.testing.assert_array_equal(a.wavelength, frame["wavelength_um"].to_numpy())
    np.testing.assert_array_equal(a.flux, b.flux)  # NaN in the same places
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    np.testing.assert_array_equal(a.mask, b.mask)
    # the 5 missing fluxes and the 2 pixels without an error are the masked ones
    assert np.flatnonzero(a.mask).tolist() == [10, 11, 12, 13, 14, 30, 41]
    # predict and fit read files so (NaN pixels masked, left to the coverage policy)
    np.testing.assert_array_equal(read_spectrum(empty).mask, a.mask)
    # and refusing NaN refuses them as it refuses 'nan' tokens: for the NaN, not the text
    with pytest.raises(InvalidSpectrumError, match="5 flux value"):
        read(empty, invalid="error")


def test_semicolon_and_headerless_tables_read_empty_fields(tmp_path: Path) -> None:
    f = tmp_path / "semi.csv"
    f.write_text("wavelength [um];flux;error\n1.0;2.0;0.1\n1.1;;0.1\n1.2;3.0;0.1\n")
    assert np.isnan(read(f, invalid="mask").flux[1])
    g = tmp_path / "bare.csv"
    g.write_text("1.0,2.0,0.1\n1.1,2.5,\n1.2,3.0,0.1\n")
    s = read(g, invalid="mask", wave_unit="um")
    assert s.uncertainty is not None and np.isnan(s.uncertainty[1])
    assert s.mask.tolist() == [False, True, False]


def test_empty_wavelength_is_refused_naming_its_line(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[[7, 20], "wavelength_um"] = np.nan
    f = tmp_path / "nowave.csv"
    frame.to_csv(f, index=False)
    # line 1 is the header, so row 7 is on line 9
    for invalid in ("error", "mask"):
        with pytest.raises(FileFormatError, match=r"nowave.csv: line 9 \(and 1 more lines\): the "):
            read(f, invalid=invalid)
    g = tmp_path / "bare.csv"
    g.write_text("1.0,2.0,0.1\n,2.5,0.1\n1.2,3.0,0.1\n")
    with pytest.raises(FileFormatError, match=r"line 2: the wavelength \(column 1\) is empty"):
        read(g, invalid="mask", wave_unit="um")


def test_row_of_empty_fields_is_refused_naming_its_line(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[25, :] = np.nan  # pandas writes ",,"
    f = tmp_path / "blank_row.csv"
    frame.to_csv(f, index=False)
    assert f.read_text().splitlines()[26] == ",,"
    with pytest.raises(FileFormatError, match=r"blank_row.csv: line 27: every field is empty"):
        read(f, invalid="mask")


def test_whitespace_tables_are_unchanged(tmp_path: Path) -> None:
    """Without a delimiter no field can be empty: a short row is still a truncated one."""
    f = tmp_path / "s.txt"
    f.write_text("# wavelength [um] flux error\n1.0 2.0 0.1\n1.1 0.1\n1.2 3.0 0.1\n")
    with pytest.raises(FileFormatError, match="line 3 has 2 columns, expected 3"):
        read(f, invalid="mask")


def test_a_given_flux_unit_that_replaces_the_files_own_is_said(tmp_path):
    # --flux-unit (flux_unit=) is the escape hatch for a file whose unit is missing or wrong;
    # when it replaces a unit the file states, the answer must say so rather than read an
    # F_lambda file as F_nu without a word (ECSV, CSV named for its unit, FITS image BUNIT).
    from astropy.io import fits

    from atmospec import io
    from atmospec.io.flux_density import as_flux_lambda
    from atmospec.spectrum import Spectrum

    wave = np.linspace(1.0, 2.0, 50)
    s = Spectrum(wave, np.full(50, 1e-15), np.full(50, 1e-17), flux_unit="erg s-1 cm-2 AA-1")
    s.write(tmp_path / "flam.ecsv")
    pd.DataFrame({"wavelength_um": wave, "flux_mjy": 1.0, "err_mjy": 0.01}).to_csv(
        tmp_path / "fnu.csv", index=False
    )
    hdu = fits.PrimaryHDU(np.full(50, 1e-15))
    hdu.header.update(CRVAL1=1.0, CDELT1=1.0 / 49, CRPIX1=1, CUNIT1="um", BUNIT="erg/s/cm2/A")
    hdu.writeto(tmp_path / "flam.fits")
    for name, given, stated in (
        ("flam.ecsv", "mJy", "erg / (Angstrom s cm2)"),
        ("fnu.csv", "W m-2 um-1", "mJy"),
        ("flam.fits", "mJy", "erg / (Angstrom s cm2)"),
    ):
        sp = io.read(tmp_path / name, flux_unit=given)
        assert sp.meta["flux_unit_in_file"] == stated, name
        _, notes = as_flux_lambda(sp)
        assert any(f"not in {stated} as the file states" in n for n in notes), (name, notes)
        # the same unit given again, or none given: nothing to say
        same = io.read(tmp_path / name, flux_unit=stated)
        assert "flux_unit_in_file" not in same.meta
        assert "flux_unit_in_file" not in io.read(tmp_path / name).meta
