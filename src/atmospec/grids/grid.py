"""ModelGrid: a model-spectrum grid stored out-of-core in HDF5, read lazily, interpolated."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from atmospec.errors import DataNotFoundError, FileFormatError, OutOfGridError
from atmospec.grids.interpolate import RegularWeights, SparseWeights, combine_log
from atmospec.grids.store import FORMAT_VERSION, META_ATTR, GridWriter

__all__ = ["ModelGrid"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Point = Mapping[str, float] | Mapping[str, ArrayLike] | ArrayLike

_TOL = 1e-9  # relative tolerance on parameter values (file values are decimal text)


@dataclass
class _Cell:
    """The nodes sharing one combination of categorical values, and how to interpolate them."""

    key: tuple[float, ...]
    rows: IntArray
    free: list[int]
    constant: dict[int, float]
    dependent: dict[int, tuple[int, FloatArray, FloatArray]]
    lo: FloatArray
    hi: FloatArray
    regular: bool
    weights: RegularWeights | SparseWeights | None = field(default=None, repr=False)


class ModelGrid:
    """A grid of model spectra: a parameter table plus fluxes on one wavelength axis.

    The fluxes live in a chunked HDF5 file (one chunk per spectrum) and are read only when
    asked for, so grids far larger than memory work; the parameter table and the wavelength
    axis are small and loaded on opening. Create files with :class:`GridWriter`
    (:meth:`create`) or a loader, open them with :func:`atmospec.grids.load_grid`.

    Interpolation (:meth:`interpolate`) is linear in log flux. On a complete rectangular
    grid (``regular``) it is multilinear between the 2^d corner nodes of the enclosing cell;
    on a sparse grid it is linear barycentric over a Delaunay triangulation of the populated
    nodes in parameter space scaled by each axis's median step. Categorical parameters (e.g.
    ``cloudy`` of Burrows 2006) are never interpolated: each of their values is a separate
    sub-grid. A parameter that the grid ties to another one (BT-Settl's ``alpha`` is fixed by
    ``mh``) follows it: it may be omitted and, if given, must agree. A point outside the grid
    raises :class:`~atmospec.errors.OutOfGridError` naming the parameter, its value and the
    allowed range: atmospec never extrapolates.

    Args:
        path: an HDF5 grid file written by :class:`GridWriter`.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5"
        >>> with ModelGrid.create(path, [1.0, 2.0], ("teff", "logg"), name="toy") as w:
        ...     for t in (1000.0, 2000.0):
        ...         for g in (4.0, 5.0):
        ...             w.add({"teff": t, "logg": g}, [t, t * g])
        >>> grid = ModelGrid(path)
        >>> len(grid), grid.regular, grid.axes["teff"].tolist()
        (4, True, [1000.0, 2000.0])
        >>> grid.interpolate({"teff": 1500.0, "logg": 4.0}).round(1).tolist()  # geometric mean
        [1414.2, 5656.9]
        >>> grid.interpolate({"teff": 900.0, "logg": 4.0})
        Traceback (most recent call last):
        ...
        atmospec.errors.OutOfGridError: toy: teff = 900 is outside the grid: allowed range 1000 to 2000 K (atmospec does not extrapolate)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataNotFoundError(f"{self.path}: no such grid file")
        try:
            with h5py.File(self.path, "r") as h5:
                if META_ATTR not in h5.attrs:
                    raise FileFormatError(
                        f"{self.path}: not an atmospec grid (no '{META_ATTR}' attribute); "
                        "write grids with atmospec.grids.GridWriter or a loader"
                    )
                meta = json.loads(h5.attrs[META_ATTR])
                missing = [k for k in ("wavelength", "flux", "params", "labels") if k not in h5]
                if missing:
                    raise FileFormatError(f"{self.path}: grid file lacks datasets {missing}")
                wave = np.asarray(h5["wavelength"][...], dtype=np.float64)
                params = np.asarray(h5["params"][...], dtype=np.float64)
                labels = h5["labels"].asstr()[...]
                self._shape = tuple(h5["flux"].shape)
        except OSError as err:
            raise FileFormatError(f"{self.path}: cannot read as HDF5 ({err})") from err
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise FileFormatError(
                f"{self.path}: grid format {meta.get('format_version')} is newer than this "
                f"atmospec understands ({FORMAT_VERSION}); upgrade atmospec"
            )
        self.metadata: dict[str, Any] = meta
        self.name: str = str(meta["name"])
        self.wavelength: FloatArray = wave
        self.param_names: tuple[str, ...] = tuple(meta["param_names"])
        self.categorical: tuple[str, ...] = tuple(meta.get("categorical", ()))
        self._values: FloatArray = params
        self.params: pd.DataFrame = pd.DataFrame(params, columns=list(self.param_names))
        self.labels: list[str] = [str(s) for s in labels]
        self.axes: dict[str, FloatArray] = {
            p: np.unique(params[:, j]) for j, p in enumerate(self.param_names)
        }
        self.bounds: dict[str, tuple[float, float]] = {
            p: (float(a[0]), float(a[-1])) for p, a in self.axes.items()
        }
        self.regular: bool = int(np.prod([a.size for a in self.axes.values()])) == len(params)
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        self._cache: FloatArray | None = None
        self._cells: list[_Cell] | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        wavelength: ArrayLike,
        param_names: Sequence[str],
        **kwargs: Any,
    ) -> GridWriter:
        """A :class:`GridWriter` for a new grid file (use it as a context manager)."""
        return GridWriter(path, wavelength, param_names, **kwargs)

    def select(
        self,
        rows: ArrayLike,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        note: str = "",
    ) -> ModelGrid:
        """Write the spectra ``rows`` (indices or boolean mask) to a new grid file and open it.

        Useful to hold out nodes (validation) or to cut a sub-grid; streams in batches.
        """
        idx = self._as_rows(rows)
        meta = self.metadata
        notes = list(meta.get("notes", [])) + ([note] if note else [])
        with GridWriter(
            path,
            self.wavelength,
            self.param_names,
            name=name or self.name,
            source=meta.get("source", ""),
            credit=meta.get("credit", ""),
            flux_unit=meta.get("flux_unit", ""),
            param_units=meta.get("param_units"),
            categorical=self.categorical,
            notes=notes,
        ) as w:
            for start in range(0, idx.size, 256):
                block = idx[start : start + 256]
                for i, f in zip(block, self.flux(block), strict=True):
                    w.add(self._values[i], f, label=self.labels[i])
        return ModelGrid(path)

    # -- basic access ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._values.shape[0])

    def __repr__(self) -> str:
        kind = "regular" if self.regular else "sparse"
        return (
            f"ModelGrid({self.name!r}, n_spectra={len(self)}, params={self.param_names}, "
            f"n_wave={self.wavelength.size}, {kind})"
        )

    @property
    def n_wave(self) -> int:
        return int(self.wavelength.size)

    @property
    def credit(self) -> str:
        return str(self.metadata.get("credit", ""))

    @property
    def flux_unit(self) -> str:
        return str(self.metadata.get("flux_unit", ""))

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def close(self) -> None:
        """Close the HDF5 handle (it reopens on the next read)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __enter__(self) -> ModelGrid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        return state

    def load(self) -> ModelGrid:
        """Read all fluxes into memory (explicit: only for grids that fit); returns self."""
        if self._cache is None:
            self._cache = np.asarray(self._file()["flux"][...], dtype=np.float64)
        return self

    def _as_rows(self, rows: ArrayLike) -> IntArray:
        idx = np.asarray(rows)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} spectra")
            return np.flatnonzero(idx)
        idx = idx.astype(np.intp).ravel()
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for grid {self.name} of {len(self)} spectra")
        return np.where(idx < 0, idx + len(self), idx)

    def _read_sorted(self, rows: IntArray) -> FloatArray:
        """Flux of sorted unique rows."""
        if self._cache is not None:
            return self._cache[rows]
        ds = self._file()["flux"]
        if rows.size == 0:
            return np.empty((0, self.n_wave))
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        if hi - lo <= 4 * rows.size:  # nearly contiguous: one slab read is faster
            return np.asarray(ds[lo:hi], dtype=np.float64)[rows - lo]
        return np.asarray(ds[rows], dtype=np.float64)

    def flux(self, idx: int | slice | ArrayLike) -> FloatArray:
        """Flux of grid rows: int -> (n_wave,); slice, int array or mask -> (n, n_wave).

        Only the requested spectra are read from disk.
        """
        if isinstance(idx, (int, np.integer)):
            return self.flux(np.array([idx]))[0]
        if isinstance(idx, slice):
            if self._cache is not None:
                return self._cache[idx]
            start, stop, step = idx.indices(len(self))
            if step == 1:
                return np.asarray(self._file()["flux"][start:stop], dtype=np.float64)
            idx = np.arange(start, stop, step)
        rows = self._as_rows(idx)
        uniq, inverse = np.unique(rows, return_inverse=True)
        return self._read_sorted(uniq)[inverse]

    def iter_batches(
        self, batch_size: int = 256, rows: ArrayLike | None = None
    ) -> Iterator[tuple[IntArray, FloatArray]]:
        """Yield ``(row indices, flux)`` in batches of ``batch_size``, in row order."""
        idx = np.arange(len(self)) if rows is None else np.sort(self._as_rows(rows))
        for start in range(0, idx.size, batch_size):
            block = idx[start : start + batch_size]
            yield block, self.flux(block)

    def node_index(self, point: Point) -> IntArray:
        """Grid row of each point that is exactly a node (within 1e-9 relative), else -1."""
        x, _ = self._as_points(point, fill_dependent=False)
        scale = np.maximum(np.abs(self._values).max(axis=0), 1.0)
        lookup = {tuple(np.round(v / scale, 9)): i for i, v in enumerate(self._values)}
        return np.array([lookup.get(tuple(np.round(v / scale, 9)), -1) for v in x], dtype=np.intp)

    # -- interpolation ----------------------------------------------------------------------
    def _as_points(self, points: Point, *, fill_dependent: bool = True) -> tuple[FloatArray, bool]:
        d = len(self.param_names)
        if isinstance(points, Mapping):
            unknown = [k for k in points if k not in self.param_names]
            if unknown:
                raise OutOfGridError(
                    f"{self.name}: unknown parameter(s) {unknown}; this grid has "
                    f"{list(self.param_names)}"
                )
            dependent = self._dependent_names()
            missing = [p for p in self.param_names if p not in points and p not in dependent]
            if missing:
                raise OutOfGridError(
                    f"{self.name}: missing parameter(s) {missing}; a point needs "
                    f"{[p for p in self.param_names if p not in dependent]}"
                )
            cols = [
                np.atleast_1d(np.asarray(points.get(p, np.nan), dtype=np.float64))
                for p in self.param_names
            ]
            single = all(np.ndim(points.get(p, 0.0)) == 0 for p in self.param_names)
            x = np.stack(np.broadcast_arrays(*cols), axis=1)
        else:
            arr = np.asarray(points, dtype=np.float64)
            single = arr.ndim == 1
            x = np.atleast_2d(arr)
            if x.ndim != 2 or x.shape[1] != d:
                raise OutOfGridError(
                    f"{self.name}: points must have {d} columns {list(self.param_names)}, "
                    f"got shape {arr.shape}"
                )
        if np.isnan(x).any() and not fill_dependent:
            raise OutOfGridError(f"{self.name}: NaN parameter values")
        return x.copy(), single

    def _dependent_names(self) -> set[str]:
        return {self.param_names[q] for c in self._get_cells() for q in c.dependent}

    def _get_cells(self) -> list[_Cell]:
        if self._cells is None:
            self._cells = _build_cells(self._values, self.param_names, self.categorical)
        return self._cells

    def _check(self, x: FloatArray) -> IntArray:
        """Cell of each point (-1 outside the grid); clips to the bounds, fills tied parameters.

        ``x`` is modified in place: values within the 1e-9 tolerance of a bound are set to the
        bound and omitted (NaN) tied parameters are filled from the parameter that fixes them.
        """
        n = x.shape[0]
        cells = self._get_cells()
        cat = [self.param_names.index(c) for c in self.categorical]
        tol = self._tolerance()
        candidate = np.zeros(n, dtype=np.intp)
        if cat:
            candidate[:] = -1
            for k, c in enumerate(cells):
                hit = np.all(np.abs(x[:, cat] - np.array(c.key)) <= 1e-9, axis=1)
                candidate[hit] = k
        cell_of = np.full(n, -1, dtype=np.intp)
        for k, c in enumerate(cells):
            sel = np.flatnonzero(candidate == k)
            if sel.size == 0:
                continue
            xs = x[sel]
            ok = np.ones(sel.size, dtype=bool)
            for j in c.free:
                ok &= (xs[:, j] >= c.lo[j] - tol[j]) & (xs[:, j] <= c.hi[j] + tol[j])
                xs[:, j] = np.clip(xs[:, j], c.lo[j], c.hi[j])
            for j, val in c.constant.items():
                xs[np.isnan(xs[:, j]), j] = val  # an omitted tied parameter
                ok &= np.abs(xs[:, j] - val) <= tol[j]
                xs[ok, j] = val
            for q, (pj, xp, fp) in c.dependent.items():
                expect = np.interp(xs[:, pj], xp, fp)
                missing = np.isnan(xs[:, q])
                xs[missing, q] = expect[missing]
                ok &= np.abs(xs[:, q] - expect) <= max(tol[q], 1e-6)
            if isinstance(c.weights, SparseWeights) and ok.any():
                inside = c.weights.inside(
                    xs[np.ix_(np.flatnonzero(ok), np.asarray(c.free, dtype=np.intp))]
                )
                ok[np.flatnonzero(ok)] = inside
            x[sel] = xs
            cell_of[sel[ok]] = k
        return cell_of

    def _tolerance(self) -> FloatArray:
        span = np.array([hi - lo for lo, hi in self.bounds.values()])
        return _TOL * np.maximum(span, 1.0)

    def _explain(self, v: FloatArray) -> str:
        """Why the point ``v`` (one row) cannot be interpolated: parameter, value, range."""
        cells = self._get_cells()
        cat = [self.param_names.index(c) for c in self.categorical]
        tol = self._tolerance()
        units = self.metadata.get("param_units", {})
        k = 0
        if cat:
            match = [
                k for k, c in enumerate(cells) if np.all(np.abs(v[cat] - np.array(c.key)) <= 1e-9)
            ]
            if not match:
                bad = [j for j in cat if not np.isclose(self.axes[self.param_names[j]], v[j]).any()]
                if not bad:
                    combo = ", ".join(f"{self.param_names[j]} = {v[j]:g}" for j in cat)
                    return f"{self.name}: the grid has no spectra with {combo}"
                p = self.param_names[bad[0]]
                return (
                    f"{self.name}: {p} = {v[bad[0]]:g} is not one of the grid's values "
                    f"{self.axes[p].tolist()} ({p} is categorical: never interpolated)"
                )
            k = match[0]
        c = cells[k]
        where = _cell_label(self.param_names, self.categorical, c.key)
        for j in c.free:
            if np.isnan(v[j]) or not (c.lo[j] - tol[j] <= v[j] <= c.hi[j] + tol[j]):
                p = self.param_names[j]
                return (
                    f"{self.name}: {p} = {v[j]:g} is outside the grid{where}: allowed range "
                    f"{c.lo[j]:g} to {c.hi[j]:g}{_unit(units.get(p, ''))} "
                    "(atmospec does not extrapolate)"
                )
        for j, val in c.constant.items():
            if not np.isnan(v[j]) and not abs(v[j] - val) <= tol[j]:
                p = self.param_names[j]
                return (
                    f"{self.name}: {p} = {v[j]:g} is outside the grid{where}: the only "
                    f"value available is {p} = {val:g}{_unit(units.get(p, ''))}"
                )
        for q, (pj, xp, fp) in c.dependent.items():
            expect = float(np.interp(v[pj], xp, fp))
            if not np.isnan(v[q]) and not abs(v[q] - expect) <= max(tol[q], 1e-6):
                pq, pp = self.param_names[q], self.param_names[pj]
                return (
                    f"{self.name}: {pq} = {v[q]:g} is outside the grid{where}: {pq} is "
                    f"tied to {pp} in this grid and at {pp} = {v[pj]:g} the allowed "
                    f"value is {pq} = {expect:g} (omit {pq} to use it)"
                )
        return self._hull_message(v, c, where)

    def _hull_message(self, v: FloatArray, c: _Cell, where: str) -> str:
        """Name the parameter whose value is not available near the point in a sparse grid."""
        vals = self._values[c.rows]
        assert isinstance(c.weights, SparseWeights)
        scale = c.weights.scale
        point = ", ".join(f"{self.param_names[j]}={v[j]:g}" for j in c.free)
        for reach in (0.5, 1.0):  # same line of nodes first, then one step around it
            msg = self._local_range(v, c, where, vals, scale, reach)
            if msg:
                return msg
        return (
            f"{self.name}: the point ({point}) is inside every parameter's range but outside "
            f"the convex hull of the populated nodes{where} ({self.name} is sparse: not every "
            "combination was computed; atmospec does not extrapolate)"
        )

    def _local_range(
        self,
        v: FloatArray,
        c: _Cell,
        where: str,
        vals: FloatArray,
        scale: FloatArray,
        reach: float,
    ) -> str | None:
        units = self.metadata.get("param_units", {})
        for a, j in enumerate(c.free):
            others = [b for b in range(len(c.free)) if b != a]
            near = np.ones(len(vals), dtype=bool)
            for b in others:
                jb = c.free[b]
                near &= np.abs(vals[:, jb] - v[jb]) <= scale[b] * reach * (1 + 1e-9)
            if not near.any():
                continue
            lo, hi = vals[near, j].min(), vals[near, j].max()
            if not lo - 1e-9 <= v[j] <= hi + 1e-9:
                p = self.param_names[j]
                ctx = ", ".join(f"{self.param_names[c.free[b]]}~{v[c.free[b]]:g}" for b in others)
                return (
                    f"{self.name}: {p} = {v[j]:g} is outside the populated part of the grid"
                    f"{where} near {ctx}: allowed range there {lo:g} to {hi:g}"
                    f"{_unit(units.get(p, ''))} ({self.name} is sparse: not every combination "
                    "was computed; atmospec does not extrapolate)"
                )
        return None

    def contains(self, points: Point) -> NDArray[np.bool_]:
        """True for each point that can be interpolated (inside the grid's hull)."""
        x, single = self._as_points(points)
        ok = self._check(x) >= 0
        return ok[0] if single else ok

    def weights(self, points: Point) -> tuple[IntArray, FloatArray]:
        """Grid rows and interpolation weights for each point, padded to a common width."""
        x, _ = self._as_points(points)
        original = x.copy()
        cell_of = self._check(x)
        bad = np.flatnonzero(cell_of < 0)
        if bad.size:
            extra = f" [{bad.size} of {len(x)} points are outside]" if len(x) > 1 else ""
            raise OutOfGridError(f"{self._explain(original[int(bad[0])])}{extra}")
        cells = self._get_cells()
        parts: dict[int, tuple[IntArray, FloatArray]] = {}
        width = 1
        for k in np.unique(cell_of):
            c = cells[int(k)]
            sel = np.flatnonzero(cell_of == k)
            if c.weights is None:
                r = np.full((sel.size, 1), c.rows[0], dtype=np.intp)
                w = np.ones((sel.size, 1))
            else:
                r, w = c.weights(x[np.ix_(sel, np.asarray(c.free, dtype=np.intp))])
            parts[int(k)] = (r, w)
            width = max(width, r.shape[1])
        rows = np.zeros((len(x), width), dtype=np.intp)
        weights = np.zeros((len(x), width))
        for k, (r, w) in parts.items():
            sel = np.flatnonzero(cell_of == k)
            rows[sel, : r.shape[1]] = r
            rows[sel, r.shape[1] :] = r[:, :1]
            weights[sel, : r.shape[1]] = w
        return rows, weights

    def interpolate(self, points: Point) -> FloatArray:
        """Model flux at parameter points, linear in log flux (see the class docstring).

        Args:
            points: a mapping ``{param: value}`` (values may be arrays) or an array of shape
                (d,) or (n, d) in ``param_names`` order.

        Returns:
            (n_wave,) for a single point, else (n, n_wave).

        Raises:
            OutOfGridError: a point is outside the grid (message: parameter, value, range).
        """
        _, single = self._as_points(points)
        rows, weights = self.weights(points)
        out = combine_log(rows, weights, self._read_sorted)
        return out[0] if single else out

    def spectrum(self, idx_or_point: int | Point) -> Any:
        """A :class:`~atmospec.spectrum.Spectrum` of one node (int) or an interpolated point."""
        from atmospec.spectrum import Spectrum

        if isinstance(idx_or_point, (int, np.integer)):
            row = int(self._as_rows([int(idx_or_point)])[0])
            flux = self.flux(row)
            values = self._values[row]
            label = self.labels[row]
            interpolated = False
        else:
            x, _ = self._as_points(idx_or_point)
            if x.shape[0] != 1:
                raise OutOfGridError(f"{self.name}: spectrum() takes one point, got {x.shape[0]}")
            rows, w = self.weights(x)
            flux = combine_log(rows, w, self._read_sorted)[0]
            values = x[0]
            label = "interpolated"
            interpolated = True
        params = {p: float(v) for p, v in zip(self.param_names, values, strict=True)}
        name = f"{self.name} " + " ".join(f"{p}={v:g}" for p, v in params.items())
        meta = {
            "source": f"{self.name}:{label}",
            "grid": self.name,
            "params": params,
            "interpolated": interpolated,
            "credit": self.credit,
        }
        return Spectrum(self.wavelength, flux, flux_unit=self.flux_unit, name=name, meta=meta)

    def summary(self) -> dict[str, Any]:
        """What ``atmospec grids`` prints: size, axes, ranges, regularity, wavelengths, credit."""
        return {
            "name": self.name,
            "path": str(self.path),
            "n_spectra": len(self),
            "param_names": list(self.param_names),
            "axes": {p: a.tolist() for p, a in self.axes.items()},
            "ranges": {p: list(b) for p, b in self.bounds.items()},
            "param_units": self.metadata.get("param_units", {}),
            "categorical": list(self.categorical),
            "value_labels": self.metadata.get("value_labels", {}),
            "regular": self.regular,
            "wavelength_range": [float(self.wavelength[0]), float(self.wavelength[-1])],
            "n_wave": self.n_wave,
            "flux_unit": self.flux_unit,
            "source": self.metadata.get("source", ""),
            "credit": self.credit,
            "notes": self.metadata.get("notes", []),
        }


def _unit(u: str) -> str:
    return f" {u}" if u else ""


def _cell_label(
    names: tuple[str, ...], categorical: tuple[str, ...], key: tuple[float, ...]
) -> str:
    if not categorical:
        return ""
    return " for " + ", ".join(f"{p} = {v:g}" for p, v in zip(categorical, key, strict=True))


def _build_cells(
    values: FloatArray, names: tuple[str, ...], categorical: tuple[str, ...]
) -> list[_Cell]:
    cat = [names.index(c) for c in categorical]
    keys = [()] if not cat else [tuple(r) for r in np.unique(values[:, cat], axis=0)]
    cells = []
    for key in keys:
        in_cell = np.ones(len(values), dtype=bool)
        for j, val in zip(cat, key, strict=True):
            in_cell &= values[:, j] == val
        rows = np.flatnonzero(in_cell)
        v = values[rows]
        numeric = [j for j in range(len(names)) if j not in cat]
        constant = {j: float(v[0, j]) for j in numeric if np.unique(v[:, j]).size == 1}
        varying = [j for j in numeric if j not in constant]
        dependent = _dependencies(v, varying)
        free = [j for j in varying if j not in dependent]
        lo = v.min(axis=0)
        hi = v.max(axis=0)
        axes = [np.unique(v[:, j]) for j in free]
        regular = int(np.prod([a.size for a in axes])) == len(rows) if free else True
        weights: RegularWeights | SparseWeights | None
        if not free:
            weights = None
        elif regular:
            lattice = np.full([a.size for a in axes], -1, dtype=np.intp)
            pos = tuple(np.searchsorted(a, v[:, j]) for a, j in zip(axes, free, strict=True))
            lattice[pos] = rows
            weights = RegularWeights(axes, lattice)
        else:
            try:
                weights = SparseWeights(v[:, free], rows)
            except Exception as err:  # qhull: degenerate node set
                raise FileFormatError(
                    f"cannot triangulate the populated nodes over {[names[j] for j in free]}: {err}"
                ) from err
        cells.append(
            _Cell(
                key=tuple(float(k) for k in key),
                rows=rows,
                free=free,
                constant=constant,
                dependent=dependent,
                lo=lo,
                hi=hi,
                regular=regular,
                weights=weights,
            )
        )
    return cells


def _dependencies(
    v: FloatArray, varying: list[int]
) -> dict[int, tuple[int, FloatArray, FloatArray]]:
    """Parameters q fixed by another parameter p (each p value has one q value, not vice versa)."""
    out: dict[int, tuple[int, FloatArray, FloatArray]] = {}
    for q in varying:
        for p in varying:
            if p == q or p in out:
                continue
            pairs = np.unique(v[:, [p, q]], axis=0)
            p_vals = np.unique(pairs[:, 0])
            q_vals = np.unique(pairs[:, 1])
            if p_vals.size == len(pairs) and q_vals.size < len(pairs):
                out[q] = (p, pairs[:, 0].copy(), pairs[:, 1].copy())
                break
    return out
