"""One-call workflows behind the CLI: clone a template, fit an HPF file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import CoverageError, FileFormatError
from atmospec.highres.emulator import LineEmulator, clone
from atmospec.highres.fit import FitResult, fit_spectrum
from atmospec.highres.io import MULER_TEMPLATES, read_hpf, read_muler_template
from atmospec.highres.linefinder import continuum_envelope
from atmospec.spectrum import Spectrum

__all__ = [
    "TEMPLATE_TEFF",
    "clone_template",
    "fit_file",
    "load_template",
    "normalize_order",
    "order_template",
    "transfer_file",
]


def load_template(
    source: str, band: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength (Å) and flux of a muler template name or a CSV/text file (Å, flux) in ``band``.

    Example:
        >>> import pathlib, tempfile
        >>> w = np.arange(8690.0, 8720.5, 0.5)
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "template.csv"
        >>> np.savetxt(path, np.column_stack([w, np.ones(w.size)]), delimiter=",",
        ...            header="wavelength,flux", comments="")
        >>> wl, fl = load_template(str(path), band=(8700.0, 8710.0))
        >>> wl.size, float(wl[0]), float(wl[-1]), float(fl.mean())
        (21, 8700.0, 8710.0, 1.0)
    """
    if source in MULER_TEMPLATES:
        spec = read_muler_template(source)
        w, f = spec.wavelength * 1e4, spec.flux
    else:
        path = Path(source)
        if not path.is_file():
            raise FileFormatError(
                f"{source}: neither a muler template ({sorted(MULER_TEMPLATES)}) nor a file"
            )
        try:
            arr = np.loadtxt(
                path,
                delimiter="," if path.suffix == ".csv" else None,
                skiprows=1 if path.suffix == ".csv" else 0,
                usecols=(0, 1),
            )
        except ValueError as err:
            raise FileFormatError(
                f"{path}: expected two columns, wavelength (Å) and flux ({err})"
            ) from err
        w, f = arr[:, 0], arr[:, 1]
        bad = ~(np.isfinite(w) & np.isfinite(f))
        if bad.any():
            raise FileFormatError(
                f"{path}: {int(bad.sum())} row(s) with a non-finite wavelength or flux (first "
                f"at data row {int(np.argmax(bad)) + 1}); remove or mask them before cloning"
            )
    if band is not None:
        m = (w >= band[0]) & (w <= band[1])
        if m.sum() < 10:
            raise CoverageError(f"{source}: fewer than 10 points in the band {band} Å")
        w, f = w[m], f[m]
    return w, f


def clone_template(
    source: str,
    band: tuple[float, float] | None = None,
    *,
    continuum_window: float = 100.0,
    normalized: bool = False,
    **kwargs: Any,
) -> tuple[LineEmulator, np.ndarray, np.ndarray]:
    """Normalise a template's continuum (unless ``normalized``) and :func:`clone` it.

    The continuum is the upper envelope in chunks of ``continuum_window`` Å (at most a third
    of the band).

    Returns the trained emulator, the wavelengths (Å) and the normalised flux it was fitted to.

    Example:
        >>> import pathlib, tempfile
        >>> w = np.arange(8698.0, 8714.0, 0.02)            # a template file: two lines, Å
        >>> tau = 0.3 * np.exp(-0.5 * ((w - 8702.0) / 0.04) ** 2) + 0.2 * np.exp(
        ...     -0.5 * ((w - 8708.0) / 0.04) ** 2)
        >>> tmpl = pathlib.Path(tempfile.mkdtemp()) / "template.csv"
        >>> np.savetxt(tmpl, np.column_stack([w, (1.0 + 1e-3 * (w - 8700.0)) * np.exp(-tau)]),
        ...            delimiter=",", header="wavelength,flux", comments="")
        >>> em, wl, fn = clone_template(str(tmpl), rounds=1, epochs=50, device="cpu")
        >>> em.n_lines, em.lines().center.round(1).tolist(), round(float(fn.max()), 3)
        (2, [8702.0, 8708.0], 1.0)
    """
    w, f = load_template(source, band)
    continuum_window = min(continuum_window, (w[-1] - w[0]) / 3.0)
    fn = (
        f
        if normalized
        else f / continuum_envelope(w, f, window=continuum_window, quantile=1.0, smooth=1)
    )
    kwargs.setdefault("max_window", 60.0)
    return clone(w, fn, **kwargs), w, fn


