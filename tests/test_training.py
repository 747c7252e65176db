"""Training core: Trainer (early stop, checkpoint/resume), splits, builder, preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.estimators.preprocessing import Preprocessor
from atmospec.training.splits import _component_labels, random_split
from atmospec.training.trainer import Trainer

torch = pytest.importorskip("torch")


def _loaders(seed: int = 0):
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 4, generator=g)
    w = torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    y = x @ w
    return (
        DataLoader(
            TensorDataset(x, y),
            batch_size=32,
            shuffle=True,
            generator=torch.Generator().manual_seed(1),
        ),
        DataLoader(TensorDataset(x, y), batch_size=64),
    )


def test_trainer_learns_linear_map_and_is_seeded():
    # y = x @ w is exactly representable by Linear(4, 1): the loss must fall near zero.
    def run():
        tr, va = _loaders()
        model = torch.nn.Linear(4, 1)
        with torch.random.fork_rng():
            torch.manual_seed(123)  # module init happens before the Trainer seeds its run
            model.reset_parameters()
        hist = Trainer(model, torch.nn.functional.mse_loss, lr=0.05, max_epochs=40, seed=7).fit(
            tr, va
        )
        return hist, model.weight.detach().clone()

    h1, w1 = run()
    h2, w2 = run()
    assert h1.best_val_loss < 1e-3
    assert h1.val_loss == h2.val_loss  # same seed, same data order: identical run
    torch.testing.assert_close(w1, w2)
    assert len(h1.cpu_seconds) == h1.n_epochs and h1.seconds[-1] > 0


def test_trainer_early_stopping_restores_best():
    tr, va = _loaders()
    model = torch.nn.Linear(4, 1)
    # lr so large the loss diverges after the first epochs: patience must stop the run.
    hist = Trainer(
        model,
        torch.nn.functional.mse_loss,
        lr=10.0,
        max_epochs=50,
        patience=2,
        scheduler="none",
    ).fit(tr, va)
    assert hist.stopped_early and hist.n_epochs < 50
    assert hist.n_epochs - 1 - hist.best_epoch == 2


def test_trainer_onecycle_schedule_warms_up_then_anneals():
    # 128 samples / batch 32 = 4 steps per epoch, 10 epochs = 40 steps. OneCycleLR starts at
    # lr / 25 (its div_factor), reaches lr at step 0.3 * 40 - 1 = 11 (end of epoch 3), then
    # anneals by cosine to lr / 25 / 1e4. hist.lr is the rate at the start of each epoch.
    tr, va = _loaders()
    lr = 0.05
    hist = Trainer(
        torch.nn.Linear(4, 1),
        torch.nn.functional.mse_loss,
        lr=lr,
        max_epochs=10,
        patience=10,
        scheduler="onecycle",
    ).fit(tr, va)
    assert hist.n_epochs == 10
    assert hist.lr[0] == pytest.approx(lr / 25)
    peak = int(np.argmax(hist.lr))
    assert peak == 3 and hist.lr[3] == pytest.approx(lr, rel=0.01)  # step 12: just past the top
    assert all(a > b for a, b in zip(hist.lr[peak:], hist.lr[peak + 1 :], strict=False))
    assert hist.lr[-1] < 0.1 * lr
    assert hist.best_epoch == 9 and hist.val_loss[-1] < 0.5 * hist.val_loss[0]  # still learning


def test_trainer_onecycle_resume_continues_the_same_schedule(tmp_path):
    # A run stopped after epoch 4 of 8 and resumed from its checkpoint must see the same
    # learning rates and losses as an uninterrupted run: the schedule state is checkpointed.
    class Stop(Exception):
        pass

    def stop_after_4(epoch, history):
        if epoch == 3:
            raise Stop

    def trainer(**kw):
        model = torch.nn.Linear(4, 1)
        with torch.random.fork_rng():
            torch.manual_seed(3)
            model.reset_parameters()
        return Trainer(
            model,
            torch.nn.functional.mse_loss,
            lr=0.05,
            max_epochs=8,
            patience=8,
            scheduler="onecycle",
            **kw,
        )

    def loaders():  # no shuffling: the data order does not depend on the loader's own state
        from torch.utils.data import DataLoader

        _, va = _loaders()
        return DataLoader(va.dataset, batch_size=32), va

    whole = trainer().fit(*loaders())
    with pytest.raises(Stop):
        trainer(checkpoint_dir=tmp_path, callback=stop_after_4).fit(*loaders())
    resumed = trainer(checkpoint_dir=tmp_path).fit(*loaders(), resume=True)
    assert resumed.n_epochs == 8
    np.testing.assert_allclose(resumed.lr, whole.lr, rtol=1e-12)
    np.testing.assert_allclose(resumed.val_loss, whole.val_loss, rtol=1e-5)


def test_trainer_checkpoint_and_resume(tmp_path):
    tr, va = _loaders()
    m1 = torch.nn.Linear(4, 1)
    t1 = Trainer(
        m1,
        torch.nn.functional.mse_loss,
        lr=0.02,
        max_epochs=3,
        checkpoint_dir=tmp_path,
        scheduler="none",
    )
    t1.fit(tr, va)
    assert (tmp_path / "checkpoint.pt").is_file()
    # Resume to 6 epochs: the history continues from epoch 3 (3 epochs kept, 3 added).
    m2 = torch.nn.Linear(4, 1)
    t2 = Trainer(
        m2,
        torch.nn.functional.mse_loss,
        lr=0.02,
        max_epochs=6,
        checkpoint_dir=tmp_path,
        scheduler="none",
    )
    hist = t2.fit(tr, va, resume=True)
    assert hist.n_epochs == 6
    assert hist.train_loss[:3] == t1.history.train_loss
    assert hist.val_loss[-1] < hist.val_loss[2]


def test_random_split_keeps_groups_together():
    groups = np.repeat(np.arange(50), 4)  # 4 noisy copies of each of 50 spectra
    tr, va, te = random_split(200, groups=groups, seed=3)
    parts = [set(groups[i]) for i in (tr, va, te)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(200))


def test_component_labels_join_chained_duplicates():
    # rows 0~3 and 3~5 are duplicates: 0, 3, 5 form one component.
    lab = _component_labels(6, [[0, 3], [3, 5]])
    assert lab[0] == lab[3] == lab[5] and len({lab[1], lab[2], lab[0], lab[4]}) == 4


def test_preprocessor_round_trip_and_masks():
    X = np.array([[1.0, np.nan, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    s = np.full_like(X, 0.1)
    pp = Preprocessor(normalize="mean", sigma_channel=True, target="bounded")
    pp.fit(np.nan_to_num(X), np.array([[1.0], [2.0]]), param_names=["a"], bounds={"a": (0.0, 4.0)})
    out = pp.transform(X, s)["x"]
    assert np.isfinite(out).all()  # NaN never reaches a network (TelescopeML fault 5)
    # filled pixel: interpolated flux 2, then divided by the row mean 2.5
    assert out[0, 0, 1] == pytest.approx(0.8)
    assert out[0, 1, 1] == pytest.approx(1.0)  # log10 of the "masked" relative sigma (10)
    assert out[1, 1, 0] == pytest.approx(np.log10(0.1 / 2.0), abs=1e-6)
    assert Preprocessor.from_dict(pp.to_dict()) == pp


# --- builder and splits on the real embedded grid ---------------------------------------


@pytest.mark.realdata
def test_grid_aware_split_holds_out_slices(grid):
    from atmospec.training.splits import grid_aware_split

    split = grid_aware_split(grid, duplicates=[])
    teff = grid.params["teff"].to_numpy()
    # Default: interior Teff slices, every 4th value (CONTEXT: hold out whole parameter slices).
    assert set(np.unique(teff[split.test])) == {1200.0, 1600.0, 2000.0}
    assert set(np.unique(teff[split.val])) == {1400.0, 1800.0, 2200.0}
    assert not set(split.train) & set(split.test)
    assert split.sizes() == {"train": 900, "val": 270, "test": 270}  # 10/3/3 slices x 90 nodes
    dup = grid_aware_split(grid, duplicates=[[int(split.test[0]), int(split.train[0])]])
    assert int(split.train[0]) in dup.test  # a duplicate follows its held-out twin


@pytest.mark.realdata
def test_builder_is_deterministic_and_never_uses_held_out_nodes(grid, tmp_path):
    from atmospec.training.builder import Lattice, build_training_set
    from atmospec.training.splits import grid_aware_split

    split = grid_aware_split(grid, duplicates=[])
    kw = dict(n_samples=300, nodes=split.train, seed=5, axis="spex-prism")
    a = build_training_set(grid, tmp_path / "a.h5", **kw)
    b = build_training_set(grid, tmp_path / "b.h5", **kw)
    Xa, ya, sa = a.arrays()
    Xb, yb, sb = b.arrays()
    np.testing.assert_array_equal(Xa, Xb)
    np.testing.assert_array_equal(ya, yb)
    assert Xa.shape == (300, 104)
    # Every training cell's corners are training nodes; node samples are training nodes.
    cells = Lattice(grid, split.train).cells(split.train, "inside")
    assert not np.isin(cells, split.test).any()
    assert np.isin(a.node[a.node >= 0], split.train).all()
    # Off-node Teff values fill the held-out 1200/1600/2000 K gaps between training slices.
    off = ya[a.node < 0, 0]
    assert ((off > 1100) & (off < 1300)).any()


@pytest.mark.realdata
def test_builder_noise_matches_requested_snr(grid, tmp_path):
    from atmospec.training.builder import build_training_set
    from atmospec.training.systematics import SNR_WINDOW, Systematics

    kw = dict(
        n_samples=64,
        seed=2,
        axis="spex-prism",
        off_node_fraction=0.0,
        systematics=Systematics.none(),
        noise_shapes="flat",
        flux_scale=(1.0, 1.0),
    )
    ts = build_training_set(grid, tmp_path / "n.h5", snr_levels=[25.0], **kw)
    X, y, s = ts.arrays()
    w = ts.wavelength
    win = (w >= SNR_WINDOW[0]) & (w <= SNR_WINDOW[1])
    # flux is normalised to median 1 in the S/N window and sigma = 1 / S/N there.
    np.testing.assert_allclose(np.median(s[:, win], axis=1), 1 / 25.0, rtol=1e-6)
    # the noise actually drawn has that sigma: compare with the noise-free node spectra
    from atmospec.transforms import resample

    clean = resample(w, grid.wavelength, grid.flux(ts.node))
    clean /= np.median(clean[:, win], axis=1, keepdims=True)
    z = (X - clean) / s
    assert abs(z.std() - 1) < 0.05 and abs(z.mean()) < 0.05


@pytest.mark.realdata
def test_builder_all_off_node(grid, tmp_path):
    # off_node_fraction=1 leaves no on-node sample (this used to crash): every sample is an
    # interpolation inside a grid cell, so none carries a node index and none sits exactly
    # on the 100 K Teff grid spacing of dback24 (a continuous draw hits it with probability 0).
    from atmospec.training.builder import build_training_set

    ts = build_training_set(
        grid,
        tmp_path / "off.h5",
        n_samples=40,
        off_node_fraction=1.0,
        seed=3,
        axis="spex-prism",
    )
    X, y, _ = ts.arrays()
    assert X.shape == (40, 104) and np.isfinite(X).all()
    assert (ts.node == -1).all()
    assert not np.any(np.isclose(y[:, 0] % 100.0, 0.0))


@pytest.mark.realdata
def test_recipe_split_and_sets_follow_the_shipped_config(grid, tmp_path):
    import dataclasses

    from atmospec.learning.recipe import build_sets, load_recipe, recipe_split

    # configs/dback24_spex.toml (the shipped default's recipe), shrunk to a few spectra.
    r = dataclasses.replace(
        load_recipe(Path(__file__).parents[1] / "configs" / "dback24_spex.toml"),
        n_train=40,
        n_val=20,
        n_test=30,
    )
    sets = build_sets(r, tmp_path)
    teff = grid.params["teff"].to_numpy()
    assert set(np.unique(teff[sets["split"].test])) == {1200.0, 1600.0, 2000.0}
    assert np.isin(sets["train"].node[sets["train"].node >= 0], sets["split"].train).all()
    assert len(sets["test"]) == 30 and len(sets["val"]) == 20
    # The shipped recipe augments the training set only, along Teff (the config's value);
    # validation and test spectra stay exact interpolations.
    assert r.interpolation_error == {"teff": 1.0}
    assert sets["train"].config["interpolation_error"]["teff"] == 1.0
    assert not any(sets["val"].config["interpolation_error"].values())
    # Every set carries one realisation of Diamondback's learned model error (the config's
    # discrepancy model), recorded with the model's checksum.
    assert r.discrepancy == "dback24-spex"
    for part in ("train", "val", "test"):
        rec = sets[part].config["discrepancy"]
        assert rec["grid"] == "dback24" and len(rec["weights_sha256"]) == 64
    # A cached training set built without the augmentation is rebuilt, not reused.
    plain = dataclasses.replace(r, interpolation_error=0.0)
    rebuilt = build_sets(plain, tmp_path)["train"]
    assert not any(rebuilt.config["interpolation_error"].values())
    # A parameter range restricts the split to the rows inside it (dback24 has 90 nodes per
    # Teff value: 5 log g x 3 [M/H] x 6 fsed, so Teff 1500-2000 K, 6 slices, is 540 rows).
    split, rows = recipe_split(grid, r.split, {"teff": [1500.0, 2000.0]})
    assert rows is not None and len(rows) == 6 * 90
    assert set(np.unique(teff[split.test])) <= set(np.unique(teff[rows]))


def test_config_errors_name_the_file(tmp_path):
    from atmospec.errors import FileFormatError
    from atmospec.learning.recipe import load_recipe
    from atmospec.posteriors.pipeline import read_config

    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n", encoding="utf-8")  # unterminated table header
    for reader in (load_recipe, read_config):
        with pytest.raises(FileFormatError, match=r"bad\.toml: invalid TOML"):
            reader(bad)
        with pytest.raises(FileFormatError, match=r"nope\.toml: config file not found"):
            reader(tmp_path / "nope.toml")
