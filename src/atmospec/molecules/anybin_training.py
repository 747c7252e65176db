"""Training the any-binning molecule classifier: a new random instrument set every batch.

Planets simulated once on the fine axis (:class:`~atmospec.molecules.native.NativeSet`) are
binned to each batch's random binning (:func:`~atmospec.molecules.anybin.random_binning`),
labelled for those bins and errors (Delta chi^2 > 25 with one free offset per instrument),
observed with noise and projected onto the canonical axis, all in torch so that a batch can
be made on a GPU. One temperature per molecule is then fitted on the validation split seen
through fixed random binnings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import ModelInputError
from atmospec.molecules.anybin import (
    AnyBinningClassifier,
    _fractions,
    _network,
    canonical_edges,
    random_binning,
)
from atmospec.molecules.binning import Binning
from atmospec.molecules.population_range import COLUMNS, population_range

__all__ = ["project_torch", "train_anybin"]


class _Binner:
    """The fine-axis set held as tensors (CPU or GPU): bins planets to any binning, labels them
    and projects noisy observations onto the canonical axis, a batch at a time."""

    def __init__(self, native: Any, edges: NDArray, device: str) -> None:
        import torch

        self.device, self.edges, self.native = device, edges, native
        self.depth = torch.as_tensor(native.depth, dtype=torch.float32, device=device)
        self.contrib = torch.as_tensor(native.contribution, device=device)
        self.scale = torch.as_tensor(native.scale, dtype=torch.float32, device=device)
        present = np.stack([np.isfinite(native.column(f"log_{m}")) for m in native.molecules], 1)
        self.present = torch.as_tensor(present, device=device)

    def batch(
        self,
        idx: NDArray[np.int64],
        binning: Binning,
        gen: Any,
        log_scale: tuple[float, float] | None,
    ) -> tuple[Any, Any]:
        """Inputs ``(B, 3, n_cells)`` and labels ``(B, n_mol)`` of planets ``idx`` seen with
        ``binning`` at a random noise scale (log-uniform in ``log_scale``; None: 1)."""
        import torch

        dev = self.device
        t = torch.as_tensor
        f64 = torch.float64  # residuals of ~1e-5 on depths of ~1e-2: float32 would cancel
        m = t(binning.matrix(self.native.wavelength).toarray(), dtype=f64, device=dev)
        ii = t(idx, device=dev)
        depth = self.depth[ii].to(f64) @ m.T
        contrib = (self.contrib[ii].to(f64) * self.scale[ii][..., None].to(f64)) @ m.T
        b = len(idx)
        if log_scale is None:
            s = torch.ones(b, device=dev, dtype=f64)
        else:
            u = torch.rand(b, device=dev, generator=gen, dtype=f64)
            s = 10 ** (log_scale[0] + (log_scale[1] - log_scale[0]) * u)
        e_ref = t(binning.error, dtype=f64, device=dev)
        onehot = torch.nn.functional.one_hot(
            t(binning.instrument_ids(), device=dev),
            num_classes=int(binning.instrument_ids().max()) + 1,
        ).to(f64)
        w = 1.0 / e_ref**2
        cw = (contrib * w) @ onehot / (w @ onehot)
        chi2 = (((contrib - cw @ onehot.T) ** 2) * w).sum(-1)
        labels = self.present[ii] & (chi2 / s[:, None] ** 2 > 25.0)
        err = s[:, None] * e_ref[None, :]
        obs = depth + err * torch.randn(depth.shape, device=dev, generator=gen, dtype=f64)
        x = project_torch(obs, err, binning, onehot, self.edges)
        return x.float(), labels.float()


def project_torch(obs: Any, err: Any, binning: Binning, onehot: Any, edges: NDArray) -> Any:
    """:func:`project` in torch (same formula), for batches on any device.

    ``onehot`` is the ``(n_bins, n_instruments)`` instrument indicator matrix.

    Example:
        >>> import torch
        >>> from atmospec.molecules.anybin import project
        >>> b = Binning(np.array([1.5, 2.5]), np.full(2, 0.5), np.array(["x", "x"]), np.ones(2))
        >>> edges, f64 = np.array([1.0, 2.0, 3.0, 4.0]), torch.float64
        >>> x = project_torch(torch.tensor([[1.0, 3.0]], dtype=f64), torch.ones(1, 2, dtype=f64),
        ...                   b, torch.ones(2, 1, dtype=f64), edges)
        >>> x[0].tolist()   # residual, log S/N (-4: empty cell), coverage per cell
        [[-1.0, 1.0, 0.0], [0.0, 0.0, -4.0], [1.0, 1.0, 0.0]]
        >>> y = project(np.array([[1.0, 3.0]]), np.ones((1, 2)), b.lower, b.upper,
        ...             b.instrument_ids(), edges)
        >>> bool(np.allclose(x.numpy(), y))
        True
    """
    import torch

    dev = obs.device
    w = 1.0 / err**2
    mean = ((obs * w) @ onehot) / (w @ onehot)
    resid = obs - mean @ onehot.T
    s = torch.sqrt((resid**2).mean(1, keepdim=True)) + 1e-30
    frac = torch.as_tensor(
        _fractions(binning.lower, binning.upper, edges), dtype=obs.dtype, device=dev
    )
    info = w @ frac
    num = ((resid / s) * w) @ frac
    filled = info > 0
    value = torch.where(filled, num / torch.where(filled, info, 1.0), 0.0)
    snr = torch.where(filled, torch.log10(s * torch.sqrt(torch.where(filled, info, 1.0))), -4.0)
    width = torch.as_tensor(np.diff(edges), dtype=obs.dtype, device=dev)
    span = torch.as_tensor(binning.upper - binning.lower, dtype=obs.dtype, device=dev)
    cover = torch.clamp((span[:, None] * frac).sum(0) / width, max=1.0)
    return torch.stack([value, snr.clamp(-4.0, 4.0), cover.expand_as(value)], 1)


class _RandomBinningBatches:
    """Re-iterable training batches: each batch a new random binning, noise scale and noise."""

    def __init__(
        self, binner: _Binner, rows: NDArray, batch: int, seed: int, log_scale: tuple[float, float]
    ) -> None:
        import torch

        self.binner, self.rows, self.batch, self.log_scale = binner, rows, batch, log_scale
        self.rng = np.random.default_rng(seed)
        self.gen = torch.Generator(device=binner.device).manual_seed(seed)

    def __len__(self) -> int:
        return int(np.ceil(self.rows.size / self.batch))

    def __iter__(self) -> Any:
        order = self.rng.permutation(self.rows)
        for k in range(0, order.size, self.batch):
            idx = np.sort(order[k : k + self.batch])
            yield self.binner.batch(idx, random_binning(self.rng), self.gen, self.log_scale)


def train_anybin(
    native: Any,
    *,
    n_cells: int = 384,
    width: int = 24,
    dropout: float = 0.2,
    lr: float = 2e-3,
    batch: int = 256,
    max_epochs: int = 60,
    patience: int = 10,
    seed: int = 0,
    n_val_binnings: int = 8,
    max_seconds: float | None = None,
    device: str = "cpu",
    init: AnyBinningClassifier | None = None,
) -> AnyBinningClassifier:
    """Train on the training split of a :class:`~atmospec.molecules.native.NativeSet` with a new
    random binning per batch; calibrate one temperature per molecule on the validation split
    observed with ``n_val_binnings`` fixed random binnings.

    ``init`` starts from an earlier classifier's weights (fine-tuning; same ``n_cells``,
    ``width`` and molecules), recorded in the provenance.

    Example:
        >>> from atmospec.molecules.native import NativeSet
        >>> lam = np.geomspace(0.45, 12.5, 300)
        >>> on = np.random.default_rng(0).random((40, 2)) < 0.5   # H2O, CO2 on or off
        >>> band = on[:, :, None] * np.exp(-0.5 * ((lam - np.array([[1.4], [4.3]])) / 0.1) ** 2)
        >>> planet = np.tile([1.0, 10.0, 1000.0, 2.3], (40, 1))   # R_Jup, g, T, mu
        >>> ns = NativeSet(lam, (0.01 + 1e-3 * band.sum(1)).astype(np.float32),
        ...     band.astype(np.float16), np.full((40, 2), 1e-3, np.float32),
        ...     np.column_stack([np.where(on, -3.0, -np.inf), planet]),
        ...     ("log_H2O", "log_CO2", "radius_rjup", "gravity", "temperature", "mu"),
        ...     (np.arange(40) % 4 == 0).astype(np.int8), ("H2O", "CO2"))
        >>> clf = train_anybin(ns, n_cells=16, width=4, max_epochs=1, n_val_binnings=1)  # a toy
        >>> clf.molecules, clf.edges.size, clf.temperatures.shape, clf.info["n_train"]
        (('H2O', 'CO2'), 17, (2,), 30)
        >>> clf.info["population_range"]["n_transiting"]   # what its checks will read
        40
        >>> train_anybin(ns, n_cells=32, init=clf)
        Traceback (most recent call last):
        ...
        atmospec.errors.ModelInputError: init: a classifier with other molecules or another axis
    """
    import torch

    from atmospec._fileio import provenance
    from atmospec.molecules.classifiers import _temperatures, _train_detector

    edges = canonical_edges(n_cells)
    # what check_spectrum tests (median depth, 5-95 % spread) on the axis it reads, measured
    # before training so that a set without the needed columns is refused at once
    covered = population_range(
        native.wavelength,
        native.depth,
        {c: native.column(c) for c in COLUMNS if c in native.param_names},
        (float(edges[0]), float(edges[-1])),
    )
    binner = _Binner(native, edges, device)
    train_rows, val_rows = np.nonzero(native.split == 0)[0], np.nonzero(native.split == 1)[0]
    log_scale = (float(np.log10(0.35)), float(np.log10(3.0)))
    vrng = np.random.default_rng(seed + 101)
    vgen = torch.Generator(device=device).manual_seed(seed + 101)
    val_loader = []
    for _ in range(n_val_binnings):
        vb = random_binning(vrng)
        for k in range(0, val_rows.size, 1024):
            val_loader.append(binner.batch(val_rows[k : k + 1024], vb, vgen, log_scale))
    torch.manual_seed(seed)
    net = _network(n_cells, len(native.molecules), width, dropout)
    if init is not None:
        if tuple(init.molecules) != tuple(native.molecules) or init.edges.size != n_cells + 1:
            raise ModelInputError("init: a classifier with other molecules or another axis")
        net.load_state_dict(init.network.state_dict())
    history = _train_detector(
        net,
        _RandomBinningBatches(binner, train_rows, batch, seed, log_scale),
        val_loader,
        lr=lr,
        max_epochs=max_epochs,
        patience=patience,
        seed=seed,
        weight_decay=1e-4,
        max_seconds=max_seconds,
        device=device,
    )
    clf = AnyBinningClassifier(
        net,
        tuple(native.molecules),
        edges,
        np.ones(len(native.molecules)),
        {"width": width, "dropout": dropout, "lr": lr, "batch": batch, "n_cells": n_cells},
    )
    v_x = np.concatenate([x.cpu().numpy() for x, _ in val_loader])
    v_y = np.concatenate([y.cpu().numpy() for _, y in val_loader]) > 0.5
    clf.temperatures = _temperatures(clf._logits(v_x), v_y)
    clf.info = {
        "provenance": provenance(
            seed=seed,
            native_seed=native.meta.get("seed"),
            native_n=len(native),
            fine_tuned_from=None if init is None else init.info.get("provenance"),
        ),
        "history": history.to_dict(),
        "detection_threshold": 25.0,
        "population": native.meta.get("population"),
        "species": native.meta.get("species"),
        "population_range": covered.as_record(),
        "n_train": int(train_rows.size),
        "n_val_spectra": int(len(v_x)),
    }
    return clf
