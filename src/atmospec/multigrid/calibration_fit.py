"""Learning the correction for the grids' shared systematic error from labelled SpeX objects.

See :mod:`atmospec.multigrid.calibration` for the model. The labelled sets are a companions
table (columns ``splat_key``, ``teff``, ``teff_err``: Teff from bolometric luminosity and
evolutionary models at the host's age) and the library's field dwarfs of the discrepancy
models' fit half (for the [M/H] zero point and the usual disagreement between the grids;
those with two spectra for the statistical part of the uncertainty). Half the companions (stratified in Teff, split
by object) are the calibration set; the other half is recorded as held out and never enters.
"""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import (
    FIELD_MH_SCATTER,
    Calibration,
    Correction,
    RepeatScatter,
    stratified_split,
)
from .disagreement import Disagreement

__all__ = ["fit_calibration", "field_calibration_keys", "repeat_pairs"]

log = logging.getLogger(__name__)

GRIDS = ("dback24", "btsettl08", "burrows06")

DISAGREEMENT_FALSE_ALARMS = 0.05
"""The fraction of ordinary field dwarfs the grids' disagreement warning may flag (as each
grid's misfit threshold: its model of mismatch's false-alarm rate)."""


def _fit_half() -> tuple[Any, Any]:
    """The library catalogue and the mask of its usable objects in the discrepancy models'
    fit half (quality OK, no binary, no companion)."""
    from atmospec import library
    from atmospec.discrepancy import load_discrepancy

    fit_objects: set[int] = set()
    for g in GRIDS:
        fit_objects |= set(load_discrepancy(g).meta["split"]["fit_objects"])
    cat = library.catalogue()
    ok = cat["quality"].eq("OK").fillna(False) & ~(cat["binary"] | cat["spectral_binary"])
    ok &= ~cat["companion"] & cat["source_key"].isin(fit_objects)
    return cat, ok


def field_calibration_keys(max_objects: int | None, seed: int) -> list[str]:
    """One spectrum (the highest S/N) per field dwarf of the discrepancy models' fit half:
    normal gravity, L0-T8, S/N >= 50, quality OK, no binary or companion.

    Example:
        >>> len(field_calibration_keys(None, seed=0)), field_calibration_keys(3, seed=0)
        (154, ['11303_10401', '11498_10544', '12868_12598'])
    """
    cat, ok = _fit_half()
    grav = cat["gravity_class"].astype("string").str.upper().eq("FLD-G").fillna(False)
    sel = cat[ok & grav & cat["spt_num"].between(20, 38) & cat["snr"].ge(50).fillna(False)]
    sel = sel.sort_values("snr", ascending=False).drop_duplicates("source_key")
    if max_objects is not None and len(sel) > max_objects:
        rng = np.random.default_rng(seed)
        sel = sel.iloc[np.sort(rng.choice(len(sel), max_objects, replace=False))]
    return [str(k) for k in sel["key"]]


def repeat_pairs(max_objects: int | None, seed: int) -> list[tuple[str, str, str]]:
    """(object, key1, key2): the two highest-S/N spectra of objects of the discrepancy
    models' fit half with at least two (quality OK, L0-T8, S/N >= 20, not young, no binary).

    Example:
        >>> len(repeat_pairs(None, seed=0)), repeat_pairs(2, seed=0)
        (32, [('11130', '11039_11130', '10712_11130'), ('11473', '11596_11473', '11697_11473')])
    """
    cat, ok = _fit_half()
    young = cat["gravity_class"].astype("string").str.upper().isin(["INT-G", "VL-G"]).fillna(False)
    rep = cat[ok & ~young & cat["spt_num"].between(20, 38) & cat["snr"].ge(20).fillna(False)]
    rep = rep.sort_values("snr", ascending=False).groupby("source_key").head(2)
    counts = rep["source_key"].value_counts()
    objects = sorted(counts[counts >= 2].index)
    if max_objects is not None and len(objects) > max_objects:
        rng = np.random.default_rng(seed)
        objects = sorted(rng.choice(objects, max_objects, replace=False).tolist())
    out = []
    for obj in objects:
        keys = rep.loc[rep["source_key"] == obj, "key"].astype(str).tolist()[:2]
        out.append((str(obj), keys[0], keys[1]))
    return out


def _predict(
    predictor: Any, keys: list[str], left_out: dict[str, str] | None = None
) -> dict[str, Any]:
    """Combined medians and 68 % half-widths of Teff and [M/H] per key (calibration off).

    A key the predictor refuses is logged and, with ``left_out``, recorded there with why
    (the calibration's record then says which objects of its half it could not use)."""
    from tqdm.auto import tqdm

    from atmospec import library
    from atmospec.errors import AtmospecError

    out: dict[str, Any] = {}
    for key in tqdm(keys, desc="calibration objects", unit="spec"):
        try:
            res = predictor.predict(library.load(key))
        except AtmospecError as err:
            log.warning("%s: left out of the calibration (%s)", key, err)
            if left_out is not None:
                left_out[key] = str(err)
            continue
        s = res.samples[0]
        j_t, j_m = res.param_names.index("teff"), res.param_names.index("mh")
        q_t = np.percentile(s[:, j_t], [16, 50, 84])
        q_m = np.percentile(s[:, j_m], [16, 50, 84])
        out[key] = {
            "teff": float(q_t[1]),
            "teff_sd": float(0.5 * (q_t[2] - q_t[0])),
            "mh": float(q_m[1]),
            "mh_sd": float(0.5 * (q_m[2] - q_m[0])),
            "flag": bool(res.ood_flag[0]) if res.ood_flag is not None else False,
            "snr": float(res.inputs[0].snr),
            "logg": float(np.median(s[:, res.param_names.index("logg")])),
            "disagreement": float(res.combined[0].disagreement),
        }
    return out


