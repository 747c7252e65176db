"""One estimator contract for every learned model, the NPE included (scikit-learn conventions)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone

from atmospec.errors import AtmospecError, NotFittedError
from atmospec.estimators.base import ESTIMATOR_KINDS, Estimator

# Small hyperparameters per kind, different from the defaults so that clone must copy them.
SMALL: dict[str, dict[str, Any]] = {
    "telescope_cnn": {"max_epochs": 1, "seed": 3},
    "cnn": {"width": 4, "hidden": 8, "max_epochs": 1, "seed": 3},
    "mlp": {"hidden": (8,), "max_epochs": 1, "seed": 3},
    "random_forest": {"n_estimators": 7, "max_depth": 4, "seed": 3},
    "gradient_boosting": {"n_estimators": 9, "max_depth": 2, "seed": 3},
    "npe": {"param_names": ("a",), "bounds": {"a": (0.0, 1.0)}, "width": 16, "seed": 3},
}


def _klass(kind: str) -> type[Estimator]:
    module = importlib.import_module(ESTIMATOR_KINDS[kind])
    return next(
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, Estimator) and c.kind == kind
    )


def _make(kind: str) -> Estimator:
    return _klass(kind)(**SMALL[kind])


def test_every_kind_is_covered() -> None:
    assert set(SMALL) == set(ESTIMATOR_KINDS)


@pytest.mark.parametrize("kind", sorted(ESTIMATOR_KINDS))
def test_sklearn_clone_copies_hyperparameters_not_state(kind: str) -> None:
    est: Any = _make(kind)  # every kind has a seed, which the Estimator base does not declare
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    assert twin.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    for name, value in SMALL[kind].items():
        assert twin.get_params()[name] == value
    # set_params changes one hyperparameter and returns the estimator (chainable)
    assert twin.set_params(seed=11) is twin and twin.seed == 11 and est.seed == 3
    with pytest.raises(ValueError, match="no hyperparameter 'nope'.*valid"):
        twin.set_params(nope=1)


@pytest.mark.parametrize("kind", sorted(ESTIMATOR_KINDS))
def test_no_learned_state_before_fit(kind: str, tmp_path) -> None:
    est = _make(kind)
    learned = [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
    assert learned == [], f"{kind}: __init__ created learned attributes {learned}"
    X, s = np.ones((2, 8)), np.full((2, 8), 0.1)
    with pytest.raises(NotFittedError, match="not fitted"):
        est.predict(X, s)
    with pytest.raises(NotFittedError):
        est.sample(X, s, n=3)
    with pytest.raises(NotFittedError):
        est.save(tmp_path / "m")


def test_not_fitted_error_is_the_sklearn_kind() -> None:
    # scikit-learn's NotFittedError derives from ValueError and AttributeError; ours too.
    assert issubclass(NotFittedError, AtmospecError)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def _linear(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wave = np.linspace(1.0, 2.0, 16)
    t = rng.uniform(0.0, 1.0, (n, 1))
    return wave, t, 1.0 + t * (wave - 1.5)


def test_fit_creates_the_learned_state_and_sample_follows_predict() -> None:
    from atmospec.estimators.baselines import RandomForestEstimator

    wave, t, X = _linear()
    est = RandomForestEstimator(n_estimators=20, seed=0)
    vt, vX = t[:100], X[:100]
    est.fit(X[100:], t[100:], wavelength=wave, param_names=["t"], validation=(vX, vt))
    for attr in ("wavelength_", "param_names_", "bounds_", "meta_", "trees_", "sigma_scale_"):
        assert hasattr(est, attr), attr
    assert not hasattr(clone(est), "trees_")  # a clone is unfitted
    pred = est.predict(X[:1])
    assert pred.std is not None
    draws = est.sample(X[0], n=20000, seed=1)
    assert draws.shape == (20000, 1)
    lo, hi = est.bounds_["t"]
    assert draws.min() >= lo and draws.max() <= hi  # truncated to the grid, never outside
    # X[0]'s estimate lies >= 3 sigma inside the bounds for this seed, so truncation is tiny:
    # the draws' mean and sd are the predicted ones within Monte Carlo error (20000 draws).
    m, sd = float(pred.mean[0, 0]), float(pred.std[0, 0])
    assert min(m - lo, hi - m) > 3 * sd
    assert abs(draws.mean() - m) < 5 * sd / np.sqrt(draws.size)
    assert abs(draws.std() / sd - 1) < 0.05
    # a batch gives (batch, n, p)
    assert est.sample(X[:3], n=5).shape == (3, 5, 1)


def test_point_estimator_has_nothing_to_sample() -> None:
    from atmospec.estimators.baselines import GradientBoostingEstimator

    wave, t, X = _linear(200)
    est = GradientBoostingEstimator(n_estimators=10).fit(X, t, wavelength=wave, param_names=["t"])
    with pytest.raises(ValueError, match="point estimates only"):
        est.sample(X[0], n=10)


def test_npe_follows_the_contract() -> None:
    from atmospec.posteriors.npe import NPEstimator

    wave, t, X = _linear(256)
    est = NPEstimator(
        ["t"], {"t": (0.0, 1.0)}, width=16, depth=1, n_features=8, hidden=16, transforms=2
    )
    est.set_params(max_epochs=2)
    assert isinstance(est, Estimator)
    assert est.fit(X, t, wavelength=wave) is est
    assert est.param_names_ == ("t",) and est.bounds_ == {"t": (0.0, 1.0)}
    assert est.wavelength_ is not None
    assert est.meta_ == {} and np.array_equal(est.wavelength_, wave)
    sigma = np.full((2, wave.size), 0.02)
    pred = est.predict(X[:2], sigma, n=500, seed=0)
    draws = est.sample(X[:2], sigma, n=500, seed=0)
    # predict summarises exactly the draws sample gives with the same seed
    np.testing.assert_allclose(pred.mean, draws.mean(axis=1))
    assert pred.std is not None
    np.testing.assert_allclose(pred.std, draws.std(axis=1))
    assert pred.param_names == ("t",) and pred.at_bound.shape == (2, 1)
    twin = clone(est)
    assert not hasattr(twin, "model_") and twin.get_params()["max_epochs"] == 2


def test_npe_bounds_are_checked_at_fit_not_construction() -> None:
    from atmospec.posteriors.npe import NPEstimator

    est = NPEstimator(["a", "b"], {"a": (0.0, 1.0)})  # sklearn: __init__ only stores
    with pytest.raises(ValueError, match="bounds missing for parameters \\['b'\\]"):
        est.fit(np.ones((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="high > low"):
        NPEstimator(["a"], {"a": (1.0, 1.0)}).fit(np.ones((4, 3)), np.zeros((4, 1)))


class _Stacked(Estimator):
    """A toy estimator with an estimator as hyperparameter (tests nested parameters)."""

    kind = "stacked-test"

    def __init__(self, inner: Estimator | None = None, scale: float = 1.0) -> None:
        self.inner = inner
        self.scale = scale

    def _predict(self, X: Any, sigma: Any) -> Any:
        raise NotImplementedError


def test_deep_parameters_reach_nested_estimators() -> None:
    from atmospec.estimators.baselines import RandomForestEstimator

    outer = _Stacked(RandomForestEstimator(n_estimators=4))
    deep = outer.get_params(deep=True)
    assert deep["inner__n_estimators"] == 4 and "inner__n_estimators" not in outer.get_params(
        deep=False
    )
    outer.set_params(inner__n_estimators=9, scale=2.0)
    assert isinstance(outer.inner, RandomForestEstimator)
    assert outer.inner.n_estimators == 9 and outer.scale == 2.0
    twin = clone(outer)
    assert twin.inner is not outer.inner and twin.get_params()["inner__n_estimators"] == 9
