"""TelluricModel: Earth's atmospheric transmission as a second line-by-line emulator."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from atmospec.highres.emulator import LineEmulator, train_clone
from atmospec.highres.linefinder import LineList, find_lines

__all__ = ["TelluricModel", "JointModel", "decompose"]

_C_KMS = 299_792.458


class TelluricModel(nn.Module):
    """Telluric transmission T(λ) = exp(-s · τ(λ)) from a :class:`LineEmulator` τ.

    The emulator is evaluated in the observatory frame (an optional velocity ``rv`` shifts it,
    for data already moved to another frame) and its optical depth is scaled by ``s`` (airmass
    and water column). The star's model is multiplied by T *before* the instrumental
    convolution (see :class:`~atmospec.highres.extrinsic.ExtrinsicModel`).

    Args:
        emulator: the pre-trained telluric line model (e.g. a clone of a TelFit or PSG template).
        scale: initial optical-depth scale s.
        rv: velocity of the telluric frame relative to the data's wavelength frame, km/s.

    Example:
        >>> import torch
        >>> from atmospec.highres.linefinder import LineList
        >>> em = LineEmulator(LineList([9000.0], [0.05], [0.03], [0.01]), device="cpu")
        >>> tell = TelluricModel(em, scale=2.0)
        >>> wl = torch.tensor([9000.0], dtype=torch.float64)
        >>> bool(torch.isclose(tell(wl), em(wl) ** 2).item())
        True
    """

    def __init__(self, emulator: LineEmulator, *, scale: float = 1.0, rv: float = 0.0) -> None:
        super().__init__()
        self.emulator = emulator
        ref = emulator.center0
        self.ln_scale = nn.Parameter(
            torch.tensor(math.log(scale), dtype=ref.dtype, device=ref.device)
        )
        self.rv = nn.Parameter(torch.tensor(float(rv), dtype=ref.dtype, device=ref.device))
        self.rv.requires_grad_(False)

    @property
    def scale(self) -> torch.Tensor:
        return torch.exp(self.ln_scale)

    def optical_depth(self, wavelength: torch.Tensor) -> torch.Tensor:
        return self.scale * self.emulator.optical_depth(wavelength / (1.0 + self.rv / _C_KMS))

    def forward(self, wavelength: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.optical_depth(wavelength))


class JointModel(nn.Module):
    """Star × telluric × constant continuum, both line models evaluated on one grid.

    For spectra at a resolution far above the lines' widths (an FTS atlas), no convolution.
    """

    def __init__(self, star: LineEmulator, telluric: TelluricModel) -> None:
        super().__init__()
        self.star = star
        self.telluric = telluric
        ref = star.center0
        self.level = nn.Parameter(torch.tensor(1.0, dtype=ref.dtype, device=ref.device))

    def forward(self, wavelength: torch.Tensor) -> torch.Tensor:
        return self.level * self.star(wavelength) * self.telluric(wavelength)


def decompose(
    wavelength: np.ndarray,
    total: np.ndarray,
    telluric_prior: LineEmulator,
    *,
    prominence: float = 0.01,
    match: float = 3.0,
    epochs: int = 400,
    lr: float = 0.01,
    progress: bool = True,
) -> tuple[JointModel, dict[str, Any]]:
    """Split an observed (star × atmosphere) spectrum into its stellar and telluric parts.

    The telluric prior (a clone of a model transmission such as PSG or TelFit) fixes which
    lines are Earth's: prior lines where ``total`` shows absorption are kept (centres fixed);
    lines found in ``total`` within ``match`` pixels of a prior telluric line are telluric,
    the others stellar. Both sets are then fitted jointly to ``total`` (amplitudes, widths,
    stellar centres, the telluric scale and the continuum level). Returns the fitted :class:`JointModel` and a summary.
    """
    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(total, dtype=np.float64)
    dev = telluric_prior.center0.device
    found = find_lines(w, f, prominence=prominence)
    tell_lines = telluric_prior.lines()
    in_band = (tell_lines.center > w[0]) & (tell_lines.center < w[-1])
    strong = in_band & (tell_lines.depth > 0.5 * prominence)
    tc = tell_lines.center[strong]
    step = np.gradient(w)
    pos = np.searchsorted(w, found.center).clip(0, w.size - 1)
    if tc.size:
        j = (
            np.searchsorted(tc, found.center).clip(1, tc.size - 1)
            if tc.size > 1
            else np.zeros(len(found), dtype=int)
        )
        dist = np.minimum(
            np.abs(found.center - tc[j - 1 if tc.size > 1 else 0]), np.abs(found.center - tc[j])
        )
        is_tell = dist <= match * step[pos]
    else:
        is_tell = np.zeros(len(found), bool)
    star_lines = found.select(~is_tell)
    seen = np.interp(tell_lines.center, w, f) < 1.0 - 0.5 * prominence
    tell_prior = tell_lines.select(in_band & seen)
    star = LineEmulator(
        star_lines if len(star_lines) else LineList([w.mean()], [1e-9], [step.mean()], [1e-6]),
        profile=telluric_prior.profile,
        wing=telluric_prior.wing,
        device=dev,
    )
    tell_em = LineEmulator(
        tell_prior, profile=telluric_prior.profile, wing=telluric_prior.wing, device=dev
    )
    tell_em.d_center.requires_grad_(False)  # Earth's line positions are known from the prior
    joint = JointModel(star, TelluricModel(tell_em))
    history = train_clone(joint, w, f, epochs=epochs, lr=lr, progress=progress, desc="decompose")
    info = {
        "n_star_lines": star.n_lines,
        "n_telluric_lines": tell_em.n_lines,
        "n_found_telluric": int(is_tell.sum()),
        "rms_total": math.sqrt(history[-1]),
        "telluric_scale": float(joint.telluric.scale.detach()),
    }
    return joint, info
