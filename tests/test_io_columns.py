"""Column names are matched exactly against one synonym list; ambiguity is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import FileFormatError
from atmospec.io import read
from atmospec.io._common import ERROR_NAMES, SNR_NAMES, find_column, normalise_column

WAVE = np.linspace(1.0, 2.0, 30)
FLUX = 1.0 + 0.3 * np.sin(6 * WAVE)


def _csv(path: Path, header: list[str], columns: list[np.ndarray]) -> Path:
    rows = "\n".join(",".join(f"{v:.6g}" for v in r) for r in zip(*columns, strict=True))
    path.write_text(",".join(header) + "\n" + rows + "\n")
    return path


@pytest.mark.parametrize("name", ["signal_to_noise", "SNR", "S/N"])
def test_snr_column_is_never_the_error_column(tmp_path: Path, name: str) -> None:
    snr = np.full(WAVE.size, 50.0)
    f = _csv(tmp_path / "s.csv", ["wavelength [um]", "flux", name], [WAVE, FLUX, snr])
    spec = read(f)
    assert spec.uncertainty is None  # read without errors, not with sigma = 50
    with pytest.raises(FileFormatError, match=r"hold S/N, not 1-sigma errors"):
        find_column([name, "flux"], ERROR_NAMES, what="uncertainty", source="s.csv")


def test_flux_uncorrected_is_neither_flux_error_nor_flux(tmp_path: Path) -> None:
    f = _csv(
        tmp_path / "s.csv",
        ["wavelength [um]", "flux", "flux_uncorrected"],
        [WAVE, FLUX, 3 * FLUX],
    )
    spec = read(f)
    assert spec.uncertainty is None
    np.testing.assert_allclose(spec.flux, FLUX, rtol=1e-5)


def test_two_error_columns_are_refused_naming_both(tmp_path: Path) -> None:
    f = _csv(
        tmp_path / "s.csv",
        ["wavelength [um]", "flux", "err", "flux_error"],
        [WAVE, FLUX, 0.01 * FLUX, 0.02 * FLUX],
    )
    with pytest.raises(FileFormatError, match=r"\['err', 'flux_error'\].*err_col"):
        read(f)
    spec = read(f, err_col="flux_error")  # the explicit mapping decides
    assert spec.uncertainty is not None
    np.testing.assert_allclose(spec.uncertainty, 0.02 * FLUX, rtol=1e-5)


def test_units_in_brackets_and_case_are_ignored() -> None:
    assert normalise_column("Flux_Err [W m-2 um-1]") == "flux_err"
    assert normalise_column("LAMBDA (AA)") == "lambda"
    assert find_column(["LAMBDA (AA)", "F"], ("lambda",), what="wavelength", source="x") == (
        "LAMBDA (AA)"
    )
    assert set(SNR_NAMES).isdisjoint(ERROR_NAMES)


def test_column_named_like_markup_reaches_the_message_intact(tmp_path: Path) -> None:
    """A column "[/b]" would close a rich markup tag; the CLI prints it as text."""
    from typer.testing import CliRunner

    f = tmp_path / "odd.csv"
    f.write_text("[/b],flux [um]\n1.0,2.0\n1.1,2.1\n")
    with pytest.raises(FileFormatError, match=r"\[/b\]"):
        read(f)
    proc = _cli(["--quiet", "fit", str(f), "--grid", "dback24"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no wavelength column" in proc.stderr and "'[/b]'" in proc.stderr, proc.stderr
    del CliRunner


def _cli(args: list[str]):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    code = "from atmospec.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_wave_unit_hint_names_an_option_predict_has(tmp_path: Path) -> None:
    """Wavelengths in Angstrom labelled um: the hint's --wave-unit AA must exist and work."""
    from atmospec.cli.predict import predict_cmd
    from atmospec.prediction.sources import read_spectrum

    f = tmp_path / "aa.csv"
    _csv(f, ["wavelength [um]", "flux", "error"], [WAVE * 1e4, FLUX, 0.02 * FLUX])
    spec = read_spectrum(f, wave_unit="AA")
    np.testing.assert_allclose(spec.wavelength, WAVE, rtol=1e-5)  # 6 digits in the file
    import inspect

    assert "wave_unit" in inspect.signature(predict_cmd).parameters
    with pytest.raises(FileFormatError, match="takes no err_col"):
        read(tmp_path / "aa.csv", format="telescopeml", err_col="error")


def test_hints_in_brackets_survive_the_cli(tmp_path: Path) -> None:
    """The unit hint "# wavelength [um] ..." used to lose its "[um]" to rich markup."""
    f = tmp_path / "nounit.txt"
    f.write_text("1.0 2.0 0.1\n1.1 2.1 0.1\n1.2 2.2 0.1\n")
    proc = _cli(["--quiet", "fit", str(f), "--grid", "dback24"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "wavelength [um] flux [W m-2 um-1]" in " ".join(proc.stderr.split()), proc.stderr
    proc = _cli(["--quiet", "fit", str(f), "--grid", "dback24", "--wave-unit", "AA"])
    assert "Traceback" not in proc.stderr and proc.returncode == 2  # 1-1.2 AA: no overlap


def test_wavelength_column_named_for_its_unit(tmp_path: Path) -> None:
    """``wavelength_um`` / ``wavelength_nm`` state their unit: read in it, converted to um; a
    bracketed unit that contradicts the name is refused naming both (never a silent pick)."""
    from astropy.table import Table

    from atmospec.errors import UnitError

    # (the CSV holds 6 significant digits: rtol 1e-5)
    spec = read(_csv(tmp_path / "um.csv", ["wavelength_um", "flux", "error"], [WAVE, FLUX, FLUX]))
    np.testing.assert_allclose(spec.wavelength, WAVE, rtol=1e-5)
    nm = _csv(tmp_path / "nm.csv", ["Wavelength_nm", "flux"], [WAVE * 1e3, FLUX])
    np.testing.assert_allclose(read(nm).wavelength, WAVE, rtol=1e-5)
    # the same in a FITS table without TUNIT and an ECSV without a unit
    Table({"WAVELENGTH_UM": WAVE, "FLUX": FLUX}).write(tmp_path / "t.fits")
    np.testing.assert_allclose(read(tmp_path / "t.fits").wavelength, WAVE, rtol=1e-5)
    Table({"wavelength_aa": WAVE * 1e4, "flux": FLUX}).write(tmp_path / "t.ecsv")
    np.testing.assert_allclose(read(tmp_path / "t.ecsv").wavelength, WAVE, rtol=1e-5)
    bad = _csv(tmp_path / "bad.csv", ["wavelength_um [nm]", "flux"], [WAVE, FLUX])
    with pytest.raises(UnitError, match=r"bad.csv.*named for 'um' but its unit is 'nm'"):
        read(bad)
    # an explicit unit from the user still wins over both
    np.testing.assert_allclose(read(bad, wave_unit="um").wavelength, WAVE, rtol=1e-5)
