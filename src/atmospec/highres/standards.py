"""Telluric standards: an A star and the telluric lines fitted together over several orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.highres.echelle import EchelleResult, fit_echelle, order_bands, read_orders
from atmospec.highres.emulator import LineEmulator
from atmospec.highres.linefinder import LineList
from atmospec.highres.pipeline import clone_bands

__all__ = [
    "O2_BAND",
    "TELLURIC_ORDERS",
    "TelluricStandard",
    "fit_telluric_standard",
    "remove_instrument",
]

#: HPF orders holding the strongest telluric bands: water 9,180-9,900 Å (orders 9-13) and the
#: O2 a-band at 1.27 um (order 27)
WATER_ORDERS = (9, 10, 11, 12, 13)
O2_ORDER = 27
#: Wavelengths (Å) where the TelFit lines are O2 (the 1.27 um a-band); water elsewhere
O2_BAND = (12_600.0, 12_800.0)
#: Every HPF order where the TelFit template (HET, 286 K, 50 % humidity) absorbs more than 2 %
#: over at least a fifth of the order: water at 8,080-8,410 Å (0-2), 8,910-9,900 Å (7-13) and
#: 10,820-12,280 Å (19-25), O2 at 12,625-12,786 Å (27)
TELLURIC_ORDERS = (0, 1, 2, 7, 8, 9, 10, 11, 12, 13, 19, 20, 21, 22, 23, 24, 25, 27)
#: Resolving power of the muler TelFit template: computed for HPF, its weak lines are as wide
#: as HPF's (FWHM 6.4 km/s in order 11, as in the A-star spectra), so it is already
#: convolved with the instrument
TELFIT_TEMPLATE_RESOLUTION = 55_000.0
#: Doppler sigma of water at 270 K, sqrt(kT/m) (km/s): the narrowest a telluric line can be
_TELLURIC_DOPPLER_KMS = 0.35


def remove_instrument(
    lines: LineList, resolution: float, floor_kms: float = _TELLURIC_DOPPLER_KMS
) -> LineList:
    """Lines cloned from a template already convolved with a Gaussian instrumental profile of
    resolving power ``resolution``, brought back to their intrinsic widths: the instrument's
    sigma removed in quadrature from each line's Gaussian sigma (never below ``floor_kms``);
    centres, strengths and Lorentzian widths kept. Exact for weak lines; a fit that convolves
    with the instrument again then does not broaden the lines twice.

    Example:
        >>> from atmospec.highres.linefinder import LineList
        >>> s_inst = 10000.0 / 55000.0 / 2.3548                 # Å, R = 55,000 at 1 um
        >>> ll = LineList([10000.0], [0.01], [np.hypot(0.05, s_inst)], [0.01])
        >>> round(float(remove_instrument(ll, 55000.0).sigma[0]), 4)
        0.05
    """
    s_inst = lines.center / resolution / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    floor = lines.center * floor_kms / 299_792.458
    sigma = np.sqrt(np.maximum(lines.sigma**2 - s_inst**2, floor**2))
    meta = {**lines.meta, "instrument_removed": float(resolution)}
    return LineList(lines.center, lines.amplitude, sigma, lines.gamma, meta)


@dataclass
class TelluricStandard:
    """Per-order telluric correction of a standard star.

    ``rms_before`` / ``rms_after``: RMS of flux / model - 1 over the telluric pixels (fitted
    transmission between 0.3 and 0.98: absorbed, not saturated) with the star model alone and
    with star x telluric; ``scales``:
    the fitted telluric optical-depth scale of each order relative to the TelFit template.

    Example:
        >>> fit = EchelleResult(rv=-20.0, vsini=50.0, rms_percent=[], telluric_scale=[],
        ...                     models=[], telluric_models=[], seconds_per_epoch=0.0,
        ...                     device="cpu")
        >>> std = TelluricStandard([9, 10, 27], [0.04, 0.05, 0.03], [0.01, 0.01, 0.01],
        ...                        [1.2, 1.4, 1.1], fit,
        ...                        {"rms_before_all": 0.04, "rms_after_all": 0.01})
        >>> round(std.water_scale, 6), std.airmass_scale, std.flatness_ratio   # 9-13: water
        (1.3, 1.1, 0.25)
    """

    orders: list[int]
    rms_before: list[float]
    rms_after: list[float]
    scales: list[float]
    fit: EchelleResult
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def flatness_ratio(self) -> float:
        """Pixel-weighted RMS after / before over all telluric pixels (smaller is flatter)."""
        return float(self.meta["rms_after_all"] / self.meta["rms_before_all"])

    @property
    def water_scale(self) -> float:
        """Mean telluric scale of the water orders: water column x airmass, relative to the
        TelFit template's."""
        s = [sc for o, sc in zip(self.orders, self.scales, strict=True) if o in WATER_ORDERS]
        return float(np.mean(s)) if s else float("nan")

    @property
    def airmass_scale(self) -> float:
        """The O2 order's telluric scale: airmass relative to the template's (O2 is well mixed)."""
        s = [sc for o, sc in zip(self.orders, self.scales, strict=True) if o == O2_ORDER]
        return float(s[0]) if s else float("nan")