def fit_calibration(
    companions: str | os.PathLike[str],
    *,
    seed: int = 0,
    draws: int = 1000,
    max_field: int | None = 150,
    max_repeat: int | None = 60,
) -> Calibration:
    """Learn the shipped kind of calibration for the default multi-grid predictor.

    Example:
        >>> cal = fit_calibration("companions.csv")  # doctest: +SKIP
        >>> cal.save("pretrained/calibration/multigrid-spex")  # doctest: +SKIP
    """
    import pandas as pd
    import sklearn

    from atmospec import __version__, library

    from .predictor import MultiGridPredictor

    comp = pd.read_csv(companions)
    missing = {"splat_key", "teff", "teff_err"} - set(comp.columns)
    if missing:
        raise ValueError(f"{companions}: missing column(s) {sorted(missing)}")
    comp = comp[comp["teff"].notna()]
    known = set(library.catalogue()["key"].astype(str))
    comp = comp[comp["splat_key"].astype(str).isin(known)]
    fit_keys, held = stratified_split(
        comp["splat_key"].astype(str).tolist(), comp["teff"].tolist(), seed
    )
    predictor = MultiGridPredictor(draws=draws, seed=seed, calibration=None)
    refused: dict[str, str] = {}
    answers = _predict(predictor, fit_keys, refused)
    rows = comp.set_index(comp["splat_key"].astype(str)).loc[[k for k in fit_keys if k in answers]]
    x = np.array([answers[k]["teff"] for k in rows.index])
    y = rows["teff"].to_numpy(float) - x
    err = rows["teff_err"].fillna(0.0).to_numpy(float)
    alpha = np.array([answers[k]["teff_sd"] ** 2 for k in rows.index]) + err**2
    teff = Correction.fit(
        "teff",
        x,
        y,
        alpha,
        list(rows.index),
        "Teff from bolometric luminosity and evolutionary models at the host's age "
        "(benchmark companions)",
        seed=seed,
    )
    field_keys = field_calibration_keys(max_field, seed)
    field = _predict(predictor, field_keys)
    fk = [k for k, v in field.items() if not v["flag"]]
    try:
        disagreement: Disagreement | None = Disagreement.fit(
            {k: v["disagreement"] for k, v in field.items()},
            false_alarm_rate=DISAGREEMENT_FALSE_ALARMS,
            learned_from="field dwarfs of the discrepancy models' fit half (L0-T8, "
            "S/N >= 50), one spectrum each, answered by two grids or more",
        )
    except ValueError as err:
        # too few field dwarfs (a small --max-field): the grids' disagreement is then judged
        # by whether their intervals overlap, as without a calibration
        log.warning("no threshold for the grids' disagreement: %s", err)
        disagreement = None
    mh = Correction.fit(
        "mh",
        np.array([field[k]["teff"] for k in fk]),
        np.array([-field[k]["mh"] for k in fk]),
        np.array([field[k]["mh_sd"] ** 2 + FIELD_MH_SCATTER**2 for k in fk]),
        fk,
        f"[M/H] = 0 +- {FIELD_MH_SCATTER} dex for field dwarfs of the solar neighbourhood "
        "(a zero point, as surveys set theirs)",
        seed=seed,
    )
    pairs = repeat_pairs(max_repeat, seed)
    rep_answers = _predict(predictor, [k for _, a, b in pairs for k in (a, b)])
    pairs = [p for p in pairs if p[1] in rep_answers and p[2] in rep_answers]
    repeat = {
        p: RepeatScatter.fit(
            p,
            [rep_answers[a][p] - rep_answers[b][p] for _, a, b in pairs],
            [rep_answers[a]["snr"] for _, a, b in pairs],
            [rep_answers[b]["snr"] for _, a, b in pairs],
            [o for o, _, _ in pairs],
        )
        for p in ("teff", "logg")
    }
    meta = {
        "seed": seed,
        "draws": draws,
        "companions_file": Path(companions).name,
        "split": {
            "method": "companions sorted by Teff, one of each consecutive pair to each half",
            "calibration": list(rows.index),
            # companions of the calibration half the predictor refused: in neither half
            "calibration_refused": refused,
            "held_out": held,
            "field_objects": fk,
            "field_left_out_flagged": sorted(set(field) - set(fk)),
            "repeat_objects": [o for o, _, _ in pairs],
        },
        "versions": {
            "atmospec": __version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    }
    return Calibration(
        {"teff": teff, "mh": mh}, predictor.base_model_id, meta, repeat, disagreement
    )
