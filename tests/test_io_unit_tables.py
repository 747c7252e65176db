"""IPAC tables and VOTables (the archives' and the Virtual Observatory's formats), written from
real library spectra the way IRSA and Simple Spectral Access services write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import FileFormatError, InvalidSpectrumError
from atmospec.io import detect_format, read
from atmospec.spectrum import Spectrum

HD3651B = "10703_10070"  # a T8 companion, 564 pixels


@pytest.fixture
def hd3651b(splat_dir: Path) -> Spectrum:
    s = read(splat_dir / "resources/Spectra/Public/SPEX-PRISM" / f"{HD3651B}.fits.gz")
    assert s.uncertainty is not None and not s.mask.any()
    return s


def _sigma(s: Spectrum) -> np.ndarray:
    assert s.uncertainty is not None
    return s.uncertainty


def _votable(path: Path, tables: list[tuple[list[dict], list[tuple]]], **params: str) -> Path:
    """Write a VOTable of ``tables`` (FIELD attributes, rows) in BINARY2 serialisation, with
    ``params`` as PARAMs of the resource."""
    import warnings

    from astropy.io.votable.tree import Field, Param, Resource, TableElement, VOTableFile

    with warnings.catch_warnings():  # VOUnit remarks on 'Angstrom'
        warnings.simplefilter("ignore")
        vot = VOTableFile()
        res = Resource()
        vot.resources.append(res)
        for key, value in params.items():
            res.params.append(
                Param(vot, name=key, datatype="char", arraysize="*", value=value, ucd="meta.id")
            )
        for fields, rows in tables:
            t = TableElement(vot)
            res.tables.append(t)
            t.fields.extend(Field(vot, **f) for f in fields)
            t.create_arrays(len(rows))
            for i, row in enumerate(rows):
                t.array[i] = row
        vot.to_xml(str(path), tabledata_format="binary2")
    return path


def test_ipac_table_as_irsa_serves_it(hd3651b: Spectrum, tmp_path: Path) -> None:
    from astropy.table import MaskedColumn, Table

    t = Table(meta={"keywords": {"OBJECT": {"value": "HD 3651B"}}})
    t["wave"] = MaskedColumn(hd3651b.wavelength, unit="um")
    t["flux"] = MaskedColumn(hd3651b.flux * 1e-16, unit="erg / (s cm2 Angstrom)")
    t["flux_err"] = MaskedColumn(_sigma(hd3651b) * 1e-16, unit="erg / (s cm2 Angstrom)")
    path = tmp_path / "hd3651b.tbl"
    t.write(path, format="ipac")
    assert path.read_text().startswith("\\OBJECT")
    assert detect_format(path) == "ipac"
    s = read(path)
    assert s.name == "HD 3651B" and s.meta["format"] == "ipac"
    assert s.flux_unit == "erg / (Angstrom s cm2)"
    np.testing.assert_allclose(s.wavelength, hd3651b.wavelength, rtol=1e-12)
    np.testing.assert_allclose(s.flux, hd3651b.flux * 1e-16, rtol=1e-12)
    np.testing.assert_allclose(_sigma(s), _sigma(hd3651b) * 1e-16, rtol=1e-12)
    # a null flux (the archives' missing value) is refused, or masked on request
    t["flux"].mask[100] = True
    t.write(path, format="ipac", overwrite=True)
    assert "null" in path.read_text()
    with pytest.raises(InvalidSpectrumError, match="hd3651b.tbl"):
        read(path)
    masked = read(path, invalid="mask")
    assert len(masked) == 564 and masked.mask[100] and masked.mask.sum() == 1


def test_ipac_table_with_a_broken_header_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "broken.tbl"
    path.write_text("|  wave |  flux |\n| double | double |\n|  um |\n 1.0 2.0 3.0\n")
    with pytest.raises(FileFormatError, match=r"broken\.tbl: malformed IPAC table"):
        read(path)


def test_votable_columns_found_by_ucd_in_angstrom(hd3651b: Spectrum, tmp_path: Path) -> None:
    """An SSA answer: names no synonym list knows; the UCDs say which column is which."""
    fields = [
        {"name": "SPECTRAL", "datatype": "double", "unit": "Angstrom", "ucd": "em.wl"},
        {
            "name": "FLUX",  # a known name: taken by name
            "datatype": "double",
            "unit": "erg/s/cm2/Angstrom",
            "ucd": "phot.flux.density;em.wl",
        },
        {
            "name": "STAT_ERR",
            "datatype": "double",
            "unit": "erg/s/cm2/Angstrom",
            "ucd": "stat.error;phot.flux.density;em.wl",
        },
    ]
    w, f, e = hd3651b.wavelength * 1e4, hd3651b.flux * 1e-16, _sigma(hd3651b) * 1e-16
    path = _votable(tmp_path / "ssa.xml", [(fields, list(zip(w, f, e, strict=True)))])
    assert detect_format(path) == "votable"
    s = read(path)
    assert s.meta["columns_from_ucd"] == {"wavelength": "SPECTRAL", "uncertainty": "STAT_ERR"}
    np.testing.assert_allclose(s.wavelength, hd3651b.wavelength, rtol=1e-14)  # AA -> um
    np.testing.assert_array_equal(s.flux, f)  # BINARY2 keeps every bit
    np.testing.assert_array_equal(s.uncertainty, e)
    assert s.flux_unit == "erg / (Angstrom s cm2)"


def test_votable_frequency_axis_by_ucd(hd3651b: Spectrum, tmp_path: Path) -> None:
    """A spectral axis in Hz (UCD em.freq) is converted to wavelength and put in order."""
    c_um_hz = 2.99792458e14
    fields = [
        {"name": "NU", "datatype": "double", "unit": "Hz", "ucd": "em.freq"},
        {"name": "FNU", "datatype": "double", "unit": "Jy", "ucd": "phot.flux.density;em.freq"},
    ]
    nu = (c_um_hz / hd3651b.wavelength)[::-1]  # in increasing frequency, as radio tables go
    rows = list(zip(nu, hd3651b.flux[::-1], strict=True))
    s = read(_votable(tmp_path / "fnu.vot", [(fields, rows)]))
    assert s.meta["columns_from_ucd"] == {"wavelength": "NU"}  # FNU is a known flux name
    assert s.meta["reversed"] is True
    np.testing.assert_allclose(s.wavelength, hd3651b.wavelength, rtol=1e-13)
    np.testing.assert_array_equal(s.flux, hd3651b.flux)
    assert s.flux_unit == "Jy"


def test_votable_spectrum_table_and_one_row_of_arrays(hd3651b: Spectrum, tmp_path: Path) -> None:
    """The first TABLE holds no spectrum (a target list); the second one row of array cells,
    named by utype (IVOA Spectrum data model); a PARAM gives the target's name."""
    n = len(hd3651b)
    targets = (
        [
            {"name": "ra", "datatype": "double", "unit": "deg"},
            {"name": "dec", "datatype": "double", "unit": "deg"},
        ],
        [(9.84, 21.25)],
    )
    spec = (
        [
            {
                "name": "x",
                "datatype": "double",
                "arraysize": str(n),
                "unit": "um",
                "utype": "spec:Spectrum.Data.SpectralAxis.Value",
            },
            {
                "name": "y",
                "datatype": "double",
                "arraysize": str(n),
                "unit": "W m-2 um-1",
                "utype": "spec:Spectrum.Data.FluxAxis.Value",
            },
        ],
        [(hd3651b.wavelength, hd3651b.flux * 1e-15)],
    )
    path = _votable(tmp_path / "hd3651b.vot", [targets, spec], TargetName="HD 3651B")
    s = read(path)
    assert s.name == "HD 3651B" and len(s) == n
    assert s.meta["columns_from_ucd"] == {"wavelength": "x", "flux": "y"}
    np.testing.assert_array_equal(s.wavelength, hd3651b.wavelength)
    assert s.uncertainty is None  # none given: not invented
    # variable-length cells (arraysize="*", as SSA services write them) read the same
    for f in spec[0]:
        f["arraysize"] = "*"
    cells = tuple(np.ma.array(a, mask=np.zeros(n, bool)) for a in spec[1][0])
    var = read(_votable(tmp_path / "var.vot", [targets, (spec[0], [cells])]))
    np.testing.assert_array_equal(var.flux, s.flux)
    # two spectra in two rows: refused, not read as one nor as its first
    two = _votable(tmp_path / "two.vot", [targets, (spec[0], [cells, cells])])
    with pytest.raises(FileFormatError, match=r"two\.vot: column 'x' holds 2 spectra, one per row"):
        read(two)


