"""The options of a batch prediction (``atmospec predict`` and ``atmospec scale predict``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from atmospec.prediction.coverage import POLICIES

__all__ = ["BatchOptions"]


_READ_OPTIONS = (
    "wave_unit",
    "flux_unit",
    "wave_col",
    "flux_col",
    "err_col",
    "resolution",
    "aperture",
)
"""How each file is read: options of :func:`atmospec.io.read`, and the stated resolving power."""


@dataclass(frozen=True)
class BatchOptions:
    """Every option of a batch prediction, with the defaults of ``atmospec predict``.

    The first group decides the rows (a rerun into the same folder must use the same values);
    the second only how the work is done.

    Example:
        >>> opts = BatchOptions(draws=200, wave_unit="um", threads=4)
        >>> opts.read_options(), opts.row_options()["draws"], opts.predictor_kwargs()["num_threads"]
        ({'wave_unit': 'um'}, 200, 4)
        >>> BatchOptions(coverage="all")
        Traceback (most recent call last):
        ...
        ValueError: coverage must be gaps, refuse or mask, not 'all'
    """

    model: str = "default"
    grid: str | None = None
    draws: int = 1000
    coverage: str = "gaps"
    max_masked_fraction: float = 0.5
    assume_snr: float | None = None
    ood: bool = True
    seed: int = 0
    precision: str = "float32"
    partition_size: int = 256
    # how files are read (None: the reader's default, or its column-synonym match)
    wave_unit: str | None = None
    flux_unit: str | None = None
    wave_col: str | None = None
    flux_col: str | None = None
    err_col: str | None = None
    # the spectra's resolving power (lambda / FWHM) when the user states it: one number, or a
    # curve {"wavelength": [...], "R": [...]} (atmospec.resolution.read_resolution)
    resolution: float | dict[str, list[float]] | None = None
    # which spectrum of a file holding several (FITS apertures / orders)
    aperture: int | None = None
    # how the work is done (does not change the rows)
    threads: int | None = None
    plots: bool = True
    max_plots: int | None = 100
    retry_failed: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.coverage not in POLICIES:
            raise ValueError(f"coverage must be gaps, refuse or mask, not {self.coverage!r}")
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be float32 or bfloat16, not {self.precision!r}")
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, not {self.draws}")
        if not 0.0 <= self.max_masked_fraction <= 1.0:  # also refuses nan
            raise ValueError(
                f"max_masked_fraction must be a fraction in [0, 1], not {self.max_masked_fraction}"
            )
        if self.assume_snr is not None and not 0.0 < self.assume_snr < float("inf"):
            raise ValueError(f"assume_snr must be a positive finite S/N, not {self.assume_snr}")
        if self.resolution is not None:
            from atmospec.resolution import check_resolution

            check_resolution(self.resolution)
        if self.aperture is not None and self.aperture < 0:
            raise ValueError(f"aperture counts from 0, not {self.aperture}")
        if self.partition_size < 1:
            raise ValueError(f"partition_size must be >= 1, not {self.partition_size}")

    def predictor_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`~atmospec.prediction.predictor.Predictor`."""
        return {
            "grid": self.grid,
            "ood": self.ood,
            "draws": self.draws,
            "coverage": self.coverage,
            "max_masked_fraction": self.max_masked_fraction,
            "assume_snr": self.assume_snr,
            "seed": self.seed,
            "num_threads": self.threads,
            "precision": self.precision,
        }

    def row_options(self) -> dict[str, Any]:
        """The options that decide the rows (recorded, and checked when a run resumes)."""
        keep = (
            "grid",
            "draws",
            "coverage",
            "max_masked_fraction",
            "assume_snr",
            "ood",
            "seed",
            "precision",
            "partition_size",
            *_READ_OPTIONS,
        )
        return {k: v for k, v in asdict(self).items() if k in keep}

    def read_options(self) -> dict[str, Any]:
        """The options given to :func:`atmospec.io.read` for every spectrum file (the ones
        set), on the local and the Dask executor alike; ``resolution`` is stated on every
        spectrum read (:meth:`~atmospec.prediction.sources.Partition.load`)."""
        return {k: getattr(self, k) for k in _READ_OPTIONS if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
