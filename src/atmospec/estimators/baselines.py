"""Tree baselines (random forest, gradient boosting) saved as plain tree arrays, never pickled."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from atmospec.estimators.preprocessing import Preprocessor

from .base import Estimator

__all__ = ["RandomForestEstimator", "GradientBoostingEstimator", "TreeEnsemble", "spread_scale"]


class TreeEnsemble:
    """Regression trees flattened into arrays, evaluated with numpy only.

    Holds the ``tree_`` arrays of fitted scikit-learn trees (children, split feature,
    threshold, leaf values) concatenated with per-tree offsets, so a model can be saved to
    safetensors and evaluated without scikit-learn objects or pickle.

    Example:
        >>> from sklearn.tree import DecisionTreeRegressor
        >>> X = np.arange(10.0)[:, None]; y = (X[:, 0] > 4).astype(float)
        >>> t = DecisionTreeRegressor(max_depth=1).fit(X, y)
        >>> TreeEnsemble.from_sklearn([t]).predict_each(np.array([[1.0], [8.0]]))[:, :, 0].tolist()
        [[0.0, 1.0]]
    """

    def __init__(self, arrays: dict[str, NDArray[Any]]) -> None:
        self.left = np.asarray(arrays["left"], dtype=np.int64)
        self.right = np.asarray(arrays["right"], dtype=np.int64)
        self.feature = np.asarray(arrays["feature"], dtype=np.int64)
        self.threshold = np.asarray(arrays["threshold"], dtype=np.float64)
        self.value = np.asarray(arrays["value"], dtype=np.float64)
        self.roots = np.asarray(arrays["roots"], dtype=np.int64)
        n = self.left.size
        for name in ("right", "feature", "threshold"):
            if getattr(self, name).size != n:
                raise ValueError(
                    f"tree array {name!r} has {getattr(self, name).size} nodes, expected {n}"
                )
        inner = self.left >= 0
        if (
            (self.left[inner] >= n).any()
            or (self.right[inner] >= n).any()
            or (self.roots >= n).any()
        ):
            raise ValueError("tree arrays point outside the node table")

    @classmethod
    def from_sklearn(cls, trees: list[Any]) -> TreeEnsemble:
        """Concatenate the ``tree_`` arrays of fitted scikit-learn regression trees."""
        parts: dict[str, list[NDArray[Any]]] = {
            k: [] for k in ("left", "right", "feature", "threshold", "value")
        }
        roots, offset = [], 0
        for t in trees:
            tr = t.tree_
            left, right = tr.children_left.astype(np.int64), tr.children_right.astype(np.int64)
            parts["left"].append(np.where(left >= 0, left + offset, -1))
            parts["right"].append(np.where(right >= 0, right + offset, -1))
            parts["feature"].append(tr.feature.astype(np.int64))
            parts["threshold"].append(tr.threshold.astype(np.float64))
            parts["value"].append(tr.value[:, :, 0].astype(np.float64))
            roots.append(offset)
            offset += tr.node_count
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["roots"] = np.array(roots, dtype=np.int64)
        return cls(arrays)

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        return {
            "left": self.left,
            "right": self.right,
            "feature": self.feature,
            "threshold": self.threshold,
            "value": self.value,
            "roots": self.roots,
        }

    def predict_each(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """Leaf values of every tree: (n_trees, n_samples, n_outputs)."""
        X = np.asarray(X, dtype=np.float64)
        rows = np.arange(X.shape[0])
        out = np.empty((self.roots.size, X.shape[0], self.value.shape[1]))
        for k, root in enumerate(self.roots):
            node = np.full(X.shape[0], root)
            while True:
                inner = self.left[node] >= 0
                if not inner.any():
                    break
                go_left = X[rows, np.maximum(self.feature[node], 0)] <= self.threshold[node]
                nxt = np.where(go_left, self.left[node], self.right[node])
                node = np.where(inner, nxt, node)
            out[k] = self.value[node]
        return out


def spread_scale(error: NDArray[np.float64], spread: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per parameter (column), the factor that makes ``spread`` a 1-sigma error: the 68.27 %
    quantile of ``|error| / spread`` (as for a Gaussian, where it is 1).

    A quantile, not the root mean square: on a spectrum where every tree agrees the spread
    is 0 and its z-score infinite, which would make an RMS scale (and every sigma) infinite.

    Example:
        >>> err = np.array([[1.0], [-2.0], [0.5], [3.0]])
        >>> spread_scale(err, np.array([[1.0], [1.0], [1.0], [0.0]])).round(3).tolist()
        [2.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(error) / spread
    z = np.where(np.isnan(z), 0.0, z)  # no error and no spread: exact
    return np.asarray(np.quantile(z, 0.6827, axis=0, method="inverted_cdf"), dtype=np.float64)


class _TreeEstimator(Estimator):
    """Shared preprocessing and state handling of the tree baselines (flux / mean input)."""

    # Learned state: declared here for type checkers, created only by fit / load.
    preprocessor_: Preprocessor
    trees_: TreeEnsemble
    sigma_scale_: NDArray[np.float64] | None

    def _features(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        assert self.preprocessor_ is not None
        return self.preprocessor_.transform(X)["x"][:, 0].astype(np.float64)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
        assert self.preprocessor_ is not None and self.trees_ is not None
        config = {
            "preprocessor": self.preprocessor_.to_dict(),
            "sigma_scale": None if self.sigma_scale_ is None else self.sigma_scale_.tolist(),
            **self._extra_state(),
        }
        return config, self.trees_.to_arrays()

    def _set_state(self, config: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
        self.preprocessor_ = Preprocessor.from_dict(config["preprocessor"])
        s = config.get("sigma_scale")
        self.sigma_scale_ = None if s is None else np.asarray(s, dtype=np.float64)
        self.trees_ = TreeEnsemble(arrays)
        self._load_extra(config)

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, config: dict[str, Any]) -> None:
        return None


class RandomForestEstimator(_TreeEstimator):
    """Random forest on the mean-normalised flux (Lueber et al. 2023 style baseline).

    The predictive sigma is the spread of the trees, rescaled on the validation set (when one
    is given) so that 68.27 % of held-out z-scores lie within +-1 (:func:`spread_scale`).

    Example:
        >>> rng = np.random.default_rng(1)
        >>> wave = np.linspace(1, 2, 20); t = rng.uniform(0, 1, (300, 1))
        >>> X = 1 + t * wave
        >>> rf = RandomForestEstimator(n_estimators=20).fit(X, t, wavelength=wave, param_names=["t"])
        >>> bool(abs(rf.predict(X[:1]).mean[0, 0] - t[0, 0]) < 0.05)
        True
    """

    kind = "random_forest"

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        max_depth: int | None = None,
        min_samples_leaf: int = 2,
        max_features: float = 0.3,
        seed: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.seed = seed
        self.n_jobs = n_jobs

    def _fit(self, X: Any, y: Any, sigma: Any, validation: Any, *, clean: Any = None) -> None:
        from sklearn.ensemble import RandomForestRegressor

        self.preprocessor_ = Preprocessor(normalize="mean", target="standard").fit(
            X, y, param_names=self.param_names_, bounds=self.bounds_
        )
        rf = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features,
            random_state=self.seed,
            n_jobs=self.n_jobs,
        )
        t = self.preprocessor_.transform_targets(y)
        # one parameter as a 1-D target: the same trees, without sklearn's column-vector warning
        rf.fit(self._features(X), t[:, 0] if t.shape[1] == 1 else t)
        self.trees_ = TreeEnsemble.from_sklearn(list(rf.estimators_))
        self.sigma_scale_ = np.ones(len(self.param_names_))
        if validation is not None:
            mean, std = self._predict(np.asarray(validation[0], dtype=np.float64), None)
            assert std is not None  # the forest's spread is always returned
            self.sigma_scale_ = spread_scale(np.asarray(validation[1]) - mean, std)

    def _predict(
        self, X: Any, sigma: Any
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        assert self.preprocessor_ is not None and self.trees_ is not None
        each = self.trees_.predict_each(self._features(X))
        pp = self.preprocessor_
        scale = self.sigma_scale_ if self.sigma_scale_ is not None else 1.0
        return pp.inverse_targets(each.mean(axis=0)), pp.inverse_scale(each.std(axis=0)) * scale


class GradientBoostingEstimator(_TreeEstimator):
    """Gradient-boosted trees (one booster per parameter, scikit-learn), point estimates.

    Example:
        >>> rng = np.random.default_rng(2)
        >>> wave = np.linspace(1, 2, 10); t = rng.uniform(0, 1, (200, 1)); X = 1 + t * wave
        >>> gb = GradientBoostingEstimator(n_estimators=50).fit(X, t, wavelength=wave,
        ...                                                     param_names=["t"])
        >>> bool(abs(gb.predict(X[:1]).mean[0, 0] - t[0, 0]) < 0.05)
        True
    """

    kind = "gradient_boosting"
    init_: NDArray[np.float64]  # the boosting's starting prediction (learned)

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.1,
        max_depth: int = 3,
        subsample: float = 0.8,
        seed: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.seed = seed

    def _fit(self, X: Any, y: Any, sigma: Any, validation: Any, *, clean: Any = None) -> None:
        from sklearn.ensemble import GradientBoostingRegressor

        self.preprocessor_ = Preprocessor(normalize="mean", target="standard").fit(
            X, y, param_names=self.param_names_, bounds=self.bounds_
        )
        feats, z = self._features(X), self.preprocessor_.transform_targets(y)
        trees, init = [], []
        for j in range(z.shape[1]):
            gb = GradientBoostingRegressor(
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                max_depth=self.max_depth,
                subsample=self.subsample,
                random_state=self.seed,
            ).fit(feats, z[:, j])
            init.append(float(np.ravel(gb._raw_predict_init(feats[:1]))[0]))
            trees.extend(gb.estimators_[:, 0])
        self.init_ = np.array(init)
        self.trees_ = TreeEnsemble.from_sklearn(trees)
        self.sigma_scale_ = None  # point estimates: no predictive sigma

    def _predict(
        self, X: Any, sigma: Any
    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
        assert self.preprocessor_ is not None and self.trees_ is not None and self.init_ is not None
        each = self.trees_.predict_each(self._features(X))[:, :, 0]  # (p * n_est, n)
        p = len(self.param_names_)
        z = self.init_ + self.learning_rate * each.reshape(p, -1, each.shape[1]).sum(axis=1).T
        return self.preprocessor_.inverse_targets(z), None

    def _extra_state(self) -> dict[str, Any]:
        assert self.init_ is not None
        return {"init": self.init_.tolist()}

    def _load_extra(self, config: dict[str, Any]) -> None:
        self.init_ = np.asarray(config["init"], dtype=np.float64)