def test_votable_without_a_spectrum_is_refused_naming_the_columns(tmp_path: Path) -> None:
    fields = [{"name": "ra", "datatype": "double"}, {"name": "dec", "datatype": "double"}]
    path = _votable(tmp_path / "targets.vot", [(fields, [(1.0, 2.0)])])
    with pytest.raises(FileFormatError, match=r"targets\.vot: no wavelength column.*'ra', 'dec'"):
        read(path)
    broken = tmp_path / "cut.vot"
    broken.write_text(path.read_text()[:300])
    with pytest.raises(FileFormatError, match=r"cut\.vot: malformed VOTable"):
        read(broken)


def test_binary_formats_that_hold_no_spectrum_are_named(tmp_path: Path) -> None:
    h5 = tmp_path / "spectrum.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(FileFormatError, match=r"spectrum\.h5: an HDF5 file.*IPAC, VOTable"):
        read(h5)
    parquet = tmp_path / "spectrum.parquet"
    parquet.write_bytes(b"PAR1" + bytes(200))
    with pytest.raises(FileFormatError, match=r"spectrum\.parquet: a Parquet file.*IPAC"):
        read(parquet)


def test_a_folder_of_archive_tables_is_scanned(hd3651b: Spectrum, tmp_path: Path) -> None:
    from astropy.table import Table

    from atmospec.prediction.sources import Catalog

    t = Table({"wave": hd3651b.wavelength, "flux": hd3651b.flux, "err": _sigma(hd3651b)})
    t["wave"].unit = "um"
    t.write(tmp_path / "a.tbl", format="ipac")
    t.write(tmp_path / "b.vot", format="votable")
    (tmp_path / "notes.md").write_text("not a spectrum")
    cat = Catalog.from_folder(tmp_path)
    assert [Path(i).name for i in cat.items] == ["a.tbl", "b.vot"]
    assert [len(read(i)) for i in cat.items] == [564, 564]
