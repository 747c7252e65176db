"""Line-shape formulas shared by the numpy (molecules) and torch (highres) profiles."""

from __future__ import annotations

from typing import Any

__all__ = ["pseudo_voigt_parameters"]


def pseudo_voigt_parameters(fwhm_gauss: Any, fwhm_lorentz: Any) -> tuple[Any, Any]:
    """Total FWHM and Lorentzian weight ``eta`` of the Thompson, Cox & Hastings (1987) pseudo-Voigt.

    Pure arithmetic, so it works on floats, numpy arrays and torch tensors alike (autograd too).

    Args:
        fwhm_gauss: full width at half maximum of the Gaussian component.
        fwhm_lorentz: full width at half maximum of the Lorentzian component.

    Returns:
        ``(fwhm, eta)``: the common FWHM of the mixture and the weight of its Lorentzian part.

    Example:
        >>> f, eta = pseudo_voigt_parameters(1.0, 0.0)  # pure Gaussian
        >>> float(f), float(eta)
        (1.0, 0.0)
        >>> f, eta = pseudo_voigt_parameters(0.0, 2.0)  # pure Lorentzian
        >>> float(f), round(float(eta), 5)
        (2.0, 1.0)
    """
    fg, fl = fwhm_gauss, fwhm_lorentz
    f = (
        fg**5
        + 2.69269 * fg**4 * fl
        + 2.42843 * fg**3 * fl**2
        + 4.47163 * fg**2 * fl**3
        + 0.07842 * fg * fl**4
        + fl**5
    ) ** 0.2
    r = fl / f
    eta = 1.36603 * r - 0.47719 * r**2 + 0.11116 * r**3
    return f, eta
