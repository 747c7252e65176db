"""The Spectrum object: validation rules, units, derivations."""

from __future__ import annotations

import numpy as np
import pytest

from atmospec.errors import InvalidSpectrumError, UnitError
from atmospec.spectrum import Spectrum, invalid_pixels, validate_arrays


def test_wavelength_units_converted_to_micron() -> None:
    for unit, factor in (("AA", 1e4), ("nm", 1e3), ("um", 1.0), ("cm", 1e-4)):
        s = Spectrum(np.array([1.0, 2.0]) * factor, [1.0, 1.0], wave_unit=unit)
        np.testing.assert_allclose(s.wavelength, [1.0, 2.0], rtol=1e-14)
    with pytest.raises(UnitError, match="cannot be converted to micron"):
        Spectrum([1.0, 2.0], [1.0, 1.0], wave_unit="kg")


def test_flambda_fnu_round_trip() -> None:
    # F_nu = F_lambda lambda^2 / c: 1 W m-2 um-1 at 2 um = 1e6 W m-2 m-1 * (2e-6 m)^2 / c
    s = Spectrum([1.0, 2.0], [1.0, 1.0], [0.1, 0.1], flux_unit="W m-2 um-1")
    fnu = s.to_flux_unit("W m-2 Hz-1")
    assert fnu.flux[1] == pytest.approx(1e6 * (2e-6) ** 2 / 2.99792458e8, rel=1e-12)
    back = fnu.to_flux_unit("W m-2 um-1")
    np.testing.assert_allclose(back.flux, s.flux, rtol=1e-12)
    assert back.uncertainty is not None and s.uncertainty is not None
    np.testing.assert_allclose(back.uncertainty, s.uncertainty, rtol=1e-12)
    with pytest.raises(UnitError, match="cannot convert flux"):
        s.to_flux_unit("kg")
    with pytest.raises(UnitError, match="the flux is normalised"):
        Spectrum([1.0, 2.0], [1.0, 1.0]).to_flux_unit("Jy")


def test_validation_rules_and_messages() -> None:
    w = np.array([1.0, 2.0, 3.0])
    with pytest.raises(InvalidSpectrumError, match="s1: 1 flux value"):
        validate_arrays(w, np.array([1.0, np.inf, 1.0]), None, source="s1")
    # masked bad pixels are allowed, but wavelengths must be valid everywhere
    validate_arrays(
        w,
        np.array([1.0, np.nan, 1.0]),
        np.array([1.0, -1.0, 1.0]),
        mask=np.array([False, True, False]),
    )
    with pytest.raises(InvalidSpectrumError, match="fewer than 2 unmasked pixels"):
        validate_arrays(w, np.ones(3), None, mask=np.array([True, True, False]))
    with pytest.raises(InvalidSpectrumError, match="mask has shape"):
        validate_arrays(w, np.ones(3), None, mask=np.array([True, False]))
    with pytest.raises(InvalidSpectrumError, match="uncertainty has shape"):
        validate_arrays(w, np.ones(3), np.ones(2))
    with pytest.raises(InvalidSpectrumError, match="wavelength has 3 points but flux has 2"):
        validate_arrays(w, np.ones(2), None)
    with pytest.raises(InvalidSpectrumError, match="zero or negative"):
        validate_arrays(w, np.array([1.0, 0.0, 1.0]), None, require_positive_flux=True)
    assert invalid_pixels(np.array([1.0, np.nan]), np.array([0.0, 1.0])).tolist() == [True, True]


def test_normalize_trim_good() -> None:
    s = Spectrum(
        [1.0, 1.5, 2.0, 2.5],
        [2.0, 4.0, np.nan, 1.0],
        [0.2, 0.4, 1.0, 0.1],
        mask=[False, False, True, False],
        flux_unit="Jy",
    )
    n = s.normalize("max")
    assert n.uncertainty is not None
    assert n.flux_unit == "" and n.flux[1] == 1.0 and n.uncertainty[1] == pytest.approx(0.1)
    assert n.meta["normalisation"]["scale"] == 4.0
    assert len(s.good()) == 3 and not s.good().mask.any()
    t = s.trim(1.2, 2.6)
    assert t.wavelength.tolist() == [1.5, 2.0, 2.5] and t.mask.tolist() == [False, True, False]
    assert s.snr == pytest.approx(10.0)  # median of 2/0.2, 4/0.4, 1/0.1
