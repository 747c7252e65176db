"""Batch prediction: folders and tables of files, failures recorded, resume after interruption."""

# ruff: noqa: F811  (the `tiny` fixture is imported from _inference_support)
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _inference_support import synthetic_spectrum, tiny  # noqa: F401 (fixture)

pytestmark = pytest.mark.realdata


@pytest.fixture()
def folder(tiny: dict[str, Any], tmp_path: Path) -> Path:
    """Eight synthetic ECSV spectra (Teff 1000-2200 K) and one file that is not a spectrum."""
    d = tmp_path / "spectra"
    d.mkdir()
    for i, teff in enumerate(range(1000, 2400, 175)):
        spec = synthetic_spectrum(
            tiny["grid"],
            {"teff": float(teff), "logg": 5.0, "mh": 0.0, "fsed": 2.0},
            snr=40,
            seed=i,
            name=f"s{i}",
        )
        spec.write(d / f"s{i}.ecsv")
    (d / "broken.csv").write_text("this is not a spectrum\n")
    return d


def _predictor(tiny: dict[str, Any]) -> Any:
    from atmospec.prediction.predictor import Predictor

    return Predictor(tiny["estimator"], grid=tiny["grid"], ood=tiny["detector"], draws=200)


def _run(tiny: dict[str, Any], cat: Any, out: Path, predictor: Any = None, **kw: Any) -> Any:
    from atmospec.prediction.batch import BatchOptions, run_catalog

    return run_catalog(cat, predictor or _predictor(tiny), out, BatchOptions(**kw))


def test_folder_batch_with_failure(tiny: dict[str, Any], folder: Path, tmp_path: Path) -> None:
    from atmospec.prediction.sources import Catalog

    out = tmp_path / "run"
    run = _run(tiny, Catalog.from_folder(folder), out, partition_size=3, max_plots=3)
    assert run.complete and (run.n_predicted, run.n_unusable) == (8, 1)
    rows = pd.read_csv(out / "predictions.csv")
    assert len(rows) == 8 and rows["source"].is_unique
    fails = pd.read_csv(out / "failures.csv")
    assert fails["source"].str.endswith("broken.csv").all() and "broken.csv" in fails["error"][0]
    # max_plots=3: figures for the first 3 rows of the folder (broken.csv, s0, s1 by name):
    # two objects, broken.csv has none
    assert len(list((out / "objects").glob("*_corner.png"))) == 2
    # Teff of the synthetic spectra rises by 175 K per file: the medians follow in order.
    med = rows.sort_values("source")["teff_median"].to_numpy()
    assert (pd.Series(med).diff().dropna() > 0).mean() >= 6 / 7
    # What the percentiles are (here a network's Monte Carlo) is recorded with the run, in
    # the ECSV table's header and in the report's words.
    import json

    from astropy.table import Table

    from atmospec.prediction.result import INTERVALS_NOTE
    from atmospec.report import write_report

    # and what they hold of real spectra's model error: this network learned from exact grid
    # spectra (no model-error realisations in its recipe), so they leave it out
    said = f"{INTERVALS_NOTE}; the model's training spectra were exact grid spectra: the "
    assert json.loads((out / "run.json").read_text())["intervals"].startswith(said)
    assert Table.read(out / "predictions.ecsv").meta["intervals"].startswith(said)
    page = write_report(out).read_text()
    assert "Intervals (16-84 % and 2.5-97.5 %) are predictive percentiles of Monte Carlo" in page