def normalize_order(spec: Spectrum, *, window: float = 8.0, quantile: float = 0.95) -> Spectrum:
    """Divide an echelle order by its upper envelope (blaze and continuum); wavelengths kept.

    Example:
        >>> w = np.linspace(8700.0, 8712.0, 600)
        >>> f = 2.0 * (1.0 - 0.3 * np.exp(-0.5 * ((w - 8705.0) / 0.05) ** 2))   # blaze 2
        >>> out = normalize_order(Spectrum(w, f, np.full(w.size, 0.02), wave_unit="AA"))
        >>> round(float(out.flux.max()), 3), round(float(out.flux.min()), 2)
        (1.0, 0.7)
        >>> round(float(out.uncertainty[0]), 4), round(float(out.wavelength[0]), 4)   # µm
        (0.01, 0.87)
    """
    good = ~spec.mask
    w = spec.wavelength
    cont = continuum_envelope(w[good], spec.flux[good], window=window * 1e-4, quantile=quantile)
    cont = np.interp(w, w[good], cont)
    unc = None if spec.uncertainty is None else spec.uncertainty / cont
    return spec.with_arrays(spec.wavelength, spec.flux / cont, unc, spec.mask)


def _order_and_star(
    path: str | Path,
    order: int | None,
    star: LineEmulator | None,
    template: str,
    device: str | None,
) -> tuple[Any, Any, LineEmulator]:
    """One continuum-normalised order of an HPF file, its wavelengths in Å, and the star's
    line emulator: ``star``, or a clone of ``template`` over the order (±20 Å)."""
    orders = read_hpf(path, order=order)
    if len(orders) != 1:
        raise FileFormatError(
            f"{path}: {len(orders)} orders; choose one with order=0..{len(orders) - 1}"
        )
    spec = normalize_order(orders[0])
    w = spec.wavelength * 1e4
    if star is None:
        star, _, _ = clone_template(
            template,
            (w[0] - 20.0, w[-1] + 20.0),
            prominence=0.005,
            rounds=2,
            epochs=200,
            profile="pseudo-voigt",
            device=device,
        )
    return spec, w, star


def fit_file(
    path: str | Path,
    *,
    star: LineEmulator | None = None,
    order: int | None = None,
    template: str = "phoenix",
    device: str | None = None,
    **kwargs: Any,
) -> FitResult:
    """Read an HPF file, continuum-normalise one order and fit it from a clone.

    Without ``star`` a clone of ``template`` over the order's range (±20 Å) is trained first.
    For Goldilocks files ``order`` is required (0-27); the WASP-69 stack has one order.

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> from atmospec.highres import ExtrinsicModel, LineList
        >>> star = LineEmulator(LineList([8702.0, 8708.0], [0.03, 0.02], [0.04, 0.04],
        ...                              [0.005, 0.005]), device="cpu")
        >>> w = np.linspace(8700.0, 8712.0, 600)           # one order, RV 3 km/s, blaze 2
        >>> f = 2.0 * ExtrinsicModel(w, rv=3.0, vsini=3.0, device="cpu")(star).detach().numpy()
        >>> cols = [fits.Column(name=n, format="D", array=a) for n, a in
        ...         (("wavelength", w), ("flux", f), ("uncertainty", np.full(w.size, 2e-3)))]
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "stack.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
        >>> res = fit_file(path, star=star, rv_range=(-10, 10), epochs=(10, 10), device="cpu")
        >>> round(res.params["rv"], 1), res.meta["instrument"], res.meta["order"]
        (3.0, 'HPF', 0)
    """
    spec, w, star = _order_and_star(path, order, star, template, device)
    assert spec.uncertainty is not None
    result = fit_spectrum(
        w,
        spec.flux,
        spec.uncertainty,
        star,
        mask=spec.mask,
        device=device,
        **kwargs,
    )
    result.meta.update({k: v for k, v in spec.meta.items() if isinstance(v, (str, int, float))})
    berv = spec.meta.get("berv_kms")
    if berv is not None:
        result.meta["berv_kms"] = berv
    return result


#: Effective temperature of each template shipped in the embedded data (only PHOENIX is a star).
TEMPLATE_TEFF = {"phoenix": 10_000.0}