def fit_telluric_standard(
    path: str | Path,
    orders: tuple[int, ...] = TELLURIC_ORDERS,
    *,
    epochs: int = 120,
    vsini: float = 50.0,
    template_resolution: float | None = TELFIT_TEMPLATE_RESOLUTION,
    continuum_window: float = 30.0,
    poly_degree: int = 4,
    star: LineEmulator | None = None,
    telluric: LineEmulator | None = None,
    device: str | None = None,
) -> TelluricStandard:
    """Fit an HPF telluric standard (an A star) in its telluric orders: the PHOENIX 10,000 K
    clone for the star (shared RV and v sin i) times a clone of the TelFit transmission
    template (observatory frame) with one optical-depth scale per order, continuum per order
    (:func:`~atmospec.highres.echelle.fit_echelle`).

    The TelFit template holds all molecules together; in these orders its lines are water
    except in the O2 a-band (order 27), so the water orders' scale measures the water column x
    airmass and the O2 order's the airmass, both relative to the template. The template is
    already at HPF's resolution: its instrumental width is removed first
    (:func:`remove_instrument`, ``template_resolution``; None keeps it). Each order is
    normalised by its upper envelope in ``continuum_window`` Å chunks (wide: in the water
    bands few pixels are unabsorbed) and fitted with a Legendre continuum of
    ``poly_degree``; one velocity shift is shared by all telluric lines. ``star`` and
    ``telluric`` reuse clones made for the same orders (e.g. for a second standard).

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> from atmospec.highres import ExtrinsicModel
        >>> from atmospec.highres.telluric import TelluricModel
        >>> star = LineEmulator(LineList([8706.0], [0.3], [0.3], [0.05]), device="cpu")
        >>> tell = LineEmulator(LineList([8703.0, 8709.0], [0.02, 0.015], [0.03, 0.03],
        ...                              [0.002, 0.002]), device="cpu")
        >>> w = np.linspace(8700.0, 8712.0, 600)           # one order: A star x water, blaze 2
        >>> ext = ExtrinsicModel(w, rv=-20.0, vsini=50.0, device="cpu")
        >>> f = 2.0 * ext(star, TelluricModel(tell)).detach().numpy()
        >>> cols = [fits.Column(name=n, format="D", array=a) for n, a in
        ...         (("wavelength", w), ("flux", f), ("uncertainty", np.full(w.size, 2e-3)))]
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "standard.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
        >>> std = fit_telluric_standard(path, (0,), epochs=5, template_resolution=None,
        ...                             continuum_window=4.0, star=star, telluric=tell,
        ...                             device="cpu")
        >>> std.orders, round(std.meta["rv"]), std.flatness_ratio < 0.5
        ([0], -20, True)
    """
    ech = read_orders(str(path), tuple(orders), window=continuum_window)
    kw = {"prominence": 0.005, "rounds": 2, "epochs": 150, "profile": "pseudo-voigt",
          "device": device}  # fmt: skip
    bands = order_bands(ech)
    star = star if star is not None else clone_bands("phoenix", bands, **kw)
    tell = telluric if telluric is not None else clone_bands("telfit", bands, **kw)
    if template_resolution is not None:
        tell = LineEmulator(
            remove_instrument(tell.lines(), template_resolution), **tell.settings(),
            device=device,
        )  # fmt: skip
    res = fit_echelle(
        ech, star, telluric=tell, rv_range=(-150.0, 150.0), vsini=vsini, epochs=epochs,
        poly_degree=poly_degree, device=device,
    )  # fmt: skip
    before, after, n_pix, saturated = [], [], [], []
    sum_b = sum_a = 0.0
    for o, model, tmodel in zip(ech, res.models, res.telluric_models, strict=True):
        good = ~(o.mask if o.mask is not None else np.zeros(o.flux.size, bool))
        good &= np.isfinite(o.flux)
        # telluric pixels: absorbed by more than 2 %, but not saturated (a core below 30 %
        # transmission holds too little light to correct)
        tpix = good & (tmodel < 0.98) & (tmodel > 0.3)
        saturated.append(int((good & (tmodel <= 0.3)).sum()))
        star_only = model / tmodel
        rb = o.flux[tpix] / star_only[tpix] - 1.0
        ra = o.flux[tpix] / model[tpix] - 1.0
        before.append(float(np.sqrt(np.mean(rb**2))) if tpix.any() else float("nan"))
        after.append(float(np.sqrt(np.mean(ra**2))) if tpix.any() else float("nan"))
        n_pix.append(int(tpix.sum()))
        sum_b += float((rb**2).sum())
        sum_a += float((ra**2).sum())
    n = max(sum(n_pix), 1)
    meta = {
        "telluric_pixels": n_pix,
        "saturated_pixels": saturated,
        "rms_before_all": float(np.sqrt(sum_b / n)),
        "rms_after_all": float(np.sqrt(sum_a / n)),
        "star_template": "PHOENIX 10,000 K (muler)",
        "telluric_template": "TelFit, 286 K, 50 % humidity (muler)",
        "rv": res.rv,
        "vsini": res.vsini,
        "telluric_rv": res.meta["telluric_rv"],
        "template_resolution": template_resolution,
        "limits": res.meta["limits"],
    }
    return TelluricStandard(list(orders), before, after, res.telluric_scale, res, meta)
