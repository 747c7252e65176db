"""GridWriter: stream spectra into a chunked, compressed HDF5 model-grid file, atomically."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
from numpy.typing import ArrayLike, NDArray

from atmospec._fileio import atomic_path
from atmospec.errors import FileFormatError, InvalidSpectrumError

__all__ = ["GridWriter", "FORMAT_VERSION", "META_ATTR"]

#: Version of the on-disk layout; bumped when the layout changes incompatibly.
FORMAT_VERSION = 1
#: Name of the HDF5 root attribute that holds the grid metadata as JSON.
META_ATTR = "atmospec_grid"


class GridWriter:
    """Write a model grid to HDF5 one spectrum (or batch) at a time, without holding it in RAM.

    Layout of the file (all at the root group):

    - ``wavelength`` (n_wave,) float64, micron, strictly increasing;
    - ``flux`` (n_spectra, n_wave), chunked one spectrum per chunk, gzip-compressed;
    - ``params`` (n_spectra, n_params) float64, columns in ``param_names`` order;
    - ``labels`` (n_spectra,) UTF-8 strings: where each spectrum came from (file name);
    - root attribute ``atmospec_grid``: JSON metadata (name, source, credit, flux unit,
      parameter names and units, categorical parameters, notes, atmospec version).

    The file is written under a temporary name and moved into place only when the writer
    closes without error, so a crash never leaves a half-written grid behind.

    Args:
        path: the ``.h5`` file to create (replaced if present).
        wavelength: the common wavelength axis in micron, strictly increasing.
        param_names: parameter names (see :data:`atmospec.grids.PARAMETERS`).
        name: short grid name (``"dback24"``).
        source: where the spectra came from (folder, URL, distribution).
        credit: the acknowledgement to carry with anything produced from this grid.
        flux_unit: astropy unit string of the flux (``"erg / (s cm2 um)"``).
        param_units: unit per parameter; defaults from :data:`PARAMETERS`.
        categorical: parameters whose values are labels, never interpolated between.
        notes: free-text remarks (rounding of file values, resampling, ...).
        dtype: on-disk flux dtype (float32 halves the size; model fluxes need no more).
        buffer: number of spectra buffered in memory between writes.
        builder: identifies the loader (and its version) that wrote the file; cached grids
            whose builder differs from the current loader's are rebuilt.
        value_labels: names of special parameter values, e.g. ``{"fsed": {10: "nc"}}``.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from atmospec.grids import GridWriter, ModelGrid
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5"
        >>> wave = np.linspace(1.0, 2.0, 5)
        >>> with GridWriter(path, wave, ("teff",), name="toy") as w:
        ...     for t in (1000.0, 1100.0):
        ...         w.add({"teff": t}, np.full(5, t), label=f"t{t:.0f}")
        >>> len(ModelGrid(path))
        2
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        wavelength: ArrayLike,
        param_names: Sequence[str],
        *,
        name: str,
        source: str = "",
        credit: str = "",
        flux_unit: str = "",
        param_units: Mapping[str, str] | None = None,
        categorical: Sequence[str] = (),
        notes: Sequence[str] = (),
        dtype: str = "float32",
        buffer: int = 256,
        builder: str = "",
        value_labels: Mapping[str, Mapping[float, str]] | None = None,
    ) -> None:
        from atmospec.grids.parameters import PARAMETERS

        self.path = Path(path)
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        if self.wavelength.ndim != 1 or self.wavelength.size < 2:
            raise InvalidSpectrumError(f"{self.path}: the wavelength axis must be 1-D, >= 2 points")
        if not (np.isfinite(self.wavelength).all() and (np.diff(self.wavelength) > 0).all()):
            raise InvalidSpectrumError(
                f"{self.path}: the wavelength axis must be finite and strictly increasing"
            )
        self.param_names = tuple(str(p) for p in param_names)
        if len(set(self.param_names)) != len(self.param_names) or not self.param_names:
            raise ValueError(f"param_names must be unique and non-empty, got {self.param_names}")
        unknown = [c for c in categorical if c not in self.param_names]
        if unknown:
            raise ValueError(f"categorical parameters {unknown} are not in {self.param_names}")
        units = dict(param_units or {})
        self.meta: dict[str, Any] = {
            "name": name,
            "source": source,
            "credit": credit,
            "flux_unit": flux_unit,
            "wave_unit": "um",
            "param_names": list(self.param_names),
            "param_units": {
                p: units.get(p, PARAMETERS.get(p, ("", ""))[0]) for p in self.param_names
            },
            "categorical": list(categorical),
            "notes": list(notes),
            "builder": builder,
            "value_labels": {
                p: {f"{float(v):g}": str(t) for v, t in labels.items()}
                for p, labels in (value_labels or {}).items()
            },
        }
        self.dtype = np.dtype(dtype)
        self.buffer = max(1, int(buffer))
        self._params: list[NDArray[np.float64]] = []
        self._flux: list[NDArray[np.float64]] = []
        self._labels: list[str] = []
        self._n = 0
        self._stack: contextlib.ExitStack | None = None
        self._h5: h5py.File | None = None

    # -- context management -------------------------------------------------------------
    def __enter__(self) -> GridWriter:
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(atomic_path(self.path))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a grid file is ordinary data
        self._h5 = h5py.File(tmp, "w")
        stack.callback(self._h5.close)
        self._stack = stack
        n_wave = self.wavelength.size
        h5 = self._h5
        h5.create_dataset("wavelength", data=self.wavelength)
        h5.create_dataset(
            "flux",
            shape=(0, n_wave),
            maxshape=(None, n_wave),
            dtype=self.dtype,
            chunks=(1, n_wave),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
        )
        d = len(self.param_names)
        h5.create_dataset(
            "params", shape=(0, d), maxshape=(None, d), dtype=np.float64, chunks=(4096, d)
        )
        h5.create_dataset(
            "labels",
            shape=(0,),
            maxshape=(None,),
            dtype=h5py.string_dtype("utf-8"),
            chunks=(4096,),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        try:
            if exc_type is None:
                self._flush()
                self._finalise()
        except BaseException:
            self._stack.__exit__(*_exc_info())
            raise
        self._stack.__exit__(exc_type, exc, tb)
        self._stack = None
        if exc_type is None:  # the sha256 sidecar, verified whenever the grid is opened
            from atmospec._fileio import write_checksum

            write_checksum(self.path)

    # -- writing -------------------------------------------------------------------------
    def add(
        self,
        params: Mapping[str, float] | Sequence[float] | NDArray[np.float64],
        flux: ArrayLike,
        *,
        label: str = "",
    ) -> None:
        """Append one spectrum with its parameter values (mapping or sequence in order).

        ``label`` names the origin (a file name); it appears in every error about this
        spectrum and in ``grid check`` reports. Flux must be finite and positive.
        """
        if self._h5 is None:
            raise RuntimeError("use GridWriter as a context manager: `with GridWriter(...) as w:`")
        label = label or f"spectrum {self._n + len(self._labels)}"
        row = self._param_row(params, label)
        f = np.asarray(flux, dtype=np.float64)
        if f.shape != self.wavelength.shape:
            raise InvalidSpectrumError(
                f"{label}: flux has {f.size} points but the grid's wavelength axis has "
                f"{self.wavelength.size}"
            )
        bad = ~np.isfinite(f)
        if bad.any():
            i = int(np.argmax(bad))
            raise InvalidSpectrumError(
                f"{label}: {int(bad.sum())} flux value(s) are NaN or infinite (first at "
                f"{self.wavelength[i]:g} um); model-grid flux must be finite"
            )
        if (f <= 0).any():
            i = int(np.argmax(f <= 0))
            raise InvalidSpectrumError(
                f"{label}: {int((f <= 0).sum())} flux value(s) are zero or negative (first "
                f"{f[i]:g} at {self.wavelength[i]:g} um); model-grid flux must be positive "
                "(interpolation works in log flux)"
            )
        if self.dtype == np.float32 and (f < 1e-37).any():
            raise InvalidSpectrumError(
                f"{label}: flux values below 1e-37 underflow float32; rescale the flux or "
                "write the grid with dtype='float64'"
            )
        self._params.append(row)
        self._flux.append(f)
        self._labels.append(label)
        if len(self._labels) >= self.buffer:
            self._flush()

    def _param_row(
        self, params: Mapping[str, float] | Sequence[float] | NDArray[np.float64], label: str
    ) -> NDArray[np.float64]:
        if isinstance(params, Mapping):
            missing = [p for p in self.param_names if p not in params]
            extra = [p for p in params if p not in self.param_names]
            if missing or extra:
                raise FileFormatError(
                    f"{label}: parameters {dict(params)} do not match the grid's "
                    f"{self.param_names} (missing {missing}, unexpected {extra})"
                )
            row = np.array([float(params[p]) for p in self.param_names], dtype=np.float64)
        else:
            row = np.asarray(params, dtype=np.float64).ravel()
            if row.size != len(self.param_names):
                raise FileFormatError(
                    f"{label}: {row.size} parameter values for {len(self.param_names)} "
                    f"parameters {self.param_names}"
                )
        if not np.isfinite(row).all():
            raise FileFormatError(f"{label}: parameter values {row.tolist()} are not all finite")
        return row

    def _flush(self) -> None:
        if not self._labels:
            return
        assert self._h5 is not None
        k = len(self._labels)
        n0 = self._n
        for key, block in (
            ("flux", np.stack(self._flux).astype(self.dtype)),
            ("params", np.stack(self._params)),
            ("labels", np.array(self._labels, dtype=object)),
        ):
            ds = self._h5[key]
            ds.resize(n0 + k, axis=0)
            ds[n0 : n0 + k] = block
        self._n += k
        self._params.clear()
        self._flux.clear()
        self._labels.clear()

    def _finalise(self) -> None:
        assert self._h5 is not None
        if self._n == 0:
            raise FileFormatError(f"{self.path}: no spectra were added to grid {self.meta['name']}")
        params = self._h5["params"][...]
        _, first, counts = np.unique(params, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            labels = self._h5["labels"].asstr()[...]
            dup = params[first[np.argmax(counts > 1)]]
            same = np.flatnonzero((params == dup).all(axis=1))
            raise FileFormatError(
                f"grid {self.meta['name']}: {int((counts > 1).sum())} parameter point(s) appear "
                f"more than once, e.g. {dict(zip(self.param_names, dup.tolist(), strict=True))} in "
                f"{[labels[i] for i in same[:4]]}; each grid node must be unique"
            )
        from atmospec import __version__

        meta = dict(self.meta)
        meta.update(
            n_spectra=int(self._n),
            atmospec_version=__version__,
            format_version=FORMAT_VERSION,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        )
        self._h5.attrs[META_ATTR] = json.dumps(meta)


def _exc_info() -> tuple[Any, Any, Any]:
    import sys

    return sys.exc_info()
