"""Multi-label molecule classifiers: a 1D CNN, random-forest and MLP baselines, calibration, metrics."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import IncompatibleModelError, ModelFileError
from atmospec.molecules.binning import Binning
from atmospec.molecules.dataset import MoleculeTrainingSet
from atmospec.molecules.io import TransmissionSpectrum

if TYPE_CHECKING:
    from optuna.trial import Trial

__all__ = [
    "features",
    "noisy_observations",
    "MoleculeClassifier",
    "BaselineClassifier",
    "train_cnn",
    "train_baseline",
    "tune_cnn",
    "evaluate",
    "recall_at_fpr",
    "load_pretrained",
]

KIND = "molecule_classifier"  # the record kind (atmospec.models, atmospec.serialization)


def features(
    depth: NDArray[np.floating], error: NDArray[np.floating], instrument_ids: NDArray[np.int64]
) -> NDArray[np.float32]:
    """Network inputs ``(n, 2, n_bins)`` from observed depths and their errors.

    Channel 0: depth minus its error-weighted mean per instrument (offsets between
    instruments carry no molecular information), divided by the spectrum's RMS of that
    residual ``s``. Channel 1: ``log10(error / s)``, which tells the network the S/N.

    Example:
        >>> x = features(np.array([[1.0, 3.0]]), np.array([[1.0, 1.0]]), np.array([0, 0]))
        >>> x[0, 0].tolist(), bool(abs(x[0, 1]).max() < 1e-6)   # s = 1 = error: log10(1) = 0
        ([-1.0, 1.0], True)
    """
    d = np.atleast_2d(np.asarray(depth, dtype=float))
    e = np.broadcast_to(np.asarray(error, dtype=float), d.shape)
    w = 1.0 / e**2
    resid = np.empty_like(d)
    for k in np.unique(instrument_ids):
        sel = instrument_ids == k
        mean = (d[:, sel] * w[:, sel]).sum(axis=1, keepdims=True) / w[:, sel].sum(
            axis=1, keepdims=True
        )
        resid[:, sel] = d[:, sel] - mean
    s = np.sqrt((resid**2).mean(axis=1, keepdims=True)) + 1e-12
    out = np.stack([resid / s, np.log10(e / s)], axis=1)
    return out.astype(np.float32)


def noisy_observations(
    ts: MoleculeTrainingSet,
    rng: np.random.Generator,
    noise_scale: float | NDArray[np.float64] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Observed depths, their errors and labels: Gaussian noise of ``noise_scale`` x the
    reference errors (default: each spectrum's own ``noise_scale``).

    Example:
        >>> b = Binning(np.array([1.0, 2.0]), np.full(2, 0.5), np.array(["x", "x"]),
        ...             np.full(2, 1e-4))
        >>> ts = MoleculeTrainingSet(np.full((2, 2), 0.01), np.array([[100.0], [100.0]]),
        ...     np.array([[-3.0, 1.0], [-3.0, 4.0]]), ("log_H2O", "noise_scale"),
        ...     np.zeros(2, np.int8), b, ("H2O",))
        >>> obs, err, labels = noisy_observations(ts, np.random.default_rng(0))
        >>> err.tolist(), labels.tolist()   # at 4x the errors, Delta chi^2 = 100 / 16 < 25
        ([[0.0001, 0.0001], [0.0004, 0.0004]], [[True], [False]])
        >>> bool(np.all(np.abs(obs - 0.01) < 5 * err))
        True
    """
    s = ts.column("noise_scale") if noise_scale is None else np.asarray(noise_scale, float)
    s = np.broadcast_to(s, (len(ts),))
    err = s[:, None] * ts.binning.error[None, :]
    obs = ts.depth + err * rng.standard_normal(ts.depth.shape)
    return obs, err, ts.labels(s)


def _network(n_bins: int, n_out: int, width: int, dropout: float, in_channels: int = 2) -> Any:
    import torch.nn as nn

    def block(cin: int, cout: int, k: int) -> list[nn.Module]:
        return [
            nn.Conv1d(cin, cout, k, padding=k // 2),
            nn.GELU(),
            nn.Conv1d(cout, cout, k, padding=k // 2),
            nn.GELU(),
            nn.MaxPool1d(2),
        ]

    length = n_bins // 2 // 2 // 2
    return nn.Sequential(
        *block(in_channels, width, 7),
        *block(width, 2 * width, 5),
        *block(2 * width, 2 * width, 3),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * width * length, 128),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(128, n_out),
    )


def _fit_temperature(logits: NDArray[np.float64], labels: NDArray[np.bool_]) -> float:
    """Temperature T minimising the binary cross-entropy of sigmoid(logit / T)."""
    from scipy.optimize import minimize_scalar

    y = labels.astype(float)

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(res.x))


