"""Reduce a folder of planets with one detrender: per-planet outcome and the score across them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import AtmospecError, DataNotFoundError, FileFormatError
from atmospec.io.other_kinds import is_planet_folder
from atmospec.transit.detrenders.base import DepthSpectrum, Detrender

__all__ = [
    "PlanetOutcome",
    "ReductionSummary",
    "is_planet_folder",
    "planet_folders",
    "reduce_many",
    "score_spectra",
]

log = logging.getLogger(__name__)

#: The diagnostic figures written per planet, as ``PLANET_ID_METHOD_NAME.png``.
FIGURES = ("white", "residuals", "spectrum")


def _remove_stale(out: Path, stem: str, *, spectrum: bool) -> None:
    """Delete what an earlier run wrote for ``stem`` into ``out`` and this run does not
    replace (the figures, and with ``spectrum`` the ECSV too), so the folder never pairs this
    run's summary with another run's spectrum or figures."""
    names = [f"{stem}_{name}.png" for name in FIGURES]
    for path in [out / f"{stem}.ecsv"] * spectrum + [out / n for n in names]:
        if path.is_file():
            path.unlink()
            log.info("removed %s, written by an earlier run", path)


def planet_folders(path: str | Path) -> list[Path]:
    """The planet folders under ``path``: ``path`` itself, its sub-folders, or those of its
    ``train`` / ``test`` folders (a dataset root), sorted by name.

    Raises:
        DataNotFoundError: no planet folder was found.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for pid in ("12", "7"):
        ...     (root / "train" / pid).mkdir(parents=True)
        ...     (root / "train" / pid / "AIRS-CH0_signal_0.parquet").touch()
        >>> [p.name for p in planet_folders(root)], len(planet_folders(root / "train" / "7"))
        (['12', '7'], 1)
    """
    path = Path(path)
    if is_planet_folder(path):
        return [path]
    found = [p for p in sorted(path.iterdir()) if is_planet_folder(p)] if path.is_dir() else []
    if not found:
        for split in ("train", "test"):
            if (path / split).is_dir():
                found += [p for p in sorted((path / split).iterdir()) if is_planet_folder(p)]
    if not found:
        folder = path.parent if path.is_file() and is_planet_folder(path.parent) else None
        raise DataNotFoundError(
            f"{path}: no planet folder (one holding AIRS-CH0_signal*.parquet) here, in its "
            "sub-folders or under train/ or test/"
            + (f"; this is a file of the planet folder {folder}: give the folder" if folder else "")
        )
    return found


@dataclass
class PlanetOutcome:
    """What happened to one planet: ``status`` is ``ok``, ``no_transit`` or ``error``.

    Example:
        >>> o = PlanetOutcome("7", Path("data/train/7"), "ok", path=Path("out/7_poly.ecsv"),
        ...                   transit_snr=42.5, white_depth_ppm=10000.0)
        >>> o.row()  # doctest: +NORMALIZE_WHITESPACE
        {'planet_id': '7', 'status': 'ok', 'transit_snr': 42.5, 'white_depth_ppm': 10000.0,
         'spectrum': '7_poly.ecsv', 'message': ''}
    """

    planet_id: str
    folder: Path
    status: str
    message: str = ""
    path: Path | None = None
    transit_snr: float | None = None
    white_depth_ppm: float | None = None
    spectrum: DepthSpectrum | None = None
    error: AtmospecError | None = None

    def row(self) -> dict[str, Any]:
        """One summary-table row (plain values)."""
        return {
            "planet_id": self.planet_id,
            "status": self.status,
            "transit_snr": self.transit_snr,
            "white_depth_ppm": self.white_depth_ppm,
            "spectrum": None if self.path is None else self.path.name,
            "message": self.message,
        }


@dataclass
class ReductionSummary:
    """Outcomes of :func:`reduce_many` and, when the dataset has labels, the score over the
    planets that gave a spectrum.

    Example:
        >>> s = ReductionSummary("poly", [PlanetOutcome("1", Path("1"), "ok"),
        ...     PlanetOutcome("2", Path("2"), "no_transit", "S/N 2.1 < 7")])
        >>> s.n_ok, {k: s.to_dict()[k] for k in ("planets", "ok", "no_transit", "errors")}
        (1, {'planets': 2, 'ok': 1, 'no_transit': 1, 'errors': 0})
    """

    method: str
    outcomes: list[PlanetOutcome]
    score: dict[str, float] = field(default_factory=dict)

    @property
    def n_ok(self) -> int:
        """Planets that gave a spectrum."""
        return sum(o.status == "ok" for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "method": self.method,
            "planets": len(self.outcomes),
            "ok": self.n_ok,
            "no_transit": sum(o.status == "no_transit" for o in self.outcomes),
            "errors": sum(o.status == "error" for o in self.outcomes),
            "score": self.score,
            "rows": [o.row() for o in self.outcomes],
        }


def _labels_for(folder: Path) -> dict[str, np.ndarray] | None:
    from atmospec.transit.io import find_root, read_labels

    try:
        root = find_root(folder)
    except DataNotFoundError:
        return None
    split = folder.parent.name
    if not (root / f"{split}_labels.csv").is_file():
        return None
    return read_labels(root, split)


def reduce_many(
    folders: list[Path],
    detrender: Detrender,
    out: str | Path,
    *,
    figures: bool = False,
) -> ReductionSummary:
    """Calibrate and reduce every planet folder with ``detrender``, writing
    ``PLANET_ID_METHOD.ecsv`` (and figures) into ``out`` for each planet with a transit.

    A planet without a detectable transit or with bad files is recorded with its reason and
    the others go on; its spectrum and figures from an earlier run into ``out`` are removed
    (as are earlier figures of a planet reduced without ``figures``). When the dataset root
    has ``{split}_labels.csv`` for the planets, the summary carries the Ariel GLL score, RMSE
    and 68 % coverage over the reduced planets (reference: the mean and standard deviation of
    all labelled depths).

    Raises:
        FileFormatError: ``out`` is an existing file, not a folder.

    Example:
        >>> from atmospec.transit.detrenders import make_detrender
        >>> s = ReductionSummary("poly", [])
        >>> s.to_dict()["planets"]
        0
    """
    from tqdm.auto import tqdm

    from atmospec._fileio import atomic_path
    from atmospec._logging import progress_enabled
    from atmospec.transit.calibration import calibrate
    from atmospec.transit.detection import NoTransitError
    from atmospec.transit.io import read_planet

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileFormatError(f"{out}: the output folder is an existing file; name a folder")
    out.mkdir(parents=True, exist_ok=True)
    outcomes: list[PlanetOutcome] = []
    for folder in tqdm(
        folders, desc=f"reducing ({detrender.name})", disable=not progress_enabled()
    ):
        pid = folder.name
        stem = f"{pid}_{detrender.name}"
        try:
            obs = calibrate(read_planet(folder))
            spec = detrender.fit(obs)
        except NoTransitError as err:
            det = getattr(detrender, "detection_", None)
            outcomes.append(
                PlanetOutcome(pid, folder, "no_transit", str(err), transit_snr=_snr(det), error=err)
            )
            log.info("%s", err)
            _remove_stale(out, stem, spectrum=True)
            continue
        except AtmospecError as err:
            outcomes.append(PlanetOutcome(pid, folder, "error", str(err), error=err))
            log.info("planet %s: %s", pid, err)
            _remove_stale(out, stem, spectrum=True)
            continue
        path = spec.write(out / f"{stem}.ecsv")
        if not figures:
            _remove_stale(out, stem, spectrum=False)
        else:
            for name, fig in zip(FIGURES, detrender.diagnose(), strict=True):
                with atomic_path(out / f"{stem}_{name}.png") as tmp:
                    fig.savefig(tmp, format="png", dpi=110)
        outcomes.append(
            PlanetOutcome(
                pid,
                folder,
                "ok",
                "",
                path,
                _snr(getattr(detrender, "detection_", None)),
                float(np.mean(spec.depth)) * 1e6,
                spec,
            )
        )
    summary = ReductionSummary(detrender.name, outcomes)
    summary.score = _score(outcomes)
    return summary


def _snr(det: Any) -> float | None:
    return None if det is None else round(float(det.snr), 2)


def _score(outcomes: list[PlanetOutcome]) -> dict[str, float]:
    from atmospec.transit.scoring import ariel_score, coverage, rmse_ppm

    ok = [o for o in outcomes if o.spectrum is not None]
    if not ok:
        return {}
    labels = _labels_for(ok[0].folder)
    if labels is None or any(o.planet_id not in labels for o in ok):
        return {}
    ref = np.concatenate(list(labels.values()))
    y = np.concatenate([labels[o.planet_id] for o in ok])
    mu = np.concatenate([o.spectrum.depth for o in ok if o.spectrum is not None])
    sg = np.concatenate([o.spectrum.sigma for o in ok if o.spectrum is not None])
    return {
        "planets_scored": len(ok),
        "gll_score": ariel_score(y, mu, sg, ref_mean=float(ref.mean()), ref_sigma=float(ref.std())),
        "rmse_ppm": rmse_ppm(y, mu),
        "coverage68": coverage(y, mu, sg),
    }


def score_spectra(
    predictions: Sequence[str | Path],
    labels: str | Path,
    reference: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Score depth-spectrum files (written by ``DepthSpectrum.write``) against a labels file,
    one result per method: ``{method: {planets, gll_score, rmse_ppm, coverage68}}``.

    ``planets`` counts distinct planets. The reference of the GLL score is the mean and
    standard deviation of all depths in ``reference`` (default: ``labels``).

    Raises:
        FileFormatError: a file is unreadable, holds a non-finite depth or a sigma <= 0, names
            a planet absent from ``labels``, or repeats a planet for the same method; a labels
            file is not named ``SPLIT_labels.csv``.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); labels = d / "train_labels.csv"
        >>> _ = labels.write_text("planet_id,wl_1,wl_2\\n1,0.010,0.011\\n2,0.020,0.021\\n")
        >>> for pid, depth in (("1", [0.0101, 0.0109]), ("2", [0.0201, 0.0209])):
        ...     spec = DepthSpectrum(np.array([0.7, 2.0]), np.array(depth), np.full(2, 2e-4),
        ...                          planet_id=pid, method="poly")
        ...     _ = spec.write(d / f"{pid}_poly.ecsv")
        >>> res = score_spectra(sorted(d.glob("*.ecsv")), labels)["poly"]
        >>> {k: round(v, 3) for k, v in res.items()}
        {'planets': 2, 'gll_score': 0.536, 'rmse_ppm': 100.0, 'coverage68': 1.0}
    """
    from atmospec.transit.io import read_labels
    from atmospec.transit.scoring import ariel_score, coverage, rmse_ppm

    def labels_of(path: Path) -> dict[str, np.ndarray]:
        if not path.name.endswith("_labels.csv"):
            raise FileFormatError(
                f"{path}: a labels file is named SPLIT_labels.csv (train_labels.csv as "
                "`atmospec transit simulate` writes it), with columns planet_id, wl_1 .. wl_N"
            )
        return read_labels(path.parent, path.name.removesuffix("_labels.csv"))

    labels = Path(labels)
    truth = labels_of(labels)
    ref = truth if reference is None else labels_of(Path(reference))
    ref_all = np.concatenate(list(ref.values()))
    groups: dict[str, dict[str, tuple[Path, DepthSpectrum]]] = {}
    for p in map(Path, predictions):
        spec = DepthSpectrum.read(p)
        if spec.planet_id not in truth:
            raise FileFormatError(f"{p}: planet {spec.planet_id} is not in {labels}")
        if not np.all(np.isfinite(spec.depth)):
            raise FileFormatError(
                f"{p}: {int((~np.isfinite(spec.depth)).sum())} depth(s) are NaN or inf"
            )
        if not (np.all(np.isfinite(spec.sigma)) and np.all(spec.sigma > 0)):
            raise FileFormatError(f"{p}: every sigma must be finite and > 0")
        if spec.depth.size != truth[spec.planet_id].size:
            raise FileFormatError(
                f"{p}: {spec.depth.size} bins, but {labels} has {truth[spec.planet_id].size} "
                f"for planet {spec.planet_id}"
            )
        method = spec.method or "unknown"
        seen = groups.setdefault(method, {})
        if spec.planet_id in seen:
            raise FileFormatError(
                f"{p}: planet {spec.planet_id} ({method}) is also in {seen[spec.planet_id][0]}"
            )
        seen[spec.planet_id] = (p, spec)
    out: dict[str, dict[str, Any]] = {}
    for method, seen in groups.items():
        y = np.concatenate([truth[pid] for pid in seen])
        mu = np.concatenate([s.depth for _, s in seen.values()])
        sg = np.concatenate([s.sigma for _, s in seen.values()])
        out[method] = {
            "planets": len(seen),
            "gll_score": ariel_score(
                y, mu, sg, ref_mean=float(ref_all.mean()), ref_sigma=float(ref_all.std())
            ),
            "rmse_ppm": rmse_ppm(y, mu),
            "coverage68": coverage(y, mu, sg),
        }
    return out
