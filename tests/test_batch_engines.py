"""One batch engine: the local and the Dask executor give the same table, failures included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.realdata

DRAWS = 200
PART = 3
KEYS = ("10001_10443", "10017_10945")  # an L5 and a T2 dwarf of the SpeX library, S/N > 50


@pytest.fixture(scope="module")
def catalogue(splat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table of five real SpeX prism spectra (L and T dwarfs, as files) and one bad file."""
    from atmospec.library import query

    root = tmp_path_factory.mktemp("engines")
    lt = query(spt="L0-T8", snr_min=50, quality="OK")
    picked = list(KEYS) + [k for k in lt["key"].astype(str) if k not in KEYS][:3]
    files = lt.set_index("key").loc[picked, "file"].astype(str)
    spex = splat_dir / "resources/Spectra/Public/SPEX-PRISM"
    paths = [str(spex / f) for f in files]
    assert all(Path(p).is_file() for p in paths)
    bad = root / "not-a-spectrum.csv"
    bad.write_text("this is not a spectrum\n")
    # the bad file sits in the middle of a partition: its neighbours must not suffer
    rows = paths[:2] + [str(bad)] + paths[2:]
    pd.DataFrame({"comment": [f"row {i}" for i in range(len(rows))], "spec": rows}).to_csv(
        root / "targets.csv", index=False
    )
    return root / "targets.csv"


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def test_local_and_dask_give_the_same_table(catalogue: Path, client: Any, tmp_path: Path) -> None:
    from atmospec.prediction.batch import BatchOptions, read_results, run_catalog
    from atmospec.prediction.predictor import Predictor
    from atmospec.prediction.sources import Catalog
    from atmospec.scale.distributed import DaskExecutor

    cat = Catalog.from_table(catalogue, "spec")
    opts = BatchOptions(draws=DRAWS, ood=False, partition_size=PART, threads=1, plots=False)
    predictor = Predictor("default", **opts.predictor_kwargs())
    local = run_catalog(cat, predictor, tmp_path / "local", opts)
    dask = run_catalog(cat, predictor, tmp_path / "dask", opts, executor=DaskExecutor(client))
    assert local.complete and dask.complete and dask.workers == 2
    assert (local.n_predicted, local.n_unusable) == (5, 1) == (dask.n_predicted, dask.n_unusable)
    a, b = read_results(tmp_path / "local"), read_results(tmp_path / "dask")
    # Same rows, same failure, same numbers: each spectrum's draws are seeded by its source
    # and each partition holds the same rows whichever executor computes it.
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a["row"].tolist() == list(range(6))
    bad = a[a["error"] != ""]
    assert bad["row"].tolist() == [2] and "not-a-spectrum.csv" in bad["error"].iloc[0]
    good = a[a["error"] == ""]
    # L and T dwarfs: Teff between 500 and 2400 K, inside the Diamondback grid's range
    assert good["teff_median"].between(500, 2400).all()
    assert (good["teff_p16"] <= good["teff_median"]).all()
    assert (good["teff_median"] <= good["teff_p84"]).all()
    # the merged tables are the same files too
    for name in ("predictions.csv", "failures.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "local" / name), pd.read_csv(tmp_path / "dask" / name)
        )


def test_cli_scheduler_honours_every_option(catalogue: Path, client: Any, tmp_path: Path) -> None:
    """`predict --scheduler` keeps --column, --precision, --threads, --max-masked and
    --assume-snr (they used to be dropped): same table and same recorded options as locally."""
    from typer.testing import CliRunner

    from atmospec.cli.main import app
    from atmospec.prediction.batch import read_results

    common = [
        "--quiet",
        "predict",
        "--catalog",
        str(catalogue),
        "--column",
        "spec",
        "-m",
        "dback24-spex",
    ]
    common += ["--draws", str(DRAWS), "--partition-size", str(PART), "--no-ood", "--no-plots"]
    common += ["--precision", "bfloat16", "--threads", "1", "--coverage", "mask"]
    common += ["--max-masked", "0.3", "--assume-snr", "40"]
    runner = CliRunner()
    res = runner.invoke(app, [*common, "-o", str(tmp_path / "local")])
    assert res.exit_code == 3, res.output  # 5 predicted, the bad file failed: "some failed"
    address = client.scheduler.address
    res = runner.invoke(app, [*common, "-o", str(tmp_path / "dask"), "--scheduler", address])
    assert res.exit_code == 3, res.output
    a, b = read_results(tmp_path / "local"), read_results(tmp_path / "dask")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (a["error"] != "").sum() == 1
    recs = [json.loads((tmp_path / d / "run.json").read_text()) for d in ("local", "dask")]
    for rec in recs:
        assert rec["run_options"]["precision"] == "bfloat16"
        assert rec["run_options"]["max_masked_fraction"] == 0.3
        assert rec["run_options"]["assume_snr"] == 40.0
        assert rec["run_options"]["threads"] == 1
        assert rec["status"] == "complete"
    assert recs[0]["options"] == recs[1]["options"]
    # --precision is honoured: float32 copies give other numbers, within the documented
    # < 1 % of the grid range
    from atmospec.models import load_model

    res = runner.invoke(
        app,
        [*[c if c != "bfloat16" else "float32" for c in common], "-o", str(tmp_path / "f32")],
    )
    assert res.exit_code == 3, res.output
    f32 = read_results(tmp_path / "f32")
    ok = a["error"] == ""
    diff = np.abs(f32.loc[ok, "teff_median"].to_numpy() - a.loc[ok, "teff_median"].to_numpy())
    lo, hi = load_model("dback24-spex").bounds_["teff"]
    assert 0 < diff.max() < 0.01 * (hi - lo)