def _temperatures(logits: NDArray[np.float64], labels: NDArray[Any]) -> NDArray[np.float64]:
    """One calibration temperature per molecule (column) of ``logits``."""
    return np.array([_fit_temperature(logits[:, j], labels[:, j]) for j in range(logits.shape[1])])


def _train_detector(
    net: Any,
    batches: Any,
    val_loader: Any,
    *,
    lr: float,
    max_epochs: int,
    patience: int,
    seed: int,
    weight_decay: float,
    max_seconds: float | None,
    device: str,
) -> Any:
    """Train a molecule-detection network (one logit per molecule, binary cross-entropy,
    one CPU thread) with the shared Trainer; returns its history, the network on the CPU."""
    import torch

    from atmospec.training.trainer import Trainer

    trainer = Trainer(
        net,
        torch.nn.functional.binary_cross_entropy_with_logits,
        lr=lr,
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
        num_threads=1,
        device=device,
        weight_decay=weight_decay,
        max_seconds=max_seconds,
    )
    history = trainer.fit(batches, val_loader)
    net.to("cpu")
    return history


@dataclass
class MoleculeClassifier:
    """The trained CNN with its bins, calibration temperatures and provenance.

    ``predict_proba`` gives calibrated probabilities that each molecule is present and
    detectable; ``predict_spectrum`` adds an interval from Monte-Carlo dropout.

    Example:
        >>> clf = load_pretrained()
        >>> len(clf.binning), clf.coverage
        (383, (0.51707, 12.0))
        >>> e = clf.binning.error
        >>> noise = 0.02 + e * np.random.default_rng(0).standard_normal((1, e.size))
        >>> p = clf.predict_proba(noise, e[None])   # noise alone: no molecule detectable
        >>> p.shape, bool(p.max() < 0.05)
        ((1, 6), True)
        >>> clf.check_bins(TransmissionSpectrum(np.array([1.0, 2.0]), np.full(2, 0.1),
        ...     np.full(2, 0.02), np.full(2, 1e-4), np.full(2, "x"), "toy"))
        Traceback (most recent call last):
        ...
        atmospec.errors.IncompatibleModelError: toy: 2 bins (1-2 um) differ from the 383 bins ...
    """

    network: Any
    molecules: tuple[str, ...]
    binning: Binning
    temperatures: NDArray[np.float64]
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    def _logits(self, x: NDArray[np.float32], *, dropout: bool = False, seed: int = 0) -> NDArray:
        import torch

        net = self.network
        net.train(dropout)
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(seed)
            out = net(torch.from_numpy(np.ascontiguousarray(x))).numpy()
        net.eval()
        return out.astype(np.float64)

    @property
    def coverage(self) -> tuple[float, float]:
        """The wavelength range (micron) of the bins this classifier reads."""
        return float(self.binning.lower.min()), float(self.binning.upper.max())

    def check_bins(self, spec: TransmissionSpectrum) -> None:
        """Raise :class:`IncompatibleModelError` unless the spectrum has this model's bins."""
        b = self.binning
        same = (
            len(spec) == len(b)
            and np.allclose(spec.wavelength, b.centre, rtol=1e-4)
            and (np.allclose(spec.half_width, b.half_width, rtol=1e-3))
        )
        if not same:
            raise IncompatibleModelError(
                f"{spec.name}: {len(spec)} bins ({spec.wavelength.min():g}-"
                f"{spec.wavelength.max():g} um) differ from the {len(b)} bins this classifier "
                "was trained on; train one for these bins with `atmospec molecules train "
                "--bins FILE`"
            )

    def predict_proba(self, depth: NDArray, error: NDArray) -> NDArray[np.float64]:
        """Calibrated probabilities ``(n, n_molecules)`` for binned depths and errors."""
        x = features(depth, error, self.binning.instrument_ids())
        return _sigmoid(self._logits(x) / self.temperatures)

    def predict_spectrum(
        self, spec: TransmissionSpectrum, *, n_mc: int = 100, level: float = 0.9
    ) -> dict[str, dict[str, float]]:
        """Probability per molecule with a ``level`` interval from ``n_mc`` dropout passes."""
        self.check_bins(spec)
        x = features(spec.depth, spec.error, self.binning.instrument_ids())
        p = _sigmoid(self._logits(x)[0] / self.temperatures)
        mc = np.stack(
            [
                _sigmoid(self._logits(x, dropout=True, seed=i)[0] / self.temperatures)
                for i in range(n_mc)
            ]
        )
        lo, hi = np.quantile(mc, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {
            m: {"probability": float(p[j]), "low": float(lo[j]), "high": float(hi[j])}
            for j, m in enumerate(self.molecules)
        }

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model folder (:mod:`atmospec.serialization`: ``weights.safetensors`` and a
        checksummed ``model.json`` with config, bins, calibration and provenance)."""
        from atmospec._fileio import provenance
        from atmospec.serialization import save_arrays

        arrays = {
            f"net.{k}": v.detach().cpu().contiguous().numpy()
            for k, v in self.network.state_dict().items()
        }
        b = self.binning
        record = {
            "kind": KIND,
            "molecules": list(self.molecules),
            "config": self.config,
            "temperatures": self.temperatures.tolist(),
            "bins": {
                "centre": b.centre.tolist(),
                "half_width": b.half_width.tolist(),
                "instrument": b.instrument.tolist(),
                "error": b.error.tolist(),
            },
            "info": self.info,
            "provenance": self.info.get("provenance") or provenance(seed=self.config.get("seed")),
        }
        return save_arrays(folder, record, arrays)

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> MoleculeClassifier:
        """Read a folder written by :meth:`save`; both files are verified by sha256.

        Raises:
            ModelFileError: a missing, modified or truncated file (named), or another model.
        """
        import torch

        from atmospec.serialization import load_arrays

        record, arrays = load_arrays(folder)
        if record.get("kind") != KIND:
            raise ModelFileError(
                f"{folder}: not a molecule classifier (kind={record.get('kind')!r})"
            )
        try:
            cfg = record["config"]
            b = record["bins"]
            binning = Binning(
                np.array(b["centre"]),
                np.array(b["half_width"]),
                np.array(b["instrument"]),
                np.array(b["error"]),
            )
            net = _network(len(binning), len(record["molecules"]), cfg["width"], cfg["dropout"])
            net.load_state_dict(
                {k[4:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k[:4] == "net."}
            )
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise ModelFileError(f"{folder}: inconsistent molecule classifier ({err})") from None
        net.eval()
        return cls(
            net,
            tuple(record["molecules"]),
            binning,
            np.array(record["temperatures"]),
            cfg,
            record.get("info", {}),
        )


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def load_pretrained() -> MoleculeClassifier:
    """The shipped classifier (trained on the WASP-39b JWST bins), from the model registry
    (:func:`atmospec.models.load_model` name ``"molecules"``).

    Example:
        >>> clf = load_pretrained()
        >>> clf.molecules, clf.info["detection_threshold"]
        (('H2O', 'CO2', 'CH4', 'CO', 'Na', 'K'), 25.0)
        >>> sorted(set(clf.binning.instrument.tolist()))[:3]   # 7 JWST modes
        ['miri_lrs', 'nircam_f322w2', 'niriss_soss1']
    """
    from atmospec.models import load_model

    clf: MoleculeClassifier = load_model("molecules", kind=KIND)
    return clf


class _NoisyBatches:
    """Re-iterable batches with fresh noise and fresh noise scales each epoch (augmentation)."""

    def __init__(
        self, ts: MoleculeTrainingSet, batch: int, seed: int, log_scale: tuple[float, float] | None
    ) -> None:
        self.ts, self.batch, self.log_scale = ts, batch, log_scale
        self.rng = np.random.default_rng(seed)
        self.ids = ts.binning.instrument_ids()

    def __iter__(self) -> Any:
        import torch

        ts, n = self.ts, len(self.ts)
        if self.log_scale is None:
            scale = ts.column("noise_scale")
        else:
            scale = 10 ** self.rng.uniform(*self.log_scale, size=n)
        order = self.rng.permutation(n)
        for k in range(0, n, self.batch):
            idx = order[k : k + self.batch]
            err = scale[idx, None] * ts.binning.error[None, :]
            obs = ts.depth[idx] + err * self.rng.standard_normal(err.shape)
            y = ts.present[idx] & (ts.dchi2[idx] / scale[idx, None] ** 2 > ts.threshold)
            yield (
                torch.from_numpy(features(obs, err, self.ids)),
                torch.from_numpy(y.astype(np.float32)),
            )


def train_cnn(
    ts: MoleculeTrainingSet,
    *,
    width: int = 24,
    dropout: float = 0.2,
    lr: float = 2e-3,
    batch: int = 128,
    max_epochs: int = 40,
    patience: int = 8,
    seed: int = 0,
    max_seconds: float | None = None,
    weight_decay: float = 1e-4,
    device: str = "cpu",
) -> MoleculeClassifier:
    """Train the CNN on the training split with noise augmentation; calibrate on validation.

    Each epoch draws new noise and new noise scales (log-uniform over the prior's range), and
    the labels follow the drawn scale. Calibration: one temperature per molecule fitted on
    the validation split (fixed noise draw).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> b = Binning(np.linspace(1.0, 2.0, 8), np.full(8, 0.06), np.full(8, "x"),
        ...             np.full(8, 1e-4))
        >>> on = rng.random((60, 2)) < 0.5   # H2O and CO2 on or off, each with its own shape
        >>> depth = 0.01 + 1e-3 * on @ np.array([np.sin(np.arange(8)), np.cos(np.arange(8))])
        >>> params = np.column_stack([np.where(on, -3.0, -np.inf), np.ones(60)])
        >>> ts = MoleculeTrainingSet(depth, np.where(on, 400.0, 0.0), params,
        ...     ("log_H2O", "log_CO2", "noise_scale"), (np.arange(60) % 3 == 0).astype(np.int8),
        ...     b, ("H2O", "CO2"))
        >>> clf = train_cnn(ts, width=4, max_epochs=2)   # a toy: two epochs of one batch
        >>> clf.molecules, clf.temperatures.shape, clf.info["n_train"], clf.info["n_val"]
        (('H2O', 'CO2'), (2,), 40, 20)
        >>> len(clf.info["history"]["train_loss"]), clf.predict_proba(depth[:3], b.error).shape
        (2, (3, 2))
    """
    import torch

    from atmospec._fileio import provenance

    train, val = ts.subset(0), ts.subset(1)
    log_scale = tuple(ts.meta.get("prior", {}).get("log_noise_scale", (-0.456, 0.477)))
    rng = np.random.default_rng(seed + 1)
    v_obs, v_err, v_lab = noisy_observations(val, rng)
    ids = ts.binning.instrument_ids()
    v_x = features(v_obs, v_err, ids)
    val_loader = [
        (
            torch.from_numpy(v_x[k : k + 512]),
            torch.from_numpy(v_lab[k : k + 512].astype(np.float32)),
        )
        for k in range(0, len(val), 512)
    ]
    torch.manual_seed(seed)
    net = _network(len(ts.binning), len(ts.molecules), width, dropout)
    history = _train_detector(
        net,
        _NoisyBatches(train, batch, seed, log_scale),
        val_loader,
        lr=lr,
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
        weight_decay=weight_decay,
        max_seconds=max_seconds,
        device=device,
    )
    clf = MoleculeClassifier(
        net,
        ts.molecules,
        ts.binning,
        np.ones(len(ts.molecules)),
        {
            "width": width,
            "dropout": dropout,
            "lr": lr,
            "batch": batch,
            "weight_decay": weight_decay,
        },
    )
    clf.temperatures = _temperatures(clf._logits(v_x), v_lab)
    clf.info = {
        "provenance": provenance(
            seed=seed, training_set=ts.meta.get("n"), training_meta_seed=ts.meta.get("seed")
        ),
        "history": history.to_dict(),
        "detection_threshold": ts.threshold,
        "training_set": {
            k: ts.meta.get(k) for k in ("seed", "n", "prior", "species", "data_credits")
        },
        "n_train": len(train),
        "n_val": len(val),
    }
    return clf


@dataclass
class BaselineClassifier:
    """A scikit-learn random forest or MLP on the flattened CNN inputs, isotonic-calibrated.

    Example:
        >>> from sklearn.dummy import DummyClassifier
        >>> b = Binning(np.array([1.0, 2.0]), np.full(2, 0.5), np.array(["x", "x"]),
        ...             np.full(2, 1e-4))
        >>> prior = DummyClassifier().fit(np.zeros((4, 4)), [[0, 1], [1, 1], [0, 1], [0, 0]])
        >>> clf = BaselineClassifier("dummy", prior, b, ("H2O", "CO2"))
        >>> clf.predict_proba(np.array([[0.01, 0.011]]), np.full((1, 2), 1e-4)).tolist()
        [[0.25, 0.75]]
    """

    kind: str
    model: Any
    binning: Binning
    molecules: tuple[str, ...]
    calibrators: list[Any] = field(default_factory=list)

    def _raw(self, depth: NDArray, error: NDArray) -> NDArray[np.float64]:
        x = features(depth, error, self.binning.instrument_ids()).reshape(
            np.atleast_2d(depth).shape[0], -1
        )
        proba = self.model.predict_proba(x)
        if isinstance(proba, list):  # random forest: one (n, 2) array per output
            return np.stack(
                [p[:, -1] if p.shape[1] > 1 else np.zeros(len(p)) for p in proba], axis=1
            )
        proba = np.asarray(proba)
        if len(self.molecules) == 1 and proba.ndim == 2 and proba.shape[1] == 2:
            # one molecule: scikit-learn gives (absent, present) columns, not one per label
            return proba[:, 1:]
        return proba

    def predict_proba(self, depth: NDArray, error: NDArray) -> NDArray[np.float64]:
        raw = self._raw(depth, error)
        if not self.calibrators:
            return raw
        return np.stack([c.predict(raw[:, j]) for j, c in enumerate(self.calibrators)], axis=1)


def train_baseline(
    ts: MoleculeTrainingSet, kind: str = "rf", *, seed: int = 0, n_jobs: int = 1
) -> BaselineClassifier:
    """Fit a random forest (``"rf"``) or MLP (``"mlp"``) on one noisy draw per training spectrum,
    then isotonic calibration per molecule on the validation split.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> b = Binning(np.linspace(1.0, 2.0, 8), np.full(8, 0.06), np.full(8, "x"),
        ...             np.full(8, 1e-4))
        >>> on = rng.random((60, 2)) < 0.5   # H2O and CO2 on or off, each with its own shape
        >>> depth = 0.01 + 1e-3 * on @ np.array([np.sin(np.arange(8)), np.cos(np.arange(8))])
        >>> params = np.column_stack([np.where(on, -3.0, -np.inf), np.ones(60)])
        >>> ts = MoleculeTrainingSet(depth, np.where(on, 400.0, 0.0), params,
        ...     ("log_H2O", "log_CO2", "noise_scale"), (np.arange(60) % 3 == 0).astype(np.int8),
        ...     b, ("H2O", "CO2"))
        >>> clf = train_baseline(ts, "rf")
        >>> clf.kind, len(clf.calibrators), clf.predict_proba(depth[:3], b.error).shape
        ('rf', 2, (3, 2))
        >>> train_baseline(ts, "svm")
        Traceback (most recent call last):
        ...
        ValueError: kind must be 'rf' or 'mlp', not 'svm'
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.isotonic import IsotonicRegression
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(seed)
    train, val = ts.subset(0), ts.subset(1)
    obs, err, lab = noisy_observations(train, rng)
    x = features(obs, err, ts.binning.instrument_ids()).reshape(len(train), -1)
    if kind == "rf":
        model: Any = RandomForestClassifier(
            n_estimators=200,
            min_samples_leaf=2,
            max_features="sqrt",
            n_jobs=n_jobs,
            random_state=seed,
        )
    elif kind == "mlp":
        model = MLPClassifier(
            hidden_layer_sizes=(256, 128),
            alpha=1e-3,
            early_stopping=True,
            max_iter=200,
            random_state=seed,
        )
    else:
        raise ValueError(f"kind must be 'rf' or 'mlp', not {kind!r}")
    model.fit(x, lab.astype(int))
    clf = BaselineClassifier(kind, model, ts.binning, ts.molecules)
    v_obs, v_err, v_lab = noisy_observations(val, rng)
    raw = clf._raw(v_obs, v_err)
    clf.calibrators = [
        IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw[:, j], v_lab[:, j])
        for j in range(len(ts.molecules))
    ]
    return clf


def recall_at_fpr(
    labels: NDArray[np.bool_], scores: NDArray[np.float64], fpr: float = 0.05
) -> float:
    """Highest true-positive rate with a false-positive rate <= ``fpr`` (ROC curve).

    Example:
        >>> recall_at_fpr(np.array([0, 0, 1, 1], bool), np.array([0.1, 0.2, 0.3, 0.9]))
        1.0
    """
    from sklearn.metrics import roc_curve

    if labels.all() or not labels.any():
        return float("nan")
    f, t, _ = roc_curve(labels, scores)
    return float(t[f <= fpr].max())


def evaluate(
    proba: NDArray[np.float64],
    labels: NDArray[np.bool_],
    molecules: Sequence[str],
    *,
    n_reliability: int = 10,
) -> dict[str, dict[str, Any]]:
    """Per molecule: precision, recall, F1 (at 0.5), ROC-AUC, PR-AUC, recall at 5 % FPR,
    confusion matrix [[tn, fp], [fn, tp]] and a reliability table (mean predicted vs observed
    frequency in ``n_reliability`` probability bins).

    Example:
        >>> labels = np.array([[0], [0], [1], [1]], bool)
        >>> m = evaluate(np.array([[0.1], [0.6], [0.4], [0.9]]), labels, ("H2O",))["H2O"]
        >>> m["precision"], m["recall"], m["roc_auc"], m["confusion"]
        (0.5, 0.5, 0.75, [[1, 1], [1, 1]])
        >>> m["reliability"][9]   # the predictions in 0.9-1: one, and it was present
        {'bin': [0.9, 1.0], 'count': 1, 'mean_predicted': 0.9, 'observed': 1.0}
    """
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    out: dict[str, dict[str, Any]] = {}
    for j, m in enumerate(molecules):
        y, p = labels[:, j].astype(bool), proba[:, j]
        both = y.any() and not y.all()
        prec, rec, f1, _ = precision_recall_fscore_support(
            y, p >= 0.5, average="binary", zero_division=0
        )
        edges = np.linspace(0, 1, n_reliability + 1)
        which = np.clip(np.digitize(p, edges) - 1, 0, n_reliability - 1)
        rel = [
            {
                "bin": [float(edges[k]), float(edges[k + 1])],
                "count": int((which == k).sum()),
                "mean_predicted": float(p[which == k].mean()) if (which == k).any() else None,
                "observed": float(y[which == k].mean()) if (which == k).any() else None,
            }
            for k in range(n_reliability)
        ]
        out[m] = {
            "n_positive": int(y.sum()),
            "n": int(y.size),
            "precision": float(prec),
            "recall": float(rec),
            "f1": float(f1),
            "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
            "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
            "recall_at_5pct_fpr": recall_at_fpr(y, p, 0.05),
            "confusion": confusion_matrix(y, p >= 0.5, labels=[False, True]).tolist(),
            "reliability": rel,
        }
    return out


def tune_cnn(
    ts: MoleculeTrainingSet,
    *,
    n_trials: int = 10,
    seed: int = 0,
    max_seconds_per_trial: float = 120.0,
) -> dict[str, Any]:
    """Optuna TPE search over width, dropout, learning rate and weight decay.

    The objective is the mean validation ROC-AUC over molecules (each trial trains with a
    wall-time budget). Returns the best parameters and value. Optuna's per-trial log shows
    while the ``atmospec`` logger shows progress (INFO); the trials train without bars.
    """
    from atmospec._logging import progress_enabled, progress_hidden
    from atmospec._optional import require

    optuna = require("optuna", "tune")

    val = ts.subset(1)
    rng = np.random.default_rng(seed + 7)
    obs, err, lab = noisy_observations(val, rng)

    def objective(trial: Trial) -> float:
        params: dict[str, Any] = {
            "width": trial.suggest_categorical("width", [16, 32, 48]),
            "dropout": trial.suggest_float("dropout", 0.0, 0.5),
            "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        }
        with progress_hidden():
            clf = train_cnn(ts, seed=seed, max_seconds=max_seconds_per_trial, **params)
        metrics = evaluate(clf.predict_proba(obs, err), lab, ts.molecules)
        return float(np.nanmean([metrics[m]["roc_auc"] for m in ts.molecules]))

    if not progress_enabled():
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    return {"best_params": study.best_params, "best_value": study.best_value}
