"""Real-spectra benchmark: parameters on observed SpeX prism spectra, old routes beside new.

Usage: python benchmarks/real_spectra.py [--quick] [--draws 1000] [--out F.json]

Measured on real data only (the SpeX prism library as fetched by ``atmospec data fetch``,
and a table of benchmark companions given with ``--companions``, by default the project's
optional test data):

- ``companions``: brown-dwarf companions whose Teff and log g come from bolometric luminosity
  and evolutionary models at the host's age (independent of atmosphere models): the fraction
  of true Teff inside the 68 % / 95 % intervals, the median |dTeff| and the fraction of true
  log g inside the 68 % interval (and of host [Fe/H] inside the [M/H] interval where known).
  The shipped correction for the grids' shared systematic error
  (:mod:`atmospec.multigrid.calibration`) learned its Teff term from half of them (split by
  object, stratified in Teff, recorded in its JSON): the top-level ``companions`` keys are
  measured on the *other* half only; ``companions_calibration_half`` and ``companions_all``
  are printed beside them for comparison (never as the result). The library's companions are
  excluded from the discrepancy models' training.
- ``repeat_pull_std``: objects with two library spectra: the root mean square of
  ``(T1 - T2) / sqrt(s1^2 + s2^2)``, s the statistical part of the uncertainty where the route
  reports one (``teff_err_stat``: what differs between two spectra of one object; learned
  from repeat spectra of the discrepancy models' fit half, measured here on the other half),
  else half the 68 % interval; 1 when right. ``repeat_pull_std_total`` uses half the whole
  68 % interval: with model error in the interval (common to both spectra) it must be < 1.
  ``repeat_pull_within_1``: the fraction of those pulls within +-1 (0.68 for Gaussian
  scatter; robust to the few pairs in the tails that dominate the RMS).
  ``repeat_pull_std_fit_half`` (comparison, never the result; ``predict`` route only): the
  same on the fit-half pairs the statistical part was learned from, where it is ~1 by
  construction; the two halves' difference shows how far 17 pairs let the key move.
- ``gravity_gap``: median log g of field (FLD-G) L0-L5 dwarfs minus that of VL-G ones.
- ``field_mh_median``: median [M/H] of field L0-T4 dwarfs (S/N >= 50; the population is
  near solar).
- ``ood_false_alarm_real``: fraction of those field dwarfs flagged (outside the grid or misfit).
- ``field_dteff_spt_l0_l4`` / ``_l5_l9`` (comparison only, no target; never fitted
  into anything): median Teff of those field dwarfs minus the field-age spectral type-Teff
  relation of Filippazzo et al. (2015, ApJ 810, 158; a sixth-order polynomial over M6-T9 with
  113 K scatter, its coefficients as SPLAT lists them), per spectral-type range, and
  ``field_dteff_spt_scatter`` (1.4826 MAD of all of them): every field dwarf against an
  independent empirical scale, beside the 14 companions' labels (gravity classes, and so the
  field set, stop at the L/T transition). ``field_spt_in_68_l0_l4`` ... ``field_spt_in_95_l5_l9``:
  the fraction whose relation Teff lies inside the route's 68 % / 95 % interval. The
  relation's own 113 K scatter keeps these below the nominal levels even for an unbiased
  route with honest intervals: with 68 % half widths of ~140 K, about 0.56 and 0.87
  (P(|z| < 140 / sqrt(140^2 + 113^2)) and the same for 1.96 x 140).
- ``ood_recall_outside``: fraction flagged among M0-M5 dwarfs and >= T8 dwarfs, whose Teff
  lies outside Diamondback's 900-2400 K.
- ``grids_disagree_field`` / ``_vlg`` / ``_outside`` (``predict`` routes; no target): how
  often the table's ``grids_disagree`` warning is raised on those field dwarfs, on the VL-G
  dwarfs and on the outside set. Its threshold is learned on field dwarfs of the fit half at
  a 5 % false-alarm rate; without it (``--no-calibration``) it is raised whenever two grids'
  68 % intervals do not overlap.

Only library objects of the discrepancy models' *evaluation* half are used (their split is
recorded in each model's JSON); young, binary and companion objects were never in either half.

Routes, in one run:
  ``chi2_plain``: chi-square with photon noise only (the classic route before model error;
      intervals from the node posterior, each node spread over its grid cell), Diamondback.
  ``chi2_discrepancy``: the same with Diamondback's discrepancy covariance (the new default).
  ``chi2_multigrid``: Diamondback, BT-Settl 2008 and Burrows 2006 with their discrepancy
      models; the grids that cover the object (best Teff not on the grid's edge, no misfit
      flag) are pooled with equal weight, so the interval includes the spread between grids.
  ``predict_uncalibrated``: the same with ``--no-calibration`` (the grids' answers alone).
  ``predict``: ``atmospec predict --model default --coverage mask`` on a ``--catalog`` of the
      library keys (the user's route; it picks up whatever the default model is). ``mask``
      rather than the default ``gaps`` serves one VL-G spectrum (11710_11307) whose five bluest
      model bins fall on NaN pixels at the end of its range; the two agree on every other
      spectrum of the sets.
  ``posterior_sample``: ``atmospec posterior sample`` (the shipped NPE: Diamondback alone with
      its model of mismatch; spectra above its S/N range brought to 29.7) on the same keys,
      ``--n`` as predict's draws; any warning it gives (posterior at a grid edge, outside the
      NPE's domain, unlike its training spectra, misfit, flux unit) is the flag. Comparison
      only: its interval leaves out the spread between grids and their shared error.
  ``grid_<name>``: each grid's own answer, from the per-grid columns of the uncalibrated
      ``predict`` table (median and 68 % interval only; no flags): what the combination and
      the calibration start from.

Before it, a table gives every companion's label, estimate, intervals and each grid's median,
held-out and calibration halves marked (``companion_table`` in the JSON), and the top route's
keys with their 68 % interval over resamplings of the objects behind each (``bootstrap_68``):
13 companions or 17 pairs let a key move far, and a target inside that interval is not missed
beyond what they can tell. The last printed line is one JSON object: the ``predict`` route's
keys at the top level, every route under ``routes``, and under ``provenance`` the versions,
the seed and the model id ``atmospec predict`` ran with (it ends with the calibration's
digest).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from atmospec.fitting.result import FitResult

GRIDS = ("dback24", "btsettl08", "burrows06")
PARAMS = ("teff", "logg", "mh")
TARGETS = {
    "teff_in_68": (0.55, 0.80),
    "teff_in_95": (0.90, 1.0),
    "median_abs_dteff": (0.0, 60.0),
    "logg_in_68": None,
    "repeat_pull_std": (0.8, 1.2),
    "gravity_gap": (0.5, np.inf),
    "field_mh_median": (-0.15, 0.15),
    "ood_false_alarm_real": (0.0, 0.10),
    "ood_recall_outside": (0.95, 1.0),
}


def _default_companions() -> Path | None:
    from atmospec.data import shared_data

    root = shared_data()
    if root is None:
        return None
    path = Path(root) / "benchmarks" / "companions.csv"
    return path if path.is_file() else None


def build_sets(quick: bool, companions: Path, seed: int) -> dict[str, pd.DataFrame]:
    """The library spectra of every validation set (evaluation-half objects only)."""
    from atmospec import library
    from atmospec.discrepancy import load_discrepancy

    fit_objects: set[int] = set()
    for g in GRIDS:
        fit_objects |= set(load_discrepancy(g).meta["split"]["fit_objects"])
    cat = library.catalogue()
    ok = cat["quality"].eq("OK").fillna(False) & ~(cat["binary"] | cat["spectral_binary"])
    ok &= ~cat["companion"] & ~cat["source_key"].isin(fit_objects)
    grav = cat["gravity_class"].astype("string").str.upper()
    rng = np.random.default_rng(seed)

    def take(frame: pd.DataFrame, n: int) -> pd.DataFrame:
        if not quick or len(frame) <= n:
            return frame
        return frame.iloc[np.sort(rng.choice(len(frame), n, replace=False))]

    field = cat[ok & grav.eq("FLD-G").fillna(False) & cat["spt_num"].between(20, 34.9)]
    field = field[field["snr"].ge(50)].drop_duplicates("source_key")
    vlg = cat[ok & grav.eq("VL-G").fillna(False) & cat["spt_num"].between(20, 25.9)]
    vlg = vlg[vlg["snr"].ge(20)].drop_duplicates("source_key")
    outside = cat[
        ok
        & (cat["spt_num"].between(10, 15.9) | cat["spt_num"].ge(38))
        & cat["snr"].ge(20).fillna(False)
    ].drop_duplicates("source_key")
    rep = cat[ok & cat["spt_num"].between(20, 38) & cat["snr"].ge(20).fillna(False)]
    rep = rep[~grav.reindex(rep.index).isin(["INT-G", "VL-G"]).fillna(False)]
    rep = rep.sort_values("snr", ascending=False).groupby("source_key").head(2)
    counts = rep["source_key"].value_counts()
    rep = rep[rep["source_key"].isin(counts[counts >= 2].index)]
    keep_objects = take(pd.DataFrame({"s": sorted(rep["source_key"].unique())}), 30)["s"]
    rep = rep[rep["source_key"].isin(keep_objects)]
    comp = pd.read_csv(companions)
    comp = comp[comp["teff"].notna()].rename(columns={"splat_key": "key"})
    held, used = _calibration_split(comp)
    fit_rep = _fit_half_repeats()
    return {
        "companions": comp[comp["key"].isin(held)],
        "companions_calibration": comp[comp["key"].isin(used)],
        "companions_all": comp,
        "field": take(field, 60),
        "vlg": take(vlg, 30),
        "repeats": rep,
        "outside": take(outside, 40),
        "repeats_fit_half": fit_rep,
    }


def _fit_half_repeats() -> pd.DataFrame:
    """The spectra the shipped calibration learned its repeat scatter from (fit half; for
    comparison only, answered by the ``predict`` route alone)."""
    from atmospec.multigrid.calibration import load_calibration
    from atmospec.multigrid.calibration_fit import repeat_pairs

    used = set(load_calibration().repeat["teff"].objects)
    pairs = [p for p in repeat_pairs(None, 0) if p[0] in used]
    return pd.DataFrame(
        [{"key": k, "source_key": o} for o, a, b in pairs for k in (a, b)],
        columns=["key", "source_key"],
    )


def _calibration_split(comp: pd.DataFrame) -> tuple[set[str], set[str]]:
    """Companions held out of the shipped calibration (reported) and those it learned from.

    A companion of the calibration half that the predictor refused when the calibration was
    learned (``split.calibration_refused`` in its record) is in neither set: it belongs to
    the calibration half by the split, and is named here rather than counted as held out."""
    from atmospec.errors import DataNotFoundError
    from atmospec.multigrid.calibration import load_calibration

    try:
        cal = load_calibration()
    except DataNotFoundError:
        return set(comp["key"]), set()
    used = cal.calibration_objects & set(comp["key"])
    refused = set(cal.meta.get("split", {}).get("calibration_refused", {})) & set(comp["key"])
    if refused:
        print(f"calibration half, refused when the calibration was learned: {sorted(refused)}")
    return set(comp["key"]) - used - refused, used


# -- classic route ---------------------------------------------------------------------


def _quantiles(samples: pd.DataFrame) -> dict[str, float]:
    out = {}
    for p in PARAMS:
        if p in samples:
            q = np.percentile(samples[p].to_numpy(), [2.5, 16, 50, 84, 97.5])
            for name, v in zip(("p2.5", "p16", "median", "p84", "p97.5"), q, strict=True):
                out[f"{p}_{name}"] = float(v)
    return out


def _samples(res: FitResult) -> pd.DataFrame:
    """The model-discrepancy posterior samples of a chi-square fit (every grid here has a
    discrepancy model, so the fit draws them)."""
    if res.samples is None:
        raise RuntimeError(f"the chi-square fit with {res.grid} has no model-discrepancy samples")
    return res.samples


def _misfit(res: FitResult) -> bool:
    """Whether a chi-square fit's model-discrepancy score flags a misfit."""
    if res.discrepancy is None:
        raise RuntimeError(f"the chi-square fit with {res.grid} has no model-discrepancy record")
    return bool(res.discrepancy["misfit_flagged"])


