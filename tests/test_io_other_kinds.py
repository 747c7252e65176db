"""A file given to the wrong command: the refusal names the command that reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from atmospec import io
from atmospec.cli._planet_files import read_planet
from atmospec.errors import FileFormatError
from atmospec.molecules.io import read_transmission


def _trans(shared_dir: Path, name: str) -> Path:
    return shared_dir / "transmission" / name


@pytest.mark.parametrize(
    ("name", "n_bins"),
    [("wasp39b_jwst_transit.dat", 383), ("WASP-39b_NIRISS-SOSS.csv", 129)],  # 3 NIRISS flagged
)
def test_a_transmission_spectrum_given_to_the_spectrum_reader_names_molecules(
    shared_dir: Path, name: str, n_bins: int
) -> None:
    f = _trans(shared_dir, name)
    spec = read_transmission(f)  # the hint describes the file as `atmospec molecules` reads it
    assert len(spec) == n_bins
    lo, hi = spec.wavelength.min(), spec.wavelength.max()
    with pytest.raises(FileFormatError) as err:
        io.read(f)
    msg = str(err.value)
    assert msg.startswith(str(f))
    said = f"({n_bins} bins of transit depth, {lo:.2f}-{hi:.2f} um)"
    assert f"it reads as a transmission spectrum {said}" in msg
    assert f"`atmospec molecules {name}` reads those" in msg
    with pytest.raises(FileFormatError) as err:
        io.read(f, hint=False)
    assert "atmospec molecules" not in str(err.value)


def test_depths_without_bin_widths_name_molecules_with_the_option_that_reads_them(
    shared_dir: Path,
) -> None:
    # WASP-80b's source-data table (Bell et al. 2023) has depths and no bin widths: `atmospec
    # molecules` reads it only with --width contiguous, so the hint names that option; before,
    # the spectrum reader's refusal had no hint at all. Its 17 column names are cut in the
    # middle of the message, not listed whole.
    f = _trans(shared_dir, "WASP-80b_NIRCam-F322W2.csv")
    with pytest.raises(FileFormatError, match="no bin-width column"):
        read_transmission(f)
    spec = read_transmission(f, width="contiguous")
    assert len(spec) == 23
    with pytest.raises(FileFormatError) as err:
        io.read(f)
    msg = str(err.value)
    assert "(23 bins of transit depth, 2.47-4.05 um)" in msg
    assert "`atmospec molecules WASP-80b_NIRCam-F322W2.csv --width contiguous` reads those" in msg
    assert "found 17 columns ['wavelength_micron', 'transit_depth', " in msg
    assert "..., 'emission_no_h2o_upper']" in msg and "'emission_no_ch4_upper'" not in msg


def test_a_brown_dwarf_spectrum_given_to_the_transmission_reader_names_predict(
    splat_dir: Path, tmp_path: Path
) -> None:
    # A SpeX prism FITS was read as text (a gzip stream decoded as UTF-8) and refused for its
    # column count; now refused as binary, and the molecule commands name the one that reads it
    f = splat_dir / "resources/Spectra/Public/SPEX-PRISM/10001_10443.fits.gz"
    binary = f"{f}: a binary file (FITS or compressed), not a table of transit depths"
    with pytest.raises(FileFormatError) as err:
        read_transmission(f)
    assert str(err.value).startswith(binary) and "atmospec predict" not in str(err.value)
    with pytest.raises(FileFormatError) as err:
        read_planet(f)
    msg = str(err.value)
    assert msg.startswith(binary)
    assert "it reads as a flux spectrum (564 pixels, 0.65-2.56 um, spex format)" in msg
    assert "`atmospec predict 10001_10443.fits.gz`" in msg
    # a flux table in CSV: no depth column, and the same advice
    csv = tmp_path / "dwarf.csv"
    csv.write_text(
        "wavelength [um],flux [W m-2 um-1],error [W m-2 um-1]\n"
        "1.0,1e-15,1e-17\n1.1,2e-15,1e-17\n1.2,2e-15,1e-17\n"
    )
    with pytest.raises(FileFormatError, match=r"no transit-depth column.*atmospec predict dwarf"):
        read_planet(csv)


def test_hpf_files_name_the_highres_commands(shared_dir: Path) -> None:
    hpf = shared_dir / "hpf"
    goldilocks = hpf / "Goldilocks_20210517T054403_v1.0_0060.fits"
    with pytest.raises(FileFormatError, match=r"neither a spectrum array.*`atmospec highres`"):
        io.read(goldilocks)
    for f in (goldilocks, hpf / "WASP_69_hpf_stack.fits"):
        with pytest.raises(FileFormatError, match=r"it is an HPF spectrum \(INSTRUME 'HPF'"):
            read_planet(f)


def test_an_echelle_order_given_to_predict_or_fit_names_the_highres_commands(
    shared_dir: Path,
) -> None:
    # WASP-69's HPF order (8656-8768 AA, 2048 pixels) reads as a spectrum; predict refused it
    # as "use a model trained for this wavelength range" and fit for "only 7 usable pixels"
    # (it is smoothed onto the grid's pixels first), neither naming what models it.
    from atmospec.errors import CoverageError
    from atmospec.fitting.chi2 import fit_chi2
    from atmospec.grids import load_grid
    from atmospec.prediction.predictor import Predictor

    f = shared_dir / "hpf" / "WASP_69_hpf_stack.fits"
    said = "sampled at lambda/dlambda 159,000, it is a high-resolution spectrum: the `atmospec "
    with pytest.raises(CoverageError) as err:
        Predictor("dback24-spex", ood=False, draws=10).predict(io.read(f, invalid="mask"))
    assert said in str(err.value) and "use a model trained" not in str(err.value)
    assert str(err.value).startswith(f"{f}: the spectrum (0.8656-0.8768 um) does not overlap")
    with pytest.raises(CoverageError) as err:
        fit_chi2(io.read(f, invalid="mask"), load_grid("btsettl08"))
    assert "the spectrum spans 0.8656-0.8768 um; " + said in str(err.value)
    assert str(err.value).startswith(f"{f}: only 7 usable pixels overlap the btsettl08 grid")


def test_a_file_no_reader_takes_gets_no_hint(tmp_path: Path) -> None:
    # a table of words: neither reader takes it, so the refusal is the reader's alone
    f = tmp_path / "notes.txt"
    f.write_text("name value\nalpha beta\ngamma delta\n")
    for read in (io.read, read_planet):
        with pytest.raises(FileFormatError) as err:
            read(f)
        assert "atmospec" not in str(err.value).replace(str(tmp_path), "")


@pytest.mark.realdata
def test_predict_and_molecules_commands_name_the_other(
    shared_dir: Path, splat_dir: Path, tmp_path: Path
) -> None:
    import csv

    from typer.testing import CliRunner

    from atmospec.cli.main import app

    runner = CliRunner(env={"COLUMNS": "400"})
    f = _trans(shared_dir, "wasp39b_jwst_transit.dat")
    args = ["--quiet", "predict", str(f), "--grids", "none", "--draws", "50", "--no-plots"]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "p")])
    assert res.exit_code == 4, res.output  # none of the spectra could be used
    assert "default selection" not in res.output  # no summary of rows that do not exist
    with open(tmp_path / "p" / "failures.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert "`atmospec molecules wasp39b_jwst_transit.dat`" in row["error"]
    spex = splat_dir / "resources/Spectra/Public/SPEX-PRISM/10001_10443.fits.gz"
    res = runner.invoke(app, ["molecules", str(spex), "--out", str(tmp_path / "m")])
    said = " ".join((res.output + str(res.exception)).split())
    assert res.exit_code != 0
    assert "`atmospec predict 10001_10443.fits.gz`" in said


def test_the_hpf_reader_refuses_a_text_file_naming_what_reads_it(shared_dir: Path) -> None:
    # once "not a readable FITS file (truncated or corrupt): No SIMPLE card found ..."
    from atmospec.highres.io import read_hpf

    f = _trans(shared_dir, "wasp39b_jwst_transit.dat")
    with pytest.raises(FileFormatError) as err:
        read_hpf(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}: not a FITS file; HPF spectra are FITS files")
    assert "`atmospec molecules wasp39b_jwst_transit.dat` reads those" in msg


def test_ariel_raw_files_name_transit_reduce(shared_dir: Path) -> None:
    # A frame file, a calibration frame and a dataset table of the Ariel sample: each is
    # refused as a spectrum with the `atmospec transit reduce` call for its planet / dataset.
    root = shared_dir / "ariel_sample" / "raw"
    planet = root / "train" / "342072318"
    for f, folder in (
        (planet / "AIRS-CH0_signal_0.parquet", planet),
        (planet / "FGS1_calibration_0" / "dark.parquet", planet),
        (root / "wavelengths.csv", root),
    ):
        with pytest.raises(FileFormatError) as err:
            io.read(f)
        msg = str(err.value)
        assert msg.startswith(str(f)), msg
        assert f"`atmospec transit reduce {folder}`" in msg, msg


@pytest.mark.realdata
def test_a_table_of_spectra_given_as_a_spectrum_names_the_catalog_call(
    shared_dir: Path, splat_dir: Path, tmp_path: Path
) -> None:
    # The companions table lists library keys in `splat_key`; a table of files names its
    # column too; the call named is the one that then predicts them.
    import shutil

    from typer.testing import CliRunner

    from atmospec.cli.main import app
    from atmospec.prediction.sources import read_spectrum

    comp = shared_dir / "benchmarks" / "companions.csv"
    with pytest.raises(FileFormatError) as err:
        read_spectrum(comp)
    msg = str(err.value)
    assert msg.startswith(f"{comp}: line 2: cannot read 'HD 89744B' as a number"), msg
    want = "it lists 26 spectra (column 'splat_key': 26 library keys), not a spectrum: "
    assert want + f"`atmospec predict --catalog {comp} --column splat_key`" in msg

    runner = CliRunner(env={"COLUMNS": "400"})
    res = runner.invoke(app, ["fit", str(comp), "--grid", "dback24", "-o", str(tmp_path / "f")])
    said = " ".join((res.output + str(res.exception)).split())  # fit names it too
    assert res.exit_code != 0 and "--column splat_key` predicts them" in said

    spex = splat_dir / "resources/Spectra/Public/SPEX-PRISM"
    for name in ("10001_10443.fits.gz", "10703_10070.fits.gz"):
        shutil.copy(spex / name, tmp_path / name)
    table = tmp_path / "targets.csv"
    table.write_text("name,spectrum_file\nA,10001_10443.fits.gz\nHD 3651B,10703_10070.fits.gz\n")
    with pytest.raises(FileFormatError) as err:
        read_spectrum(table)
    said = f"`atmospec predict --catalog {table} --column spectrum_file` predicts them"
    assert "(column 'spectrum_file': 2 files)" in str(err.value) and said in str(err.value)
    common = ["--quiet", "predict", "--grids", "none", "--draws", "50", "--no-plots"]
    res = runner.invoke(
        app,
        [*common, "--catalog", str(table), "--column", "spectrum_file", "-o", str(tmp_path / "p")],
    )
    assert res.exit_code == 0, res.output
    assert len((tmp_path / "p" / "predictions.csv").read_text().splitlines()) == 3
