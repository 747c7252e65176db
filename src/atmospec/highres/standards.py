"""Telluric standards: an A star and the telluric lines fitted together over several orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.highres.echelle import EchelleResult, fit_echelle, order_bands, read_orders
from atmospec.highres.pipeline import clone_bands

__all__ = ["O2_BAND", "TelluricStandard", "fit_telluric_standard"]

#: HPF orders holding the strongest telluric bands: water 9,180-9,900 Å (orders 9-13) and the
#: O2 a-band at 1.27 um (order 27)
WATER_ORDERS = (9, 10, 11, 12, 13)
O2_ORDER = 27
#: Wavelengths (Å) where the TelFit lines are O2 (the 1.27 um a-band); water elsewhere
O2_BAND = (12_600.0, 12_800.0)


@dataclass
class TelluricStandard:
    """Per-order telluric correction of a standard star.

    ``rms_before`` / ``rms_after``: RMS of flux / model - 1 over the telluric pixels (fitted
    transmission between 0.3 and 0.98: absorbed, not saturated) with the star model alone and
    with star x telluric; ``scales``:
    the fitted telluric optical-depth scale of each order relative to the TelFit template.
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
    orders: tuple[int, ...] = (*WATER_ORDERS, O2_ORDER),
    *,
    epochs: int = 120,
    vsini: float = 50.0,
    device: str | None = None,
    progress: bool = True,
) -> TelluricStandard:
    """Fit an HPF telluric standard (an A star) in its telluric orders: the PHOENIX 10,000 K
    clone for the star (shared RV and v sin i) times a clone of the TelFit transmission
    template (observatory frame) with one optical-depth scale per order, continuum per order
    (:func:`~atmospec.highres.echelle.fit_echelle`).

    The TelFit template holds all molecules together; in these orders its lines are water
    except in the O2 a-band (order 27), so the water orders' scale measures the water column x
    airmass and the O2 order's the airmass, both relative to the template.
    """
    ech = read_orders(str(path), tuple(orders))
    kw = {"prominence": 0.005, "rounds": 2, "epochs": 150, "profile": "pseudo-voigt",
          "device": device, "progress": progress}  # fmt: skip
    bands = order_bands(ech)
    star = clone_bands("phoenix", bands, **kw)
    tell = clone_bands("telfit", bands, **kw)
    res = fit_echelle(
        ech, star, telluric=tell, rv_range=(-150.0, 150.0), vsini=vsini, epochs=epochs,
        device=device, progress=progress,
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
        "limits": res.meta["limits"],
    }
    return TelluricStandard(list(orders), before, after, res.telluric_scale, res, meta)