def classic(keys: list[str], quick: bool) -> dict[str, dict[str, dict[str, Any]]]:
    """Per route, per key: quantiles and flags from chi-square fits of every grid."""
    from tqdm.auto import tqdm

    from atmospec import library
    from atmospec.discrepancy.likelihood import node_samples, node_weights
    from atmospec.fitting.chi2 import fit_chi2
    from atmospec.grids import load_grid
    from atmospec.stats import chi2_test

    grids = {g: load_grid(g) for g in GRIDS}
    routes: dict[str, dict[str, dict[str, Any]]] = {
        "chi2_plain": {},
        "chi2_discrepancy": {},
        "chi2_multigrid": {},
    }
    for key in tqdm(keys, desc="chi-square fits", unit="spec"):
        try:
            spec = library.load(key)
        except Exception as err:  # noqa: BLE001 - reported, not dropped silently
            print(f"{key}: not loaded ({err})", file=sys.stderr)
            continue
        per_grid = {}
        for g, grid in grids.items():
            res = fit_chi2(spec, grid)
            t_axis = grid.axes["teff"]
            at_edge = res.best["teff"] in (float(t_axis[0]), float(t_axis[-1]))
            per_grid[g] = (res, at_edge)
        res, at_edge = per_grid["dback24"]
        nodes = res.nodes
        if nodes is None:
            raise RuntimeError(f"{key}: the chi-square fit with dback24 has no node table")
        fitted = [p for p in res.fitted if p in nodes]
        plain_w = node_weights(nodes["chi2"].to_numpy())
        plain = _quantiles(node_samples(nodes, plain_w, fitted, n=2000))
        p_value = chi2_test(float(nodes["chi2"].min()), res.dof).p_value
        routes["chi2_plain"][key] = {**plain, "flag": bool(at_edge or p_value < 0.05)}
        disc = _quantiles(_samples(res))
        routes["chi2_discrepancy"][key] = {
            **disc,
            "flag": bool(at_edge or _misfit(res)),
        }
        covering = [g for g, (r, e) in per_grid.items() if not e and not _misfit(r)]
        if not covering:
            covering = [g for g, (r, e) in per_grid.items() if not e] or list(GRIDS)
        pooled = pd.concat(
            [
                s[[p for p in PARAMS if p in s]]
                for s in (_samples(per_grid[g][0]) for g in covering)
            ],
            ignore_index=True,
        )
        routes["chi2_multigrid"][key] = {
            **_quantiles(pooled),
            "flag": not any(not e for _, e in per_grid.values()),
            "grids": covering,
        }
    return routes


