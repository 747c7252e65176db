"""Fresh noise every epoch: noise-free fluxes stored by the builder and used by the trainer."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.realdata
def test_builder_stores_the_noise_free_flux(grid, tmp_path):
    # X = clean + sigma * N(0, 1): the standardised difference is unit Gaussian noise
    # (mean 0 +- 0.003, sd 1 +- 0.002 over 300 x 104 pixels), and masked telluric pixels
    # are NaN in both with infinite sigma.
    from atmospec.training.builder import build_training_set

    ts = build_training_set(
        grid, tmp_path / "c.h5", n_samples=300, seed=3, axis="spex-prism",
        mask_telluric=0.5,
    )  # fmt: skip
    X, _, s = ts.arrays()
    clean = ts.clean()
    ok = np.isfinite(s)
    assert (~ok).any() and np.isnan(clean[~ok]).all() and np.isnan(X[~ok]).all()
    z = (X[ok] - clean[ok]) / s[ok]
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_fresh_noise_differs_per_epoch_and_repeats_under_its_seed() -> None:
    import torch

    from atmospec.estimators import SpectrumCNN
    from atmospec.estimators._neural import _FreshNoise
    from atmospec.estimators.preprocessing import Preprocessor

    rng = np.random.default_rng(0)
    clean = 1 + 0.1 * rng.uniform(size=(64, 40))
    sigma = np.full_like(clean, 0.02)
    sigma[:, :3] = np.inf  # masked pixels
    clean[:, :3] = np.nan
    est = SpectrumCNN(batch_size=64)
    est.preprocessor_ = Preprocessor(normalize="none", sigma_channel=False, target="standard")
    est.preprocessor_.fit(clean[:, 3:], np.zeros((64, 1)), param_names=["a"], bounds=None)
    est.preprocessor_ = None  # use the raw flux to see the noise itself

    def tensors(X, s):
        return [torch.from_numpy(np.nan_to_num(X, nan=-1.0))]

    est._tensors = tensors
    fn = _FreshNoise(est, clean, sigma, torch.zeros(64, 1), seed=5)

    def draw(epoch):
        fn.set_epoch(epoch)
        ((x, _),) = list(fn)  # one batch of 64, shuffled by an epoch-seeded generator
        return np.sort(x.numpy().ravel())

    a, b, a2 = draw(0), draw(1), draw(0)
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)
    fn.set_epoch(0)
    ((x, _),) = list(fn)
    x = x.numpy()
    assert (x[:, :3] == -1.0).all()  # masked pixels stay masked (NaN)
    z = (np.sort(x[:, 3:], axis=None) - np.sort(clean[:, 3:], axis=None)).std()
    assert 0 < z < 0.1  # the noise is there and of the order of sigma
    est.batch_size = 48  # 64 spectra: one full batch and one of 16 (a per-batch LR schedule
    assert len(fn) == len(list(fn)) == 2  # needs the true count)


def test_fit_with_clean_trains_and_needs_sigma():
    from atmospec.estimators import SpectrumCNN

    rng = np.random.default_rng(1)
    wave = np.linspace(1.0, 2.0, 48)
    y = rng.uniform(0, 1, (200, 1))
    clean = 1 + y * (wave - 1.5)
    s = np.full_like(clean, 0.01)
    X = clean + s * rng.standard_normal(clean.shape)
    kw = dict(wavelength=wave, param_names=["a"], bounds={"a": (0.0, 1.0)})
    a = SpectrumCNN(width=8, hidden=16, max_epochs=3, num_threads=1, seed=2)
    b = SpectrumCNN(width=8, hidden=16, max_epochs=3, num_threads=1, seed=2)
    a.fit(X, y, sigma=s, clean=clean, **kw)
    b.fit(X, y, sigma=s, clean=clean, **kw)
    np.testing.assert_array_equal(a.predict(X[:5], s[:5]).mean, b.predict(X[:5], s[:5]).mean)
    # The shipped recipes' per-batch one-cycle schedule runs on fresh-noise batches too.
    c = SpectrumCNN(width=8, hidden=16, max_epochs=3, num_threads=1, scheduler="onecycle")
    c.fit(X, y, sigma=s, clean=clean, **kw)
    assert len(c.history_[0]["lr"]) == 3
    with pytest.raises(ValueError, match="shape of X"):
        SpectrumCNN(max_epochs=1).fit(X, y, sigma=s, clean=clean[:10], **kw)


@pytest.mark.realdata
def test_set_without_noise_free_fluxes_names_the_file(grid, tmp_path):
    # Sets written before the builder stored noise-free fluxes have no "clean" dataset.
    import h5py

    from atmospec.errors import FileFormatError
    from atmospec.training.builder import TrainingSet, build_training_set

    path = tmp_path / "old.h5"
    build_training_set(grid, path, n_samples=8, seed=1, axis="spex-prism").close()
    with h5py.File(path, "a") as h5:
        del h5["clean"]
    ts = TrainingSet(path)
    assert not ts.has_clean
    with pytest.raises(FileFormatError, match=r"old\.h5: this training set stores no noise-free"):
        ts.clean()
