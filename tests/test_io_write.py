"""Writers: ECSV and FITS round trips are exact (arrays, mask, unit, name, metadata but for
its source, which is the file read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.io import detect_format, read, write
from atmospec.spectrum import Spectrum


def make_spectrum(with_unc: bool = True, unit: str = "W m-2 um-1") -> Spectrum:
    rng = np.random.default_rng(7)
    w = np.sort(rng.uniform(0.7, 2.5, 300))
    f = rng.normal(1e-15, 3e-16, 300)  # some negative values: real noisy data has them
    f[[5, 17]] = np.nan  # masked pixels may hold NaN
    mask = np.zeros(300, dtype=bool)
    mask[[5, 17, 200]] = True
    unc = rng.uniform(1e-17, 5e-17, 300) if with_unc else None
    meta = {
        "source": "10703_10070",
        "object": "HD 3651B",
        "snr": 9.0,
        "mags": {"J": 16.16, "H": 16.68, "Ks": None},
        "flags": [1, 2, 3],
        "ok": True,
        "pi": float(np.pi),
        "tiny": 1.2345678901234567e-300,
    }
    return Spectrum(w, f, unc, mask=mask, meta=meta, flux_unit=unit, name="HD 3651B")


@pytest.mark.parametrize("name", ["s.ecsv", "s.fits", "s.fits.gz"])
@pytest.mark.parametrize("with_unc", [True, False])
def test_round_trip_is_exact(tmp_path: Path, name: str, with_unc: bool) -> None:
    s = make_spectrum(with_unc)
    path = write(s, tmp_path / name)
    back = read(path)
    np.testing.assert_array_equal(back.wavelength, s.wavelength)
    np.testing.assert_array_equal(back.flux, s.flux)  # NaN in the same (masked) places
    np.testing.assert_array_equal(back.mask, s.mask)
    if with_unc:
        np.testing.assert_array_equal(back.uncertainty, s.uncertainty)
    else:
        assert back.uncertainty is None
    assert back.flux_unit == s.flux_unit and back.name == s.name
    # the meta but for its source: the file read, the one written kept as the origin
    assert back.meta == {**s.meta, "source": str(path), "origin": s.meta["source"]}


def test_round_trip_normalised_flux(tmp_path: Path) -> None:
    s = make_spectrum(unit="").good().normalize("max")
    for name in ("n.ecsv", "n.fits"):
        back = read(write(s, tmp_path / name))
        assert back.flux_unit == "" and back.meta["normalisation"]["how"] == "max"
        np.testing.assert_array_equal(back.flux, s.flux)


def test_written_files_are_standard(tmp_path: Path) -> None:
    """Other tools read them: astropy sees units and columns."""
    import astropy.units as u
    from astropy.io import fits
    from astropy.table import Table

    s = make_spectrum()
    write(s, tmp_path / "s.fits")
    write(s, tmp_path / "s.ecsv")
    with fits.open(tmp_path / "s.fits") as hdul:
        assert hdul["SPECTRUM"].columns["WAVELENGTH"].unit == "um"
        assert u.Unit(hdul["SPECTRUM"].columns["FLUX"].unit) == u.Unit("W m-2 um-1")
    t = Table.read(tmp_path / "s.ecsv", format="ascii.ecsv")
    assert str(t["wavelength"].unit) == "um" and t["mask"].dtype == bool
    assert detect_format(tmp_path / "s.fits") == "fits-table"


def test_spectrum_read_write_methods(tmp_path: Path) -> None:
    s = make_spectrum()
    path = s.write(tmp_path / "m.ecsv")
    assert Spectrum.read(path).meta == {**s.meta, "source": str(path), "origin": s.meta["source"]}


def test_overwrite_replaces_atomically(tmp_path: Path) -> None:
    s = make_spectrum()
    target = tmp_path / "s.fits"
    write(s, target)
    changed = s.copy(name="other")
    write(changed, target)
    assert read(target).name == "other"
    assert [p.name for p in tmp_path.iterdir()] == ["s.fits"]