def test_both_commands_take_the_same_options_with_the_same_defaults() -> None:
    import typer

    from atmospec.cli.main import app

    group = typer.main.get_command(app)
    local = {p.name: p for p in group.commands["predict"].params}  # type: ignore[attr-defined]
    scale = {p.name: p for p in group.commands["scale"].commands["predict"].params}  # type: ignore[attr-defined]
    only_local = {"files", "library", "spt", "snr_min", "quality", "limit", "catalog", "folder"}
    assert set(local) - only_local == set(scale) - {"catalog", "serial"}
    for name in set(scale) - {"catalog", "serial"}:
        assert local[name].default == scale[name].default, name
        assert local[name].opts == scale[name].opts, name
    assert local["coverage"].default == "gaps"


def test_read_options_honoured_by_both_executors(
    catalogue: Path, client: Any, tmp_path: Path
) -> None:
    """--wave-unit / --wave-col / --flux-col / --err-col reach the reader on the Dask workers
    as in this process: a CSV with wavelengths in nm under unusual column names is read the
    same way by both, and without the options it cannot be read at all."""
    from typer.testing import CliRunner

    from atmospec.cli.main import app
    from atmospec.io import read
    from atmospec.prediction.batch import read_results

    first = pd.read_csv(catalogue)["spec"].iloc[0]
    spec = read(first)
    csv = tmp_path / "renamed.csv"
    pd.DataFrame(
        {
            "lam": spec.wavelength * 1000.0,  # um -> nm
            "fl": spec.flux,
            "sg": spec.uncertainty,
        }
    ).to_csv(csv, index=False)
    table = tmp_path / "one.csv"
    pd.DataFrame({"path": [str(csv)]}).to_csv(table, index=False)
    common = ["--quiet", "predict", "--catalog", str(table), "-m", "dback24-spex", "--no-plots"]
    common += ["--draws", str(DRAWS), "--no-ood", "--coverage", "mask", "--threads", "1"]
    read_opts = ["--wave-unit", "nm", "--wave-col", "lam", "--flux-col", "fl", "--err-col", "sg"]
    runner = CliRunner()
    res = runner.invoke(app, [*common, "-o", str(tmp_path / "bare")])
    assert res.exit_code == 4, res.output  # columns lam/fl/sg are no known synonyms: refused
    res = runner.invoke(app, [*common, *read_opts, "-o", str(tmp_path / "local")])
    assert res.exit_code == 0, res.output
    address = client.scheduler.address
    res = runner.invoke(
        app, [*common, *read_opts, "-o", str(tmp_path / "dask"), "--scheduler", address]
    )
    assert res.exit_code == 0, res.output
    a, b = read_results(tmp_path / "local"), read_results(tmp_path / "dask")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (a["error"] == "").all() and a["teff_median"].between(500, 2400).all()
    for d in ("local", "dask"):
        rec = json.loads((tmp_path / d / "run.json").read_text())
        assert rec["options"]["wave_unit"] == "nm" and rec["options"]["err_col"] == "sg"


def test_multigrid_default_gives_the_same_table_on_both_executors(
    catalogue: Path, client: Any, tmp_path: Path
) -> None:
    """The default model's multi-grid answer (Diamondback NPE/CNN, Burrows 2006 CNN,
    BT-Settl chi-square, combined) runs through the same partition runner on Dask: the
    workers rebuild it from its shipped spec and write the table the local run writes."""
    from atmospec.multigrid import DEFAULT_ROUTES, MultiGridPredictor
    from atmospec.prediction.batch import BatchOptions, read_results, run_catalog
    from atmospec.prediction.sources import Catalog
    from atmospec.scale.distributed import DaskExecutor

    cat = Catalog.from_table(catalogue, "spec")
    opts = BatchOptions(draws=DRAWS, ood=False, partition_size=PART, threads=1, plots=False)
    kwargs = opts.predictor_kwargs()
    kwargs.pop("grid")
    # run_catalog is typed for a Predictor; a MultiGridPredictor has its prepare and
    # predict_inputs (the CLI passes one the same way)
    predictor: Any = MultiGridPredictor(DEFAULT_ROUTES, **kwargs)
    local = run_catalog(cat, predictor, tmp_path / "local", opts)
    dask = run_catalog(cat, predictor, tmp_path / "dask", opts, executor=DaskExecutor(client))
    assert local.complete and dask.complete and dask.workers == 2
    assert (local.n_predicted, local.n_unusable) == (5, 1) == (dask.n_predicted, dask.n_unusable)
    a, b = read_results(tmp_path / "local"), read_results(tmp_path / "dask")
    # The misfit is a quadratic form through a BLAS solve whose summation order follows the
    # process's thread count (the workers run one thread): equal to ~1e-14, not to the bit.
    # Every other column (samples, percentiles, weights, flags, notes) is bit-identical.
    misfit = [c for c in a.columns if c.endswith("misfit") or c == "misfit_score"]
    pd.testing.assert_frame_equal(a.drop(columns=misfit), b.drop(columns=misfit), check_exact=True)
    pd.testing.assert_frame_equal(a[misfit], b[misfit], check_exact=False, rtol=1e-12)
    good = a[a["error"] == ""]
    # every grid answered: per-grid columns, weights and the flags of the combination
    grids = [r.grid for r in DEFAULT_ROUTES]
    assert {f"teff_{g}_median" for g in grids[1:]} | {"outside_grid", "misfit_flag"} <= set(a)
    assert local.model_id == dask.model_id and local.model_id.startswith("grids:" + "+".join(grids))
    weights = good[[f"{g}_weight" for g in grids]].to_numpy(dtype=float)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-9)  # a mixture of the grids
    # L and T dwarfs: the combined Teff lies inside the grids' joint range (500-3500 K)
    assert good["teff_median"].between(500, 3500).all()
