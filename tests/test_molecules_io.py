"""Reading transmission spectra as published: layouts, synonyms, units, widths, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import CoverageError, FileFormatError, ModelFileError, UnitError
from atmospec.molecules.columns import depth_to_fraction, match_columns, width_kind_from_spacing
from atmospec.molecules.io import combine, read_transmission


def _trans(shared_dir: Path, name: str) -> Path:
    return shared_dir / "transmission" / name


# -- the real files, as published ------------------------------------------------------------


def test_niriss_soss_csv(shared_dir):
    s = read_transmission(_trans(shared_dir, "WASP-39b_NIRISS-SOSS.csv"))
    # 105 + 27 bins, 3 flagged by `quality` and left out (and said so)
    assert len(s) == 132 - 3
    assert any("dropped 3 bins" in a for a in s.assumptions)
    assert s.instruments == ["order1", "order2"]
    # dppm is in ppm: WASP-39b's depth is ~2.1 % (Feinstein et al. 2023)
    assert 0.019 < np.median(s.depth) < 0.023
    assert 20e-6 < np.median(s.error) < 200e-6
    # wave_error is the half width: 0.0049 um at 0.8781 um (first row of the file)
    assert s.half_width[np.argmin(np.abs(s.wavelength - 0.8781))] == pytest.approx(0.0049, rel=1e-3)


def test_hst_compilation_with_names_in_a_comment(shared_dir):
    s = read_transmission(_trans(shared_dir, "HD189733b_HST-STIS-WFC3-Spitzer.txt"))
    assert len(s) == 53
    assert 0.3 < s.wavelength.min() < 0.36 and 4.4 < s.wavelength.max() < 4.6
    # (Rp/Rs)^2 as a fraction: HD 189733b's depth is ~2.4 %
    assert 0.023 < np.median(s.depth) < 0.026
    # 'Delta Wavelength' is ambiguous; neighbouring bins 0.05 um apart with 0.025 -> half widths
    assert s.half_width[0] == pytest.approx(0.025)
    assert any("half widths" in a and "spaced by twice" in a for a in s.assumptions)


def test_hd209458b_interleaved_bins(shared_dir):
    s = read_transmission(_trans(shared_dir, "HD209458b_HST-STIS-WFC3-Spitzer.txt"))
    assert len(s) == 124
    assert 0.014 < np.median(s.depth) < 0.016  # (Rp/Rs)^2 ~ 1.5 %


def test_nasa_archive_tsv(shared_dir):
    s = read_transmission(_trans(shared_dir, "WASP-107b_NIRCam-F322W2.tsv"))
    assert len(s) == 100
    # PL_TRANDEP is in percent: 2.07 % -> 0.0207
    assert 0.019 < np.median(s.depth) < 0.022
    # BANDWIDTH 0.0075 with centres 0.015 apart -> half widths
    assert s.half_width[0] == pytest.approx(0.0075)
    # asymmetric errors averaged: 0.0095 % -> 95 ppm
    assert s.error[0] == pytest.approx(95e-6)


def test_a_null_depth_is_left_out_and_said_so(shared_dir, tmp_path):
    """A null (an empty cell of an archive table) was read as a depth of 0 from IPAC ("row 5
    has 0") and as NaN percent from a VOTable ("nan of the stellar disc"): now the bin is left
    out, and the assumptions say which."""
    import warnings

    from astropy.table import Table

    tsv = _trans(shared_dir, "WASP-107b_NIRCam-F322W2.tsv")
    table = Table(Table.read(tsv, format="ascii.tab"), masked=True)
    table["PL_TRANDEP"].mask[5] = True
    full = read_transmission(tsv)
    for name, fmt in (("w107.tbl", "ipac"), ("w107.xml", "votable")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table.write(tmp_path / name, format=fmt)
        s = read_transmission(tmp_path / name)
        assert len(s) == 99
        np.testing.assert_allclose(s.wavelength, np.delete(full.wavelength, 5), rtol=1e-12)
        np.testing.assert_allclose(s.depth, np.delete(full.depth, 5), rtol=1e-12)
        assert any("dropped 1 bins without a value" in a and "2.5325" in a for a in s.assumptions)


def test_nasa_archive_table_as_votable_reads_as_the_tsv(shared_dir, tmp_path):
    """The archive's own columns written as a VOTable (the Virtual Observatory's format, which
    the archive's table service also serves) give the same bins as the published TSV."""
    import warnings

    from astropy.table import Table

    tsv = _trans(shared_dir, "WASP-107b_NIRCam-F322W2.tsv")
    table = Table.read(tsv, format="ascii.tab")
    vot = tmp_path / "wasp107b.xml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty string columns: a VOTable remark
        table.write(vot, format="votable")
    a, b = read_transmission(tsv), read_transmission(vot)
    assert len(b) == len(a) == 100
    for field in ("wavelength", "half_width", "depth", "error"):
        np.testing.assert_allclose(getattr(b, field), getattr(a, field), rtol=1e-12)
    assert any("VOTable" in note for note in b.assumptions)


def test_wasp80b_needs_widths_and_infers_fractions(shared_dir):
    f = _trans(shared_dir, "WASP-80b_NIRCam-F322W2.csv")
    with pytest.raises(FileFormatError, match="--width contiguous"):
        read_transmission(f)
    s = read_transmission(f, width="contiguous")
    assert len(s) == 23
    # only 'fraction' gives errors >= 3 ppm (as percent, 5.7e-5 % would be 0.57 ppm)
    assert any("inferred: only fraction" in a for a in s.assumptions)
    assert 0.028 < np.median(s.depth) < 0.031
    # contiguous bins: each half width is half the distance between neighbouring edges
    assert np.all(np.abs(np.diff(s.wavelength) - (s.half_width[1:] + s.half_width[:-1])) < 0.01)


def test_several_instruments_combined_with_an_offset(shared_dir):
    files = sorted((shared_dir / "transmission").glob("WASP-107b_*.tsv"))
    parts = [read_transmission(f) for f in files]
    both = combine(parts)
    assert len(both) == sum(len(p) for p in parts) == 9 + 21 + 58 + 100 + 77
    assert len(both.instruments) == 5
    name = "WASP-107b_MIRI-LRS"
    shifted = combine(parts, {name: 100e-6})
    sel = shifted.instrument == name
    assert np.allclose(shifted.depth[sel] - both.depth[both.instrument == name], 100e-6)
    with pytest.raises(FileFormatError, match="no instrument"):
        combine(parts, {"nirspec": 1e-6})
    # MIRI reaches 13.6 um: bins beyond a range are left out only on request, and named
    trimmed = both.within(0.45, 12.5)
    assert len(trimmed) < len(both)
    assert any("left out" in a and "13" in a for a in trimmed.assumptions)
    with pytest.raises(CoverageError):
        both.within(20.0, 30.0)


# -- synonyms, units and widths on small files ----------------------------------------------


def test_ipac_table(tmp_path):
    f = tmp_path / "archive.tbl"
    f.write_text(
        "\\ an IPAC export\n"
        "| centralwavelng | bandwidth | pl_trandep | pl_trandeperr1 | pl_trandeperr2 |\n"
        "| double         | double    | double     | double         | double         |\n"
        "  1.00             0.05        2.00         0.01             -0.01\n"
        "  1.10             0.05        2.01         0.01             -0.01\n"
        "  1.20             0.05        2.02         0.01             -0.03\n"
    )
    s = read_transmission(f)
    assert s.depth.tolist() == pytest.approx([0.0200, 0.0201, 0.0202])
    assert s.error[-1] == pytest.approx(2e-4)  # mean of 0.01 and 0.03 percent
    assert s.half_width[0] == pytest.approx(0.05)


def test_rp_rs_is_squared(tmp_path):
    f = tmp_path / "ratio.csv"
    f.write_text("wavelength,half_width,rp_rs,rp_rs_err\n1.0,0.05,0.1,0.001\n1.1,0.05,0.1,0.001\n")
    s = read_transmission(f)
    assert s.depth[0] == pytest.approx(0.01)
    assert s.error[0] == pytest.approx(2 * 0.1 * 0.001)  # d(r^2) = 2 r dr


def test_substrings_are_not_columns(tmp_path):
    # 'signal_to_noise' and 'depth_uncorrected' contain 'error'/'depth' fragments: not matched
    f = tmp_path / "s.csv"
    f.write_text(
        "wavelength,half_width,depth,signal_to_noise,depth_uncorrected\n1.0,0.05,0.02,300,0.03\n"
    )
    with pytest.raises(FileFormatError, match="no depth-error column"):
        read_transmission(f)


def test_two_candidates_are_refused_with_both_named(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("wavelength,wl,half_width,depth_ppm,error\n1.0,1.0,0.05,20000,100\n")
    with pytest.raises(FileFormatError, match=r"\['wavelength', 'wl'\].*--columns"):
        read_transmission(f)
    s = read_transmission(f, columns={"wavelength": "wl"})
    assert s.wavelength.tolist() == [1.0]


def test_ambiguous_depth_unit_is_refused(tmp_path):
    # 0.02 +- 0.002 fits both 'fraction' (2 %) and 'percent' (200 ppm +- 20 ppm)
    f = tmp_path / "s.csv"
    f.write_text("wavelength,half_width,depth,error\n1.0,0.05,0.02,0.002\n1.1,0.05,0.021,0.002\n")
    with pytest.raises(UnitError, match="fraction or percent|percent or fraction"):
        read_transmission(f)
    assert read_transmission(f, depth_unit="percent").depth[0] == pytest.approx(2e-4)


def test_undecided_width_is_refused(tmp_path):
    f = tmp_path / "s.csv"
    # centres 0.1 apart with 'bandwidth' 0.07: neither touching half nor full widths
    f.write_text(
        "wavelength,bandwidth,depth_ppm,error\n"
        + "".join(f"{1 + 0.1 * k:.1f},0.07,20000,100\n" for k in range(5))
    )
    with pytest.raises(FileFormatError, match="--width half or full"):
        read_transmission(f)
    assert read_transmission(f, width="full").half_width[0] == pytest.approx(0.035)


def test_width_rule():
    lam = np.arange(1.0, 2.0, 0.1)
    assert width_kind_from_spacing(lam, np.full(lam.size, 0.05)) == "half"
    assert width_kind_from_spacing(lam, np.full(lam.size, 0.1)) == "full"
    assert width_kind_from_spacing(lam, np.full(lam.size, 0.07)) is None


def test_match_columns_reads_units_from_brackets():
    m = match_columns(["Wavelength (nm)", "depth [ppm]", "error [ppm]", "half_width"])
    assert m.units == {"wavelength": "nm", "depth": "ppm", "error": "ppm"}


def test_depth_to_fraction_messages():
    d, e = np.array([21000.0]), np.array([100.0])
    with pytest.raises(UnitError, match="the values fit ppm"):
        depth_to_fraction(d, e, "none", source="f", how="@DEPTH_UNITS")
    out, _, unit, _ = depth_to_fraction(d, e, "ppm", source="f", how="x")
    assert unit == "ppm" and out[0] == pytest.approx(0.021)


# -- issue 18: bad input gets a clear error --------------------------------------------------


def _pyrat(tmp_path: Path, unit: str, rows: str) -> Path:
    f = tmp_path / "s.dat"
    f.write_text(f"@DEPTH_UNITS\n{unit}\n@DATA\n{rows}")
    return f


def test_ppm_values_under_depth_units_none(tmp_path):
    f = _pyrat(tmp_path, "none", "21000 100 1.0 0.05 a\n21100 100 1.1 0.05 a\n")
    with pytest.raises(UnitError, match="more than a transit can block; the values fit ppm"):
        read_transmission(f)


def test_negative_depths(tmp_path):
    f = _pyrat(tmp_path, "ppm", "21000 100 1.0 0.05 a\n-200 100 1.1 0.05 a\n")
    with pytest.raises(FileFormatError, match="finite and positive.*-0.0002"):
        read_transmission(f)


def test_absurd_depths(tmp_path):
    f = _pyrat(tmp_path, "ppm", "2.1e304 1e302 1.0 0.05 a\n2.1e304 1e302 1.1 0.05 a\n")
    with pytest.raises(UnitError, match="more than a transit can block"):
        read_transmission(f)


def test_three_column_rows(tmp_path):
    f = _pyrat(tmp_path, "ppm", "21000 100 1.0 0.05 a\n21000 100 1.1\n")
    with pytest.raises(FileFormatError, match="line 5:.*3 columns"):
        read_transmission(f)


def test_edited_model_json_is_refused(tmp_path):
    from atmospec.models import list_models, model_path
    from atmospec.molecules.classifiers import MoleculeClassifier

    if "molecules" not in {m["name"] for m in list_models()}:
        pytest.skip("no shipped molecule classifier in this build")
    folder = tmp_path / "m"
    shutil.copytree(model_path("molecules"), folder)
    MoleculeClassifier.load(folder)  # intact: loads
    meta = json.loads((folder / "model.json").read_text())
    meta["molecules"][0], meta["molecules"][1] = meta["molecules"][1], meta["molecules"][0]
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"model\.json: the record was modified"):
        MoleculeClassifier.load(folder)


def test_header_without_data_rows_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    """The real WASP-107b archive table cut after its header line: the fuzz harness found an
    empty-array ValueError here; the file has no bins, so it is a format error naming it."""
    lines = _trans(shared_dir, "WASP-107b_HST-WFC3-G141.tsv").read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if "PL_TRANDEP" in line)
    empty = tmp_path / "w107.tsv"
    empty.write_text("\n".join(lines[: header + 1]) + "\n")
    with pytest.raises(FileFormatError, match=r"w107\.tsv: no data rows"):
        read_transmission(empty)


