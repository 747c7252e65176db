"""Grid writer and loaders on small files the tests write: folders, TelescopeML CSV, Sonora."""

from __future__ import annotations

import bz2
import gzip
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from atmospec.errors import FileFormatError, InvalidSpectrumError, OutOfGridError
from atmospec.grids import GridWriter, ModelGrid
from atmospec.grids.check import find_duplicates
from atmospec.grids.loaders.folder import load_folder
from atmospec.grids.loaders.sonora import load_sonora, parse_sonora_name
from atmospec.grids.loaders.telescopeml import load_telescopeml

WAVE = np.linspace(1.0, 2.0, 11)


def _log_model(teff: float, logg: float) -> np.ndarray:
    """A spectrum whose log flux is linear in (teff, logg): linear interpolation is exact."""
    return np.exp(1e-3 * teff * (1 + 0.2 * WAVE) + 0.5 * logg)


def test_writer_metadata_and_atomicity(tmp_path: Path) -> None:
    path = tmp_path / "g.h5"
    with GridWriter(path, WAVE, ("teff",), name="g", credit="me", flux_unit="Jy") as w:
        w.add({"teff": 1000.0}, np.ones(11), label="a.txt")
    with h5py.File(path) as h5:
        meta = json.loads(h5.attrs["atmospec_grid"])
    assert meta["name"] == "g" and meta["credit"] == "me" and meta["flux_unit"] == "Jy"
    assert meta["param_units"] == {"teff": "K"} and meta["n_spectra"] == 1
    # a failure while writing leaves the previous file untouched and no temporary behind
    with pytest.raises(InvalidSpectrumError, match=r"b.txt: 1 flux value\(s\) are zero or neg"):
        with GridWriter(path, WAVE, ("teff",), name="g") as w:
            w.add([1100.0], np.r_[np.ones(10), 0.0], label="b.txt")
    # no temporary file left behind; the grid and its sha256 sidecar only
    assert len(ModelGrid(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.h5", "g.h5.sha256"]
    with pytest.raises(InvalidSpectrumError, match=r"c.txt: 1 flux value\(s\) are NaN"):
        with GridWriter(tmp_path / "h.h5", WAVE, ("teff",), name="h") as w:
            w.add([1.0], np.r_[np.nan, np.ones(10)], label="c.txt")
    with pytest.raises(FileFormatError, match=r"appear more than once.*\['x', 'y'\]"):
        with GridWriter(tmp_path / "d.h5", WAVE, ("teff",), name="d") as w:
            w.add([1.0], np.ones(11), label="x")
            w.add([1.0], np.ones(11), label="y")


def test_regular_multilinear_and_sparse_delaunay_are_exact_for_linear_log_flux(
    tmp_path: Path,
) -> None:
    nodes = [(t, g) for t in (1000.0, 1200.0, 1500.0) for g in (4.0, 5.0)]
    with GridWriter(tmp_path / "r.h5", WAVE, ("teff", "logg"), name="r") as w:
        for t, g in nodes:
            w.add([t, g], _log_model(t, g))
    reg = ModelGrid(tmp_path / "r.h5")
    assert reg.regular
    pts = np.array([[1100.0, 4.3], [1499.0, 4.99], [1000.0, 5.0]])
    want = np.array([_log_model(t, g) for t, g in pts])
    np.testing.assert_allclose(reg.interpolate(pts), want, rtol=1e-6)  # float32 storage
    # drop one corner: the grid becomes sparse and uses the Delaunay triangulation
    sparse = reg.select(np.arange(len(reg)) != 5, tmp_path / "s.h5")  # drops (1500, 5.0)
    assert not sparse.regular
    np.testing.assert_allclose(sparse.interpolate([1100.0, 4.3]), want[0], rtol=1e-6)
    with pytest.raises(OutOfGridError, match="outside"):
        sparse.interpolate([1499.0, 4.99])  # beyond the hull once the corner is gone
    assert sparse.contains(pts[:1]).tolist() == [True]


def _write_two_column(path: Path, wave: np.ndarray, flux: np.ndarray, header: str = "") -> None:
    text = header + "".join(f"{w:.6f} {f:.10e}\n" for w, f in zip(wave, flux, strict=True))
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def test_folder_with_pattern_converters_and_resampling(tmp_path: Path) -> None:
    src = tmp_path / "models"
    src.mkdir()
    for t in (1000, 1100):
        for g_ms2 in (100, 1000):  # m/s^2 in the names, as Sonora writes them
            logg = math.log10(100 * g_ms2)
            _write_two_column(
                src / f"sp_t{t}g{g_ms2}nc_m0.0.gz", WAVE, _log_model(t, logg), "# wave flux\n"
            )
    # one file on a wider, finer axis: resampled onto the common axis, and said so
    fine = np.linspace(0.9, 2.1, 121)
    _write_two_column(src / "sp_t1200g100nc_m0.0.gz", fine, np.full(fine.size, 5.0))
    (src / "README").write_text("not a spectrum")
    grid = load_folder(
        src,
        "sp_t{teff}g{logg}nc_m{mh}",
        name="toy",
        out=tmp_path / "toy.h5",
        converters={"logg": lambda g: round(math.log10(100 * g), 2)},
    )
    assert len(grid) == 5 and grid.param_names == ("teff", "logg", "mh")
    assert grid.axes["logg"].tolist() == [4.0, 5.0]
    np.testing.assert_allclose(grid.wavelength, WAVE, rtol=1e-6)  # written with 6 decimals
    notes = " ".join(grid.metadata["notes"])
    assert "1 file(s) had a different wavelength axis" in notes and "1 file(s)" in notes
    # flux conservation of a flat spectrum: still 5 everywhere after resampling
    np.testing.assert_allclose(grid.flux(grid.node_index({"teff": 1200, "logg": 4, "mh": 0})[0]), 5)
    with pytest.raises(FileFormatError, match="no file name matches the pattern"):
        load_folder(src, "lte{teff}", name="none", out=tmp_path / "n.h5")


def test_folder_rejects_negative_flux_naming_the_file(tmp_path: Path) -> None:
    src = tmp_path / "bad"
    src.mkdir()
    _write_two_column(src / "m_t1000.txt", WAVE, np.ones(11))
    _write_two_column(src / "m_t1100.txt", WAVE, np.r_[np.ones(10), -1.0])
    with pytest.raises(InvalidSpectrumError, match=r"m_t1100.txt: 1 flux value\(s\) are zero"):
        load_folder(src, "m_t{teff}", name="bad", out=tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_telescopeml_wide_csv_and_its_duplicates(tmp_path: Path) -> None:
    # TelescopeML's layout: gravity,temperature,c_o_ratio,metallicity, then wavelengths (um)
    # in decreasing order; its grid had identical spectra under different [M/H] labels
    wl = WAVE[::-1]
    header = "gravity,temperature,c_o_ratio,metallicity," + ",".join(f"{w:.4f}" for w in wl)
    rows = []
    for mh in (0.0, 0.5):
        for t in (800.0, 900.0):
            flux = _log_model(t, 4.0)[::-1]
            rows.append(",".join(map(str, [4.0, t, 1.0, mh, *flux])))
    path = tmp_path / "browndwarf_R100.csv.bz2"
    path.write_bytes(bz2.compress(("\n".join([header, *rows]) + "\n").encode()))
    grid = load_telescopeml(path, out=tmp_path / "tml.h5")
    assert grid.param_names == ("logg", "teff", "co", "mh") and len(grid) == 4
    np.testing.assert_allclose(grid.wavelength, WAVE, atol=1e-4)
    np.testing.assert_allclose(grid.flux(0), _log_model(800.0, 4.0), rtol=1e-6)  # re-sorted
    dups = find_duplicates(grid)
    assert [(d["kind"], d["differing"], len(d["rows"])) for d in dups] == [
        ("exact", ["mh"], 2),
        ("exact", ["mh"], 2),
    ]
    assert dups[0]["labels"] == ["browndwarf_R100.csv.bz2 line 2", "browndwarf_R100.csv.bz2 line 4"]
    bad = tmp_path / "bad.csv"
    bad.write_text("temperature,x\n1,2\n")
    with pytest.raises(FileFormatError, match=r"bad.csv: parameter column\(s\) \['gravity'"):
        load_telescopeml(bad, out=tmp_path / "b.h5")


def test_near_duplicates_differing_by_scale_are_reported(tmp_path: Path) -> None:
    with GridWriter(tmp_path / "n.h5", WAVE, ("teff",), name="n") as w:
        w.add([1.0], _log_model(1000, 4), label="a")
        w.add([2.0], 3.0 * _log_model(1000, 4), label="b")  # same shape, 3x the flux
        w.add([3.0], _log_model(2000, 4) * np.linspace(1, 2, 11), label="c")
    dups = find_duplicates(ModelGrid(tmp_path / "n.h5"))
    assert [(d["kind"], d["labels"]) for d in dups] == [("near", ["a", "b"])]
    assert dups[0]["max_frac_diff"] < 1e-6


def test_sonora_release_formats_and_units(tmp_path: Path) -> None:
    wave_um = np.array([1.0, 1.5, 2.0])
    # Bobcat: 2 header lines, micron + F_nu (erg/cm2/s/Hz), wavelength decreasing
    bob = tmp_path / "bobcat"
    bob.mkdir()
    for t in (1000, 1100):
        text = " Teff grav Y f_rain co fe/h\n microns Flux (erg/cm^2/s/Hz)\n" + "".join(
            f"{w} {1e-5:.6e}\n" for w in wave_um[::-1]
        )
        (bob / f"sp_t{t}g1000nc_m0.0").write_text(text)
    grid = load_sonora(bob, "bobcat", out=tmp_path / "bob.h5")
    assert grid.param_names == ("teff", "logg", "mh", "co") and grid.axes["logg"].tolist() == [5.0]
    # F_lambda = F_nu c / lambda^2: 1e-5 * 2.998e14 um/s / (1 um)^2 = 2.998e9 erg/s/cm2/um
    np.testing.assert_allclose(grid.flux(0), 1e-5 * 2.99792458e14 / wave_um**2, rtol=1e-6)
    # Diamondback: 3 header lines, micron + F_lambda in W/m2/m (1 W/m2/m = 1e-3 erg/s/cm2/um)
    db = tmp_path / "diamondback"
    db.mkdir()
    header = "Teff 1000 g 316\n wavelength (micron)  flux (W/m2/m)\n----\n"
    for name in ("t1000g316f2_m0.0_co1.0.spec", "t1000g316nc_m0.0_co1.0.spec"):
        (db / name).write_text(header + "".join(f"{w} 1.0e6\n" for w in wave_um))
    grid = load_sonora(db, "diamondback", out=tmp_path / "db.h5")
    assert grid.axes["fsed"].tolist() == [2.0, 10.0] and grid.axes["logg"].tolist() == [4.5]
    np.testing.assert_allclose(grid.flux(0), 1e3)
    # Cholla: 2 header lines, W/m2/m; gravity 1780 m/s^2 -> log g 5.25
    ch = tmp_path / "cholla"
    ch.mkdir()
    (ch / "1000K_1780g_logkzz4.spec").write_text(
        "header\nwavelength flux\n" + "".join(f"{w} 2.0e6\n" for w in wave_um)
    )
    grid = load_sonora(ch, "cholla", out=tmp_path / "ch.h5")
    assert grid.params.iloc[0].to_dict() == {"teff": 1000.0, "logg": 5.25, "kzz": 4.0}
    np.testing.assert_allclose(grid.flux(0), 2e3)
    (ch / "1100K_1780g_logkzz4.spec").write_text("header\nwavelength flux\n1.0 abc\n")
    with pytest.raises(FileFormatError, match=r"1100K_1780g_logkzz4.spec: no numeric rows"):
        load_sonora(ch, "cholla", out=tmp_path / "ch2.h5")
    assert parse_sonora_name("bobcat", "sp_t1000g1000nc_m+0.0_co1.5") == {
        "teff": 1000.0,
        "logg": 5.0,
        "mh": 0.0,
        "co": 1.5,
    }
