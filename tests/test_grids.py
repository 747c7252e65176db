"""ModelGrid on the real SPLAT model sets: axes, units, interpolation, hull errors, grid check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import OutOfGridError
from atmospec.grids import ModelGrid, load_grid
from atmospec.grids.check import check_grid, leave_one_out, node_error

pytestmark = pytest.mark.realdata

SIGMA_SB = 5.670374419e-5  # erg s^-1 cm^-2 K^-4


@pytest.fixture(scope="module")
def dback(splat_dir: Path) -> ModelGrid:
    return load_grid("dback24")


@pytest.fixture(scope="module")
def btsettl(splat_dir: Path) -> ModelGrid:
    return load_grid("btsettl08")


@pytest.fixture(scope="module")
def burrows(splat_dir: Path) -> ModelGrid:
    return load_grid("burrows06")


def _row(grid: ModelGrid, **params: float) -> int:
    rows = grid.node_index(params)
    assert rows[0] >= 0, params
    return int(rows[0])


def test_dback24_is_the_complete_published_grid(dback: ModelGrid) -> None:
    # Morley et al. 2024 / CONTEXT.md: 16 Teff x 5 logg x 3 [M/H] x 6 fsed = 1,440 spectra
    assert len(dback) == 1440 == 16 * 5 * 3 * 6
    assert dback.regular
    np.testing.assert_array_equal(dback.axes["teff"], np.arange(900.0, 2401.0, 100.0))
    np.testing.assert_array_equal(dback.axes["logg"], [3.5, 4.0, 4.5, 5.0, 5.5])  # file: 3.49
    np.testing.assert_array_equal(dback.axes["mh"], [-0.5, 0.0, 0.5])
    np.testing.assert_array_equal(dback.axes["fsed"], [1, 2, 3, 4, 8, 10])  # 10 = "nc"
    assert dback.metadata["value_labels"]["fsed"] == {"10": "nc"}
    # SpeX prism sampling of the SPLAT copy: 810 pixels over 0.686-2.537 um (CONTEXT.md)
    assert dback.n_wave == 810
    assert dback.wavelength[0] == pytest.approx(0.686, abs=1e-3)
    assert dback.wavelength[-1] == pytest.approx(2.537, abs=1e-3)
    assert "Morley" in dback.credit and dback.metadata["atmospec_version"]


def test_sparse_grids_are_declared_sparse(btsettl: ModelGrid, burrows: ModelGrid) -> None:
    assert len(btsettl) == 485 and not btsettl.regular
    assert len(burrows) == 252 and not burrows.regular
    # burrows06 is not complete over its own axes: 20 Teff x 3 logg x 3 [M/H] x 2 clouds = 360
    n_axes = np.prod([a.size for a in burrows.axes.values()])
    assert n_axes == 360 > len(burrows)
    assert burrows.categorical == ("cloudy",)
    assert btsettl.bounds["teff"] == (500.0, 3500.0)
    assert btsettl.bounds["mh"] == (-2.5, 0.5)


def test_flux_is_surface_flambda_in_cgs_per_micron(dback: ModelGrid) -> None:
    # Energy conservation: the flux a 1500 K atmosphere emits between 0.69 and 2.54 um is a
    # large part of, but never more than, sigma*T^4 (a blackbody puts 45% there; brown dwarf
    # absorption bands push flux into the near-IR windows). A unit off by 1e3 or 1e4
    # (W/m2/m, per Angstrom) would fail this.
    for fsed in (1.0, 10.0):
        f = dback.flux(_row(dback, teff=1500, logg=5.0, mh=0.0, fsed=fsed))
        frac = np.trapezoid(f, dback.wavelength) / (SIGMA_SB * 1500.0**4)
        assert 0.3 < frac < 1.0
    assert dback.flux_unit == "erg / (s cm2 um)"


def test_flux_reads_rows_in_the_order_asked(dback: ModelGrid) -> None:
    rows = np.array([5, 2, 5, 1439])
    block = dback.flux(rows)
    assert block.shape == (4, 810)
    np.testing.assert_array_equal(block[0], dback.flux(5))
    np.testing.assert_array_equal(block[1], dback.flux(slice(2, 3))[0])
    np.testing.assert_array_equal(block[3], dback.flux(-1))
    with h5_file(dback) as h5:  # one spectrum per chunk: reads never pull in the whole grid
        assert h5["flux"].chunks == (1, 810)
    idx, flux = next(dback.iter_batches(100))
    assert idx.tolist() == list(range(100)) and flux.shape == (100, 810)


def h5_file(grid: ModelGrid):  # noqa: ANN201
    import h5py

    return h5py.File(grid.path, "r")


def test_interpolation_reproduces_nodes_and_is_log_linear(dback: ModelGrid) -> None:
    i = _row(dback, teff=1200, logg=4.5, mh=0.0, fsed=2.0)
    np.testing.assert_allclose(dback.interpolate(dback.params.iloc[i].to_dict()), dback.flux(i))
    # halfway between two Teff nodes, linear in log flux = geometric mean of the two spectra
    a = dback.flux(_row(dback, teff=1200, logg=4.5, mh=0.0, fsed=2.0))
    b = dback.flux(_row(dback, teff=1300, logg=4.5, mh=0.0, fsed=2.0))
    mid = dback.interpolate({"teff": 1250, "logg": 4.5, "mh": 0.0, "fsed": 2.0})
    np.testing.assert_allclose(mid, np.sqrt(a * b), rtol=1e-12)
    # vectorised over many points == one by one
    pts = np.array([[1250, 4.2, 0.1, 2.5], [2350, 5.4, -0.4, 9.0], [900, 3.5, -0.5, 1.0]])
    many = dback.interpolate(pts)
    for p, f in zip(pts, many, strict=True):
        np.testing.assert_allclose(f, dback.interpolate(p), rtol=1e-12)
    s = dback.spectrum({"teff": 1250, "logg": 4.5, "mh": 0.0, "fsed": 2.0})
    assert s.meta["grid"] == "dback24" and s.meta["interpolated"] and "Morley" in s.meta["credit"]


def test_held_out_node_is_reproduced_within_reported_loo_error(
    dback: ModelGrid, tmp_path: Path
) -> None:
    """Issue 2 Done-when: interpolation at a held-out Diamondback node vs `grid check`."""
    report = check_grid(dback)
    teff_loo = report["leave_one_out"]["teff"]
    # hold out the whole Teff = 1500 K slice (90 nodes): the grid stays rectangular, so the
    # interpolator runs its regular multilinear path from the 1400 and 1600 K neighbours
    keep = dback.params["teff"].to_numpy() != 1500.0
    held = dback.select(keep, tmp_path / "held.h5", note="Teff 1500 held out")
    assert held.regular and len(held) == 1440 - 90
    rows = np.flatnonzero(~keep)
    pred = held.interpolate(dback.params.iloc[rows].to_numpy())
    truth = dback.flux(rows)
    errors = np.array([node_error(p, t) for p, t in zip(pred, truth, strict=True)])
    # the same nodes in the leave-one-node-out estimate of `grid check`
    loo = leave_one_out(dback, "teff")
    by_row = dict(zip(loo["rows"].tolist(), loo["errors"].tolist(), strict=True))
    np.testing.assert_allclose(errors, [by_row[r] for r in rows], rtol=1e-6)
    # and each held-out node is reproduced within the worst error grid check reports, the
    # typical one within its 95th percentile
    assert errors.max() <= teff_loo["max"] * (1 + 1e-9)
    assert np.median(errors) <= teff_loo["p95"]
    assert errors.min() > 0  # a real prediction, not a copy of the node
    with pytest.raises(OutOfGridError):  # nothing left to interpolate from at the edge
        held.interpolate({"teff": 2500, "logg": 4.5, "mh": 0.0, "fsed": 2.0})


def test_points_outside_the_grid_are_refused_clearly(dback: ModelGrid) -> None:
    with pytest.raises(
        OutOfGridError,
        match=r"teff = 800 is outside the grid: allowed range "
        r"900 to 2400 K \(atmospec does not extrapolate\)",
    ):
        dback.interpolate({"teff": 800, "logg": 5.0, "mh": 0.0, "fsed": 2.0})
    with pytest.raises(OutOfGridError, match=r"logg = 6 .* allowed range 3.5 to 5.5"):
        dback.interpolate(np.array([[1000, 6.0, 0.0, 2.0]]))
    with pytest.raises(OutOfGridError, match=r"1 of 2 points are outside"):
        dback.interpolate(np.array([[1000, 5.0, 0.0, 2.0], [1000, 5.0, 0.7, 2.0]]))
    with pytest.raises(OutOfGridError, match=r"missing parameter\(s\) \['fsed'\]"):
        dback.interpolate({"teff": 1000, "logg": 5.0, "mh": 0.0})
    assert dback.contains(np.array([[1000, 5, 0, 2], [2401, 5, 0, 2]])).tolist() == [True, False]


def test_sparse_btsettl_hull_and_tied_alpha(btsettl: ModelGrid) -> None:
    # alpha is tied to [M/H] in BT-Settl 2008 (+0.2 at -0.5): it may be omitted
    f = btsettl.interpolate({"teff": 1500, "logg": 5.0, "mh": -0.5})
    np.testing.assert_allclose(
        f, btsettl.flux(_row(btsettl, teff=1500, logg=5, mh=-0.5, alpha=0.2))
    )
    with pytest.raises(OutOfGridError, match=r"alpha = 0 .* tied to mh .* alpha = 0.2"):
        btsettl.interpolate({"teff": 1500, "logg": 5.0, "mh": -0.5, "alpha": 0.0})
    # metal-poor models exist only above 2600 K: inside every range, outside the hull
    with pytest.raises(OutOfGridError, match=r"teff = 1000 is outside the populated part.*sparse"):
        btsettl.interpolate({"teff": 1000, "logg": 5.0, "mh": -2.0})
    # between populated nodes the Delaunay interpolant stays between the neighbours' fluxes
    a = btsettl.flux(_row(btsettl, teff=1500, logg=5.0, mh=0.0, alpha=0.0))
    b = btsettl.flux(_row(btsettl, teff=1600, logg=5.0, mh=0.0, alpha=0.0))
    mid = btsettl.interpolate({"teff": 1550, "logg": 5.0, "mh": 0.0})
    np.testing.assert_allclose(mid, np.sqrt(a * b), rtol=1e-9)  # on an edge: 1-D log-linear


def test_burrows_cloud_flag_is_never_interpolated(burrows: ModelGrid) -> None:
    with pytest.raises(OutOfGridError, match=r"cloudy = 0.5 is not one of .* categorical"):
        burrows.interpolate({"teff": 1000, "logg": 5.0, "mh": 0.0, "cloudy": 0.5})
    clear = burrows.interpolate({"teff": 1050, "logg": 5.0, "mh": 0.0, "cloudy": 0})
    cloudy = burrows.interpolate({"teff": 1050, "logg": 5.0, "mh": 0.0, "cloudy": 1})
    assert not np.allclose(clear, cloudy)
    # the 2100-2600 K clear models exist only at log g 5.0: at log g 5.5 the clear solar
    # models stop at 2000 K (file list of splat's burrows06 folder)
    with pytest.raises(
        OutOfGridError, match=r"teff = 2500 .*for cloudy = 0 .*allowed range there 700 to 2000 K"
    ):
        burrows.interpolate({"teff": 2500, "logg": 5.5, "mh": 0.0, "cloudy": 0})


def test_grid_check_finds_no_duplicates_in_splat_sets(dback: ModelGrid) -> None:
    report = check_grid(dback, max_nodes=200)
    assert report["duplicates"]["n_groups"] == 0
    for p in dback.param_names:
        r = report["leave_one_out"][p]
        assert r["n_nodes"] > 0 and 0 < r["median"] <= r["p95"] <= r["max"]
    # interior nodes along Teff: 14 of 16 in each of 5*3*6 lines, subsampled to 200
    assert report["leave_one_out"]["teff"]["n_nodes"] == 200


def test_cli_grids_json_and_check(splat_dir: Path) -> None:
    from typer.testing import CliRunner

    from atmospec.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["grids", "--json"])
    assert res.exit_code == 0, res.output
    grids = {g["name"]: g for g in json.loads(res.output)["grids"]}
    assert grids["dback24"]["n_spectra"] == 1440
    assert grids["dback24"]["axes"]["fsed"] == [1, 2, 3, 4, 8, 10]
    assert grids["dback24"]["ranges"]["teff"] == [900, 2400]
    assert grids["btsettl08"]["n_spectra"] == 485 and not grids["btsettl08"]["regular"]
    assert grids["burrows06"]["n_spectra"] == 252
    res = runner.invoke(app, ["grid", "check", "burrows06", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["leave_one_out"]["cloudy"] == {"skipped": "categorical: never interpolated"}
    assert report["leave_one_out"]["teff"]["n_nodes"] > 0