# -- more layouts as users write them ------------------------------------------------------


def _bins(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """n bins 1.0-2.1 um, 0.1 um apart (touching full widths 0.1 um), depths 2.10-2.21 %."""
    return 1.0 + 0.1 * np.arange(n), 0.021 + 0.0001 * np.arange(n)


def test_unit_suffixes_name_units(tmp_path: Path) -> None:
    # `bin_half_width_um` was not a width column ("no bin-width column"); a unit after an
    # underscore is read like one in brackets
    w, d = _bins()
    f = tmp_path / "pct.csv"
    rows = "".join(f"{a:.3f},0.05,{100 * b:.4f},0.01\n" for a, b in zip(w, d, strict=True))
    f.write_text("wavelength_um,bin_half_width_um,depth (%),depth_err (%)\n" + rows)
    s = read_transmission(f)
    np.testing.assert_allclose(s.half_width, 0.05)
    np.testing.assert_allclose(s.depth, d)
    np.testing.assert_allclose(s.error, 1e-4)
    assert any("depth unit: percent" in a for a in s.assumptions)


def test_single_spaced_names_in_a_comment_and_widths_in_nm(tmp_path: Path) -> None:
    # the names were looked for only between runs of two spaces ("no column names"), and an
    # ambiguous width column in nm was compared with bin spacings already in micron (never
    # deciding); now: full widths of 100 nm, 100 nm apart -> half widths 0.05 um
    w, d = _bins()
    f = tmp_path / "nm.txt"
    f.write_text(
        "# transmission spectrum of a test planet\n# lambda[nm] dlambda[nm] (Rp/Rs)^2 err\n"
        + "".join(f"{1000 * a:.1f} 100.0 {b:.6f} 0.0001\n" for a, b in zip(w, d, strict=True))
    )
    s = read_transmission(f)
    np.testing.assert_allclose(s.wavelength, w)
    np.testing.assert_allclose(s.half_width, 0.05)
    assert any("read as full widths" in a for a in s.assumptions)
    # a comment sentence of as many words as columns, naming no wavelength, is no header
    g = tmp_path / "sentence.txt"
    g.write_text("# from the paper table\n" + "".join(f"{a:.3f} 0.05 0.021 0.0001\n" for a in w))
    with pytest.raises(FileFormatError, match="no column names"):
        read_transmission(g)


def test_a_width_column_in_its_own_unit_and_contiguous_bins_in_nm(tmp_path: Path) -> None:
    w, _ = _bins()
    f = tmp_path / "mixed.csv"  # wavelengths in micron, half widths in nm
    f.write_text(
        "wavelength [um],half_width [nm],depth,error\n"
        + "".join(f"{a:.3f},50,0.021,0.0001\n" for a in w)
    )
    np.testing.assert_allclose(read_transmission(f).half_width, 0.05)
    g = tmp_path / "contiguous.csv"  # once converted from nm twice: half widths of 5e-5 um
    g.write_text(
        "wavelength [nm],depth,error\n" + "".join(f"{1000 * a:.1f},0.021,0.0001\n" for a in w)
    )
    np.testing.assert_allclose(read_transmission(g, width="contiguous").half_width, 0.05)


def test_asymmetric_errors_by_sign_names(tmp_path: Path) -> None:
    w, _ = _bins()
    f = tmp_path / "asym.csv"
    f.write_text(
        "wavelength,bin_width,depth,depth_err_pos,depth_err_neg\n"
        + "".join(f"{a:.3f},0.1,0.021,0.0001,-0.0003\n" for a in w)
    )
    s = read_transmission(f)
    np.testing.assert_allclose(s.error, 0.0002)  # the mean of |+1e-4| and |-3e-4|
    assert any("asymmetric" in a for a in s.assumptions)