# -- predict route ---------------------------------------------------------------------


_FLAG_COLUMNS = ("ood_flag", "outside_grid", "outside_flag", "misfit_flag")


def _atmospec(*args: str, ok: tuple[int, ...] = (0,)) -> None:
    """Run ``atmospec --quiet ARGS`` as a user would (a fresh process); an exit status outside
    ``ok`` raises with the end of its standard error."""
    cmd = [sys.executable, "-c", "from atmospec.cli.main import main; main()", "--quiet", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode not in ok:
        raise RuntimeError(f"atmospec {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")


def predict_route(
    keys: list[str], draws: int, tmp: Path, calibration: bool = True
) -> tuple[dict[str, dict[str, Any]], str]:
    """``atmospec predict --model default --catalog`` on the keys; quantiles and flags
    (``calibration=False``: with ``--no-calibration``), and the run's model id (every
    member's, each grid's model of mismatch and the calibration's digest)."""
    from astropy.table import Table

    cat = tmp / "catalog.csv"
    pd.DataFrame({"key": keys}).to_csv(cat, index=False)
    out = tmp / ("predict" if calibration else "predict_uncalibrated")
    _atmospec(
        "predict",
        "--catalog",
        str(cat),
        "--column",
        "key",
        "--model",
        "default",
        "--coverage",
        "mask",
        "--draws",
        str(draws),
        "--no-plots",
        "--out",
        str(out),
        *([] if calibration else ["--no-calibration"]),
    )
    table = Table.read(out / "predictions.ecsv").to_pandas()
    flags = [c for c in _FLAG_COLUMNS if c in table]
    rows = {}
    for rec in table.to_dict("records"):
        q = {
            k: float(v)
            for k, v in rec.items()
            if any(k.startswith(f"{p}_") for p in PARAMS)
            and not k.endswith("at_bound")
            and "_" in k
            and isinstance(v, (int, float, np.number))
        }
        rows[str(rec["source"])] = {
            **q,
            "flag": bool(any(bool(rec[c]) for c in flags)),
            # the grids' disagreement warning (a note, not an OOD flag)
            "disagree": float(bool(rec["grids_disagree"])) if "grids_disagree" in rec else np.nan,
        }
    return rows, str(json.loads((out / "run.json").read_text())["model_id"])


def posterior_route(keys: list[str], n: int, tmp: Path) -> dict[str, dict[str, Any]]:
    """``atmospec posterior sample`` on the keys (the shipped NPE: Diamondback alone, with its
    model of mismatch); quantiles of its samples, and a flag where it warned (any warning).
    Spectra it cannot use (its axis not filled) have no row."""
    out = tmp / "posterior"
    # exit status 3: some spectra could not be used (recorded in posterior.json)
    _atmospec("posterior", "sample", *keys, "--n", str(n), "--out", str(out), ok=(0, 3))
    record = json.loads((out / "posterior.json").read_text())
    rows = {}
    for key, obj in record["objects"].items():
        if obj.get("samples"):
            samples = pd.read_csv(out / obj["samples"])
            rows[key] = {**_quantiles(samples), "flag": bool(obj["warnings"])}
    return rows


def _grid_rows(rows: dict[str, dict[str, Any]], grid: str) -> dict[str, dict[str, Any]]:
    """One grid's answers from the predict table's ``<p>_<grid>_median/_p16/_p84`` columns
    (rows where that grid answered; no flags)."""
    out = {}
    for key, rec in rows.items():
        sub = {
            f"{p}_{q}": rec[f"{p}_{grid}_{q}"]
            for p in PARAMS
            for q in ("median", "p16", "p84")
            if f"{p}_{grid}_{q}" in rec
        }
        if np.isfinite(sub.get("teff_median", np.nan)):
            out[key] = {**sub, "flag": np.nan}
    return out


# -- metrics ---------------------------------------------------------------------------


def metrics(rows: dict[str, dict[str, Any]], sets: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """The issue's keys for one route."""

    def companions(comp: pd.DataFrame) -> dict[str, Any]:
        return _companion_metrics(rows, comp)

    return {
        "companions": companions(sets["companions"]),
        "companions_calibration_half": companions(sets["companions_calibration"]),
        "companions_all": companions(sets["companions_all"]),
        **_other_metrics(rows, sets),
    }


def _column(rows: dict[str, dict[str, Any]], keys: Any, col: str) -> np.ndarray:
    """Column ``col`` of the route's rows for ``keys`` (NaN where a key has no row)."""
    return np.array([rows[k][col] if k in rows and col in rows[k] else np.nan for k in keys])


def _companion_metrics(rows: dict[str, dict[str, Any]], comp: pd.DataFrame) -> dict[str, Any]:
    def get(keys: Any, col: str) -> np.ndarray:
        return _column(rows, keys, col)

    if comp.empty:
        return {"n": 0}
    ck = comp["key"].tolist()
    t_true = comp["teff"].to_numpy(dtype=float)
    g_true = comp["logg"].to_numpy(dtype=float)
    med = get(ck, "teff_median")
    have = np.isfinite(med)
    in68 = (get(ck, "teff_p16") <= t_true) & (t_true <= get(ck, "teff_p84"))
    lo95, hi95 = get(ck, "teff_p2.5"), get(ck, "teff_p97.5")
    in95 = (lo95 <= t_true) & (t_true <= hi95)
    g68 = (get(ck, "logg_p16") <= g_true) & (g_true <= get(ck, "logg_p84"))
    companions = {
        "n": int(have.sum()),
        "teff_in_68": float(np.mean(in68[have])) if have.any() else None,
        "teff_in_95": (
            float(np.mean(in95[have])) if have.any() and np.isfinite(lo95[have]).all() else None
        ),
        "median_abs_dteff": float(np.median(np.abs(med[have] - t_true[have]))),
        "median_dteff": float(np.median(med[have] - t_true[have])),
        "logg_in_68": float(np.mean(g68[have & np.isfinite(g_true)])),
    }
    if "mh" in comp:
        m_true = comp["mh"].to_numpy(dtype=float)
        hm = have & np.isfinite(m_true)
        m68 = (get(ck, "mh_p16") <= m_true) & (m_true <= get(ck, "mh_p84"))
        companions["n_host_mh"] = int(hm.sum())
        companions["host_mh_in_68"] = float(np.mean(m68[hm])) if hm.any() else None
    return companions


def companion_rows(
    rows: dict[str, dict[str, Any]], comp: pd.DataFrame, held: set[str]
) -> list[dict[str, Any]]:
    """One record per companion: its label, the route's estimate and intervals, each grid's
    median, and whether it was held out of the calibration (the reported half)."""
    out = []
    for rec in comp.sort_values("teff", ascending=False).to_dict("records"):
        row = rows.get(rec["key"], {})

        def val(col: str, row: dict[str, Any] = row) -> float | None:
            v = row.get(col)
            return None if v is None or not np.isfinite(v) else round(float(v), 1)

        med = val("teff_median")
        out.append(
            {
                "name": rec.get("name", rec["key"]),
                "key": rec["key"],
                "spt": rec.get("spt"),
                "held_out": rec["key"] in held,
                "teff_label": float(rec["teff"]),
                "teff": med,
                "teff_68": [val("teff_p16"), val("teff_p84")],
                "teff_95": [val("teff_p2.5"), val("teff_p97.5")],
                "dteff": None if med is None else round(med - float(rec["teff"]), 1),
                **{f"teff_{g}": val(f"teff_{g}_median") for g in GRIDS},
            }
        )
    return out


def print_companions(table: list[dict[str, Any]]) -> None:
    """The per-companion table: which objects the numbers above come from."""

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f}"

    head = f"{'companion':32s} {'SpT':5s} {'half':5s} {'label':>6s} {'estimate':>8s} "
    head += f"{'68 %':>12s} {'95 %':>12s} {'dTeff':>6s} " + " ".join(f"{g:>9s}" for g in GRIDS)
    print(head)
    for r in table:
        lo68, hi68 = r["teff_68"]
        lo95, hi95 = r["teff_95"]
        print(
            f"{str(r['name'])[:32]:32s} {str(r['spt'])[:5]:5s} "
            f"{'held' if r['held_out'] else 'cal':5s} {r['teff_label']:6.0f} "
            f"{num(r['teff']):>8s} {num(lo68) + '-' + num(hi68):>12s} "
            f"{num(lo95) + '-' + num(hi95):>12s} {num(r['dteff']):>6s} "
            + " ".join(f"{num(r[f'teff_{g}']):>9s}" for g in GRIDS)
        )


def _repeat_pulls(
    rows: dict[str, dict[str, Any]], rep: pd.DataFrame
) -> tuple[list[float], list[float]]:
    """Teff pulls of the two spectra of each object in ``rep`` (both answered): over the
    statistical part where the route reports one, else half the 68 % interval; and over
    half the whole 68 % interval."""
    pulls, pulls_total = [], []
    for _, grp in rep.groupby("source_key"):
        k1, k2 = grp["key"].tolist()[:2]
        if k1 in rows and k2 in rows:
            a, b = rows[k1], rows[k2]
            dt = a["teff_median"] - b["teff_median"]
            s1 = 0.5 * (a["teff_p84"] - a["teff_p16"])
            s2 = 0.5 * (b["teff_p84"] - b["teff_p16"])
            if s1 + s2 > 0:
                pulls_total.append(dt / np.hypot(s1, s2))
            # The statistical part where the route reports one (what differs between two
            # spectra of one object); else the whole interval, as before.
            e1, e2 = a.get("teff_err_stat", np.nan), b.get("teff_err_stat", np.nan)
            if np.isfinite(e1) and np.isfinite(e2) and e1 + e2 > 0:
                pulls.append(dt / np.hypot(e1, e2))
            elif s1 + s2 > 0:
                pulls.append(dt / np.hypot(s1, s2))
    return pulls, pulls_total


SPT_TEFF_FILIPPAZZO15 = (1.546e-4, -1.606e-2, 6.318e-1, -1.191e1, 1.155e2, -7.005e2, 4.747e3)
"""Filippazzo et al. (2015) field-age Teff(SpT), highest power first, SpT = spt_num - 10
(M6 = 16 ... T9 = 39 in the library's numbering); 113 K scatter. Comparison only."""


def spt_teff(spt_num: Any) -> np.ndarray:
    """Teff (K) of the Filippazzo et al. (2015) relation at the library's ``spt_num``.

    Example:
        >>> [round(float(t)) for t in spt_teff([20.0, 25.0, 30.0])]  # L0, L5, T0
        [2249, 1581, 1247]
    """
    x = np.asarray(spt_num, dtype=float) - 10.0
    return np.where((x >= 6) & (x <= 29), np.polyval(SPT_TEFF_FILIPPAZZO15, x), np.nan)


def _spt_offsets(rows: dict[str, dict[str, Any]], field: pd.DataFrame) -> dict[str, Any]:
    keys = field["key"].tolist()
    rel = spt_teff(field["spt_num"])
    d = _column(rows, keys, "teff_median") - rel
    spt = field["spt_num"].to_numpy(float)
    out: dict[str, Any] = {}
    for name, lo, hi in (("l0_l4", 20, 24.9), ("l5_l9", 25, 29.9)):
        sel = (spt >= lo) & (spt <= hi) & np.isfinite(d)
        out[f"field_dteff_spt_{name}"] = float(np.median(d[sel])) if sel.any() else None
        # how often the relation's Teff lies inside the route's intervals (routes without a
        # 95 % interval, the per-grid columns, give None there)
        for level, (a, b) in (
            ("68", ("teff_p16", "teff_p84")),
            ("95", ("teff_p2.5", "teff_p97.5")),
        ):
            lower, upper = _column(rows, keys, a), _column(rows, keys, b)
            inside = (rel >= lower) & (rel <= upper)
            known = sel & np.isfinite(lower)
            out[f"field_spt_in_{level}_{name}"] = (
                float(inside[known].mean()) if known.any() else None
            )
    ok = np.isfinite(d)
    out["field_dteff_spt_scatter"] = (
        float(1.4826 * np.median(np.abs(d[ok] - np.median(d[ok])))) if ok.sum() > 2 else None
    )
    return out


def _other_metrics(
    rows: dict[str, dict[str, Any]], sets: dict[str, pd.DataFrame]
) -> dict[str, Any]:
    def get(keys: Any, col: str) -> np.ndarray:
        return _column(rows, keys, col)

    pulls, pulls_total = _repeat_pulls(rows, sets["repeats"])
    fit_half = _repeat_pulls(rows, sets["repeats_fit_half"])[0]
    field_k = sets["field"]["key"].tolist()
    early = sets["field"][sets["field"]["spt_num"] < 26]["key"].tolist()
    vlg_k = sets["vlg"]["key"].tolist()
    f_logg = np.nanmedian(get(early, "logg_median"))
    v_logg = np.nanmedian(get(vlg_k, "logg_median"))
    f_flag = get(field_k, "flag")
    o_flag = get(sets["outside"]["key"].tolist(), "flag")
    return {
        # root mean square: the order of the two spectra is arbitrary, the expected mean is 0
        "repeat_pull_std": float(np.sqrt(np.mean(np.square(pulls)))) if pulls else None,
        # the fraction within +-1 (0.68 for a Gaussian; the RMS above is dominated by the few
        # pairs in the tails, this is not)
        "repeat_pull_within_1": float(np.mean(np.abs(pulls) <= 1.0)) if pulls else None,
        "repeat_pull_std_total": (
            float(np.sqrt(np.mean(np.square(pulls_total)))) if pulls_total else None
        ),
        "n_repeat_objects": len(pulls),
        # comparison only: the pairs the statistical part was learned from (fit half)
        "repeat_pull_std_fit_half": (
            float(np.sqrt(np.mean(np.square(fit_half)))) if fit_half else None
        ),
        "n_repeat_objects_fit_half": len(fit_half),
        "gravity_gap": float(f_logg - v_logg),
        "field_logg_median_l0_l5": float(f_logg),
        "vlg_logg_median_l0_l5": float(v_logg),
        "field_mh_median": float(np.nanmedian(get(field_k, "mh_median"))),
        "ood_false_alarm_real": _nanmean(f_flag),
        "ood_recall_outside": _nanmean(o_flag),
        # how often the grids' disagreement warning is raised: on field dwarfs it should be
        # rare (its threshold is learned on the fit half at 5 %); VL-G and outside objects for
        # comparison (objects the grids know less well)
        "grids_disagree_field": _nanmean(get(field_k, "disagree")),
        "grids_disagree_vlg": _nanmean(get(vlg_k, "disagree")),
        "grids_disagree_outside": _nanmean(get(sets["outside"]["key"].tolist(), "disagree")),
        **_spt_offsets(rows, sets["field"]),
        "n_field": int(np.isfinite(f_flag).sum()),
        "n_vlg": len(vlg_k),
        "n_outside": int(np.isfinite(o_flag).sum()),
    }


def _resample(frame: pd.DataFrame, rng: np.random.Generator, by: str | None = None) -> pd.DataFrame:
    """``frame`` drawn with replacement, by row or by group ``by`` (an object's spectra stay
    together; a group drawn twice is relabelled so that it counts twice)."""
    if frame.empty:
        return frame
    if by is None:
        return frame.iloc[rng.integers(0, len(frame), len(frame))]
    groups = [g for _, g in frame.groupby(by)]
    picks = rng.integers(0, len(groups), len(groups))
    return pd.concat([groups[j].assign(**{by: f"{i}"}) for i, j in enumerate(picks)])


def bootstrap(
    rows: dict[str, dict[str, Any]],
    sets: dict[str, pd.DataFrame],
    *,
    n: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """The 68 % interval of each key over resamplings of its objects with replacement.

    Each set is drawn again from itself (the companions by object, repeat spectra by object
    with both spectra, the field, VL-G and outside sets by spectrum): how far the keys move
    with the few objects they rest on. A target inside the interval is not missed beyond what
    these objects can tell; one outside it is.

    Example:
        >>> rows = {f"k{i}": {"teff_median": 1000.0 + 10 * i} for i in range(5)}
        >>> comp = pd.DataFrame({"key": list(rows), "teff": 1000.0, "logg": 5.0})
        >>> empty = pd.DataFrame({"key": [], "source_key": [], "spt_num": []})
        >>> sets = {"companions": comp, "repeats": empty, "repeats_fit_half": empty,
        ...         "field": empty, "vlg": empty, "outside": empty}
        >>> lo, hi = bootstrap(rows, sets, n=200)["median_abs_dteff"]  # |dT| = 0..40 K
        >>> bool(0.0 <= lo < 20.0 < hi <= 40.0)
        True
    """
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        again = {
            "companions": _resample(sets["companions"], rng),
            "repeats": _resample(sets["repeats"], rng, "source_key"),
            "repeats_fit_half": sets["repeats"].iloc[:0],
            "field": _resample(sets["field"], rng),
            "vlg": _resample(sets["vlg"], rng),
            "outside": _resample(sets["outside"], rng),
        }
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an empty resample: NaN
            m = {**_companion_metrics(rows, again["companions"]), **_other_metrics(rows, again)}
        for key in TARGETS:
            v = m.get(key)
            if v is not None and np.isfinite(v):
                draws.setdefault(key, []).append(float(v))
    return {k: (float(np.percentile(v, 16)), float(np.percentile(v, 84))) for k, v in draws.items()}


def _nanmean(x: np.ndarray) -> float | None:
    x = np.asarray(x, dtype=float)
    return float(np.nanmean(x)) if np.isfinite(x).any() else None


def _flat(m: dict[str, Any]) -> dict[str, Any]:
    return {**m["companions"], **{k: v for k, v in m.items() if not k.startswith("companions")}}


def _mark(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    band = TARGETS.get(key)
    if band is None:
        return text
    return text + (" ok" if band[0] <= value <= band[1] else " MISS")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="subsets of each set (a few minutes)")
    ap.add_argument("--draws", type=int, default=None, help="predict: draws per spectrum")
    ap.add_argument("--companions", type=Path, default=None, help="companions CSV")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-predict", action="store_true", help="classic routes only")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args(argv)
    from atmospec._fileio import provenance

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    companions = args.companions or _default_companions()
    if companions is None:
        raise SystemExit("no companions table: give --companions (see the module docstring)")
    t0 = time.perf_counter()
    sets = build_sets(args.quick, companions, args.seed)
    keys = sorted({k for n, s in sets.items() if n != "repeats_fit_half" for k in s["key"]})
    print(f"{len(keys)} library spectra: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()))
    routes = classic(keys, args.quick)
    model_ids: dict[str, str] = {}
    if not args.no_predict:
        draws = args.draws or (300 if args.quick else 1000)
        extra = sorted(set(sets["repeats_fit_half"]["key"]) - set(keys))
        with tempfile.TemporaryDirectory() as tmp:
            routes["predict_uncalibrated"], _ = predict_route(keys, draws, Path(tmp), False)
            routes["predict"], model_ids["predict"] = predict_route(keys + extra, draws, Path(tmp))
            routes["posterior_sample"] = posterior_route(keys, draws, Path(tmp))
    if "predict_uncalibrated" in routes:
        # Each grid's own answer (the table's per-grid columns; no 95 % interval there): what
        # the combination starts from.
        for g in GRIDS:
            routes[f"grid_{g}"] = _grid_rows(routes["predict_uncalibrated"], g)
    results = {name: metrics(rows, sets) for name, rows in routes.items()}
    flat = {name: _flat(m) for name, m in results.items()}
    cols = [
        "teff_in_68",
        "teff_in_95",
        "median_abs_dteff",
        "median_dteff",
        "logg_in_68",
        "repeat_pull_std",
        "repeat_pull_std_total",
        "repeat_pull_within_1",
        "repeat_pull_std_fit_half",
        "gravity_gap",
        "field_mh_median",
        "ood_false_alarm_real",
        "ood_recall_outside",
        "grids_disagree_field",
        "grids_disagree_vlg",
        "grids_disagree_outside",
        "field_dteff_spt_l0_l4",
        "field_dteff_spt_l5_l9",
        "field_dteff_spt_scatter",
        "field_spt_in_68_l0_l4",
        "field_spt_in_68_l5_l9",
        "field_spt_in_95_l5_l9",
    ]
    width = max(len(c) for c in cols) + 2
    col = max(len(n) for n in flat) + 2
    print("metric".ljust(width) + "".join(n.rjust(col) for n in flat))
    for c in cols:
        print(c.ljust(width) + "".join(_mark(c, f[c]).rjust(col) for f in flat.values()))
    print("targets: " + ", ".join(f"{k} {v}" for k, v in TARGETS.items() if v))
    print(
        "chi2_multigrid flags only objects no grid covers (BT-Settl reaches 3500 K and 500 K), "
        "so its recall measures something else than the single-grid routes'"
    )
    top_name = "predict" if "predict" in results else "chi2_discrepancy"
    held = set(sets["companions"]["key"])
    table = companion_rows(routes[top_name], sets["companions_all"], held)
    print(f"companions, route {top_name} (Teff in K; 'held': held out of the calibration):")
    print_companions(table)
    spread = bootstrap(routes[top_name], sets, seed=args.seed)
    print(
        f"route {top_name}, 68 % interval of each key over 1000 resamplings of its objects "
        "(how far the few objects behind it let it move):"
    )
    for key, (lo, hi) in spread.items():
        band = TARGETS[key]
        where = (
            ""
            if band is None
            else " (target inside)"
            if lo <= band[1] and hi >= band[0]
            else " (target outside)"
        )
        print(f"  {key:22s} {_mark(key, flat[top_name][key]):>12s}  [{lo:.3g}, {hi:.3g}]{where}")
    out = {
        **results[top_name],
        "bootstrap_68": spread,
        "route_at_top": top_name,
        "routes": results,
        "companion_table": table,
        "quick": args.quick,
        "wall_s": time.perf_counter() - t0,
        # what produced these numbers: versions, seed, and the model id `atmospec predict`
        # ran with (it names the calibration's digest, so a relearned one is told apart)
        "provenance": provenance(seed=args.seed, model_ids=model_ids),
    }
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2, default=float) + "\n")
    print(json.dumps(out, default=float))
    return out


if __name__ == "__main__":
    main()