def test_interrupted_batch_resumes(
    tiny: dict[str, Any], folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atmospec.prediction.sources as sources
    from atmospec.prediction.sources import Catalog

    files = sorted(str(p) for p in folder.glob("s*.ecsv"))
    cat = Catalog.from_files(files)
    real = sources.read_spectrum

    def interrupted(item: Any) -> Any:
        if str(item) == files[5]:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the 6th loads
        return real(item)

    out = tmp_path / "run"
    predictor = _predictor(tiny)
    monkeypatch.setattr(sources, "read_spectrum", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(tiny, cat, out, predictor, partition_size=2, plots=False)
    parts = sorted((out / "parts").glob("part-*.json"))
    assert len(parts) == 2  # partitions [0,1] and [2,3] finished; [4,5] was in flight
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in parts}
    monkeypatch.setattr(sources, "read_spectrum", real)
    run = _run(tiny, cat, out, predictor, partition_size=2, plots=False)
    assert run.n_rows_done_before == 4 and run.rows_computed == 4  # nothing redone
    for p in parts:  # finished parts untouched
        assert (p.stat().st_mtime_ns, p.read_bytes()) == before[p.name]
    rows = pd.read_csv(out / "predictions.csv")
    assert sorted(rows["source"]) == files  # nothing lost, no duplicate
    assert rows["row"].tolist() == list(range(8))


def test_catalog_table_and_model_mixing(tiny: dict[str, Any], folder: Path, tmp_path: Path) -> None:
    from atmospec.errors import AtmospecError
    from atmospec.prediction.sources import Catalog

    table = folder / "list.csv"
    table.write_text("file,comment\ns1.ecsv,a\ns2.ecsv,b\n")  # paths relative to the table
    cat = Catalog.from_table(table)
    assert [Path(s).name for s in cat.ids] == ["s1.ecsv", "s2.ecsv"]
    renamed = folder / "renamed.csv"
    renamed.write_text("comment,spec\na,s1.ecsv\n")
    with pytest.raises(AtmospecError, match="no column named path"):
        Catalog.from_table(renamed)
    assert [Path(s).name for s in Catalog.from_table(renamed, "spec").ids] == ["s1.ecsv"]
    out = tmp_path / "run"
    _run(tiny, cat, out, plots=False)
    other = _predictor(tiny)
    other.model_id = "another-model"
    with pytest.raises(AtmospecError, match="would mix two models"):
        _run(tiny, cat, out, other, plots=False)
    twice = Catalog.concat([cat, Catalog.from_files([cat.items[0]])])
    with pytest.raises(AtmospecError, match="lists some spectra twice: .*s1.ecsv"):
        _run(tiny, twice, tmp_path / "twice", plots=False)


def test_catalogue_as_an_archive_table(folder: Path) -> None:
    """A catalogue as the archives write it: an IPAC table (IRSA) or a VOTable (a TAP answer);
    the IPAC header rows were read as file names before."""
    import warnings

    from astropy.table import Table

    from atmospec.prediction.sources import Catalog

    table = Table({"file": ["s1.ecsv", "s2.ecsv"], "comment": ["a", "b"]})
    table.write(folder / "list.tbl", format="ipac")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VOTable remarks on string columns
        table.write(folder / "list.vot", format="votable")
    for name in ("list.tbl", "list.vot"):
        cat = Catalog.from_table(folder / name)
        assert [Path(s).name for s in cat.ids] == ["s1.ecsv", "s2.ecsv"], name


def test_cli_killed_run_resumes(tiny: dict[str, Any], folder: Path, tmp_path: Path) -> None:
    """A real interruption: the CLI process is killed (SIGKILL) mid-run, then rerun."""
    import signal
    import subprocess
    import sys
    import time

    model_dir = tmp_path / "model"
    tiny["estimator"].save(model_dir)
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-c",
        "from atmospec.cli.main import main; main()",
        "--quiet",
        "predict",
        "--folder",
        str(folder),
        "--model",
        str(model_dir),
        "--out",
        str(out),
        "--chunk",
        "1",
        "--draws",
        "3000",
        "--no-ood",
        "--no-plots",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "parts").glob("part-*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_parts = len(list((out / "parts").glob("part-*.json")))
    assert 2 <= n_parts
    assert not (out / "predictions.csv").exists() or n_parts < 9
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert res.returncode == 3, res.stderr  # 8 predicted, broken.csv failed: "some failed"
    rows = pd.read_csv(out / "predictions.csv")
    assert len(rows) == 8 and rows["source"].is_unique
    assert pd.read_csv(out / "failures.csv")["source"].str.endswith("broken.csv").tolist() == [True]


def test_a_library_key_among_the_files_is_that_library_spectrum(
    splat_dir: Path, tmp_path: Path
) -> None:
    # `atmospec fit 10703_10070` took a library key, `atmospec predict 10703_10070` failed it
    # ("no such spectrum file"); now a name that is no file but a key is that spectrum
    from atmospec import library
    from atmospec.prediction.sources import Catalog

    real = tmp_path / "s.csv"
    real.write_text("wavelength [um],flux,error\n1.0,1.0,0.1\n1.1,1.0,0.1\n")
    cat = Catalog.from_files(["10703_10070", str(real), "nothere.csv"])
    assert cat.kinds == ("library", "file", "file")
    (hd3651b, mine, missing) = cat.partitions(3)[0].load()
    assert hd3651b.spectrum is not None
    np.testing.assert_array_equal(hd3651b.spectrum.flux, library.load("10703_10070").flux)
    assert mine.spectrum is not None
    assert missing.spectrum is None and "nothere.csv: no such spectrum file" in str(missing.error)
    # a key-shaped name that is neither a file nor a library key says both
    (lost,) = Catalog.from_files(["99999_99999"]).partitions(1)[0].load()
    assert "no such spectrum file, and not a SpeX library key" in str(lost.error)
    assert "library key" not in str(missing.error)


def test_a_table_of_library_keys_under_another_column_name_is_read_as_keys(
    splat_dir: Path, tmp_path: Path
) -> None:
    # a benchmark table lists its spectra in `splat_key`: `--column splat_key` took each key
    # for a file beside the table ("<folder>/10703_10070: no such spectrum file"), so every
    # row failed; a value that is no file there but a library key is that library spectrum
    from atmospec import library
    from atmospec.prediction.sources import Catalog

    (tmp_path / "mine.csv").write_text("wavelength [um],flux,error\n1.0,1.0,0.1\n1.1,1.0,0.1\n")
    table = tmp_path / "companions.csv"
    table.write_text("name,splat_key\nHD 3651B,10703_10070\nmine,mine.csv\nlost,nothere.csv\n")
    cat = Catalog.from_table(table, column="splat_key")
    assert cat.kinds == ("library", "file", "file")
    assert cat.items == ("10703_10070", str(tmp_path / "mine.csv"), str(tmp_path / "nothere.csv"))
    hd3651b, mine, missing = cat.partitions(3)[0].load()
    assert hd3651b.spectrum is not None
    np.testing.assert_array_equal(hd3651b.spectrum.flux, library.load("10703_10070").flux)
    assert mine.spectrum is not None and missing.spectrum is None


def test_quiet_still_says_which_spectra_could_not_be_used(tmp_path: Path) -> None:
    # `atmospec --quiet` keeps warnings and errors: a run where no spectrum could be used
    # exited 4 without a word
    import subprocess
    import sys

    table = tmp_path / "cat.csv"
    table.write_text("path\nnothere.fits\n")
    cmd = [sys.executable, "-c", "from atmospec.cli.main import main; main()", "--quiet"]
    cmd += ["predict", "--catalog", str(table), "--out", str(tmp_path / "o"), "--no-plots"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 4
    assert "nothere.fits: no such spectrum file" in res.stderr
    assert "no spectrum could be used" in res.stderr and "exit status 4" in res.stderr
    assert res.stdout == ""
