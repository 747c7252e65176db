"""Spectra store and catalogue: masked resampling, round trips, deterministic partitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atmospec.errors import FileFormatError
from atmospec.prediction.sources import Catalog
from atmospec.scale.store import (
    SpectraStore,
    resample_masked,
    store_from_folder,
    store_from_spectra,
)
from atmospec.spectrum import Spectrum


def test_resample_masked_conserves_flux_and_keeps_masks() -> None:
    # A linear flux f = 3 + 2*lambda on 0.01-um pixels (edges at x.xx5 um). Target bins of
    # 0.1 um centred on 1.205, 1.305, ... have edges on pixel edges, so each bin averages
    # exactly 10 whole pixels placed symmetrically: the flux-conserving mean of a linear
    # function is then its value at the bin centre, and the error of a mean of 10
    # independent 0.1-sigma pixels is 0.1 / sqrt(10).
    w = np.round(np.arange(1.0, 2.0001, 0.01), 10)
    f = 3.0 + 2.0 * w
    mask = (w > 1.495) & (w < 1.515)  # bad pixels at 1.50 and 1.51 um
    s = Spectrum(w, np.where(mask, np.nan, f), np.full(w.size, 0.1), mask=mask)
    target = np.round(np.arange(1.205, 2.0051, 0.1), 10)  # last bin 1.955-2.055 leaves the data
    flux, unc, m = resample_masked(s, target)
    assert unc is not None
    expect_mask = np.zeros(target.size, dtype=bool)
    expect_mask[3] = True  # 1.455-1.555 holds the bad pixels
    expect_mask[-1] = True  # not covered by the spectrum (it ends at 2.005 um)
    assert m.tolist() == expect_mask.tolist()
    np.testing.assert_allclose(flux[~m], 3.0 + 2.0 * target[~m], rtol=1e-12)
    np.testing.assert_allclose(unc[~m], 0.1 / np.sqrt(10), rtol=1e-9)
    assert np.isnan(flux[m]).all() and np.isnan(unc[m]).all()


def test_store_round_trip_and_chunks(tmp_path: Path) -> None:
    w = np.linspace(1.0, 2.0, 200)
    specs = [
        Spectrum(
            w, np.full(200, k + 1.0), np.full(200, 0.05), name=f"s{k}", meta={"source": f"s{k}"}
        )
        for k in range(7)
    ]
    store = store_from_spectra(specs, tmp_path / "a.zarr", w[10:-10], chunk_rows=3)
    assert len(store) == 7 and store.chunk_rows == 3
    flux, unc, mask, src = store.read(2, 6)
    assert src.tolist() == ["s2", "s3", "s4", "s5"]
    # constant flux k+1 stays k+1 after a flux-conserving resampling
    np.testing.assert_allclose(flux[:, 5], [3.0, 4.0, 5.0, 6.0], rtol=1e-6)
    assert not mask.any()
    spec = store.spectrum(-1)
    assert spec.source == "s6" and spec.uncertainty is not None
    # no leftover temporary folders next to the store (the write was atomic)
    assert [p.name for p in tmp_path.iterdir()] == ["a.zarr"]
    with pytest.raises(FileExistsError):
        store_from_spectra(specs, tmp_path / "a.zarr", w[10:-10])


def test_store_rejects_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(FileFormatError, match="x"):
        SpectraStore(tmp_path / "x")


def test_store_from_real_spex_folder(splat_dir: Path, tmp_path: Path) -> None:
    folder = splat_dir / "resources" / "Spectra" / "Public" / "SPEX-PRISM"
    store = store_from_folder(
        folder, tmp_path / "spex.zarr", "spex-prism", pattern="1000[1-4]_*.fits*"
    )
    flux, _, mask, src = store.read(0, len(store))
    assert len(store) == 4 and all(Path(s).name.startswith("1000") for s in src)
    # SpeX prism spectra are normalised near their J-band peak; on the 0.897-2.512 um axis
    # the usable flux is positive and of order unity.
    good = flux[~mask]
    assert good.size > 0.8 * flux.size and np.nanmedian(good) > 0.05


def test_catalog_partitions_are_deterministic(tmp_path: Path) -> None:
    table = tmp_path / "cat.csv"
    pd.DataFrame({"path": [f"f{i}.fits" for i in range(10)], "x": range(10)}).to_csv(table)
    cat = Catalog.open(table)
    parts = cat.partitions(4)
    assert [len(p) for p in parts] == [4, 4, 2]
    # relative paths are taken relative to the table's folder
    assert parts[2].items == (str(tmp_path / "f8.fits"), str(tmp_path / "f9.fits"))
    assert Catalog.open(table).fingerprint() == cat.fingerprint()
    # an unreadable file becomes an error row, not a crash
    loaded = parts[0].load()
    assert [r.row for r in loaded] == [0, 1, 2, 3]
    assert all(r.spectrum is None and "f" in r.source and r.error for r in loaded)


def test_catalog_table_needs_a_path_column(tmp_path: Path) -> None:
    table = tmp_path / "bad.csv"
    pd.DataFrame({"name": ["a"]}).to_csv(table, index=False)
    with pytest.raises(FileFormatError, match="no column named path / file"):
        Catalog.open(table)


def test_cli_store_from_folder(splat_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    folder = splat_dir / "resources" / "Spectra" / "Public" / "SPEX-PRISM"
    res = CliRunner().invoke(
        app,
        [
            "--quiet",
            "scale",
            "store",
            str(folder),
            str(tmp_path / "s.zarr"),
            "--axis",
            "spex-prism",
            "--pattern",
            "1000[1-2]_*",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(SpectraStore(tmp_path / "s.zarr")) == 2