def order_template(
    path: str | Path,
    *,
    order: int | None = None,
    template: str = "phoenix",
    device: str | None = None,
) -> LineEmulator:
    """The clone of ``template`` over one order of an HPF file (±20 Å), as
    :func:`transfer_file` makes it when no ``star`` is given; keep it to re-run the same
    transfer (injection-recovery, :mod:`atmospec.highres.injection`).

    Example:
        >>> import pathlib, tempfile
        >>> w = np.arange(8698.0, 8714.0, 0.02)            # a template file: two lines, Å
        >>> tau = 0.3 * np.exp(-0.5 * ((w - 8702.0) / 0.04) ** 2) + 0.2 * np.exp(
        ...     -0.5 * ((w - 8708.0) / 0.04) ** 2)
        >>> tmpl = pathlib.Path(tempfile.mkdtemp()) / "template.csv"
        >>> np.savetxt(tmpl, np.column_stack([w, (1.0 + 1e-3 * (w - 8700.0)) * np.exp(-tau)]),
        ...            delimiter=",", header="wavelength,flux", comments="")
        >>> from astropy.io import fits
        >>> wo = np.linspace(8700.0, 8712.0, 600)          # the order's wavelengths
        >>> cols = [fits.Column(name=n, format="D", array=a) for n, a in
        ...         (("wavelength", wo), ("flux", np.ones(wo.size)), ("uncertainty", 0.01 * wo))]
        >>> path = tmpl.parent / "stack.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
        >>> em = order_template(path, template=str(tmpl), device="cpu")
        >>> em.n_lines, em.profile, em.lines().center.round(1).tolist()
        (2, 'pseudo-voigt', [8702.0, 8708.0])
    """
    return _order_and_star(path, order, None, template, device)[2]


def transfer_file(
    path: str | Path,
    *,
    star: LineEmulator | None = None,
    order: int | None = None,
    template: str = "phoenix",
    rv_range: tuple[float, float] = (-150.0, 150.0),
    config: Any = None,
    device: str | None = None,
) -> FitResult:
    """Read an HPF file, continuum-normalise one order and run the semi-empirical transfer
    (:func:`~atmospec.highres.transfer.transfer`) from ``star`` or a fresh clone of
    ``template`` over the order (±20 Å).

    The embedded data ship one stellar template, PHOENIX at 10,000 K; a cooler star's lines
    are then mostly learned from the data (see ``meta["n_lines_data"]``). Pass a clone of a
    template nearer the star's temperature as ``star`` when you have one.

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> from atmospec.highres import ExtrinsicModel, LineList
        >>> star = LineEmulator(LineList([8702.0, 8708.0], [0.03, 0.02], [0.04, 0.04],
        ...                              [0.005, 0.005]), device="cpu")
        >>> w = np.linspace(8700.0, 8712.0, 600)           # one order, RV 3 km/s, blaze 2
        >>> f = 2.0 * ExtrinsicModel(w, rv=3.0, vsini=3.0, device="cpu")(star).detach().numpy()
        >>> cols = [fits.Column(name=n, format="D", array=a) for n, a in
        ...         (("wavelength", w), ("flux", f), ("uncertainty", np.full(w.size, 2e-3)))]
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "stack.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
        >>> from atmospec.highres.transfer_config import TransferConfig
        >>> res = transfer_file(path, star=star, rv_range=(-10, 10),
        ...                     config=TransferConfig(rounds=0, epochs=10), device="cpu")
        >>> round(res.params["rv"], 1), res.meta["template"], res.meta["n_lines_template"]
        (3.0, 'user clone', 2)
    """
    from atmospec.highres.transfer import transfer

    source = "user clone" if star is not None else template
    spec, w, star = _order_and_star(path, order, star, template, device)
    assert spec.uncertainty is not None
    result = transfer(
        w,
        spec.flux,
        spec.uncertainty,
        star,
        mask=spec.mask,
        rv_range=rv_range,
        config=config,
        device=device,
    )
    result.meta.update({k: v for k, v in spec.meta.items() if isinstance(v, (str, int, float))})
    result.meta["template"] = source
    if source in TEMPLATE_TEFF:
        result.meta["template_teff"] = TEMPLATE_TEFF[source]
    return result


def clone_bands(source: str, bands: list[tuple[float, float]], **kwargs: Any) -> LineEmulator:
    """One emulator holding the clones of ``source`` over each band (see
    :func:`clone_template`; ``kwargs`` go to it)."""
    from atmospec.highres.linefinder import LineList

    parts = [clone_template(source, b, **kwargs)[0].lines() for b in bands]
    merged = LineList(
        np.concatenate([p.center for p in parts]),
        np.concatenate([p.amplitude for p in parts]),
        np.concatenate([p.sigma for p in parts]),
        np.concatenate([p.gamma for p in parts]),
        {"source": source, "bands": [list(b) for b in bands]},
    )
    return LineEmulator(
        merged, profile=kwargs.get("profile", "voigt"), max_window=60.0, device=kwargs.get("device")
    )
