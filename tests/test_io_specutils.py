"""to_specutils / from_specutils keep arrays, units, uncertainty and mask."""

from __future__ import annotations

import numpy as np
import pytest

from atmospec.spectrum import Spectrum

specutils = pytest.importorskip("specutils")


def test_round_trip_through_specutils() -> None:
    from astropy.nddata import StdDevUncertainty

    s = Spectrum(
        [1.0, 1.5, 2.0, 2.5],
        [1.0, 2.0, np.nan, 3.0],
        [0.1, 0.2, 0.3, 0.1],
        mask=[False, False, True, False],
        meta={"source": "x"},
        flux_unit="erg s-1 cm-2 AA-1",
        name="demo",
    )
    sp = s.to_specutils()
    assert type(sp).__name__ in ("Spectrum", "Spectrum1D")
    assert isinstance(sp.uncertainty, StdDevUncertainty)
    assert str(sp.spectral_axis.unit) == "um"
    back = Spectrum.from_specutils(sp)
    np.testing.assert_array_equal(back.wavelength, s.wavelength)
    np.testing.assert_array_equal(back.flux, s.flux)
    np.testing.assert_array_equal(back.uncertainty, s.uncertainty)
    np.testing.assert_array_equal(back.mask, s.mask)
    assert back.flux_unit == s.flux_unit and back.name == "demo" and back.meta == s.meta


def test_from_specutils_frequency_axis_and_variance() -> None:
    import astropy.units as u
    from astropy.nddata import VarianceUncertainty

    from atmospec.io.specutils_bridge import from_specutils, specutils_class

    nu = np.array([3e14, 2e14, 1.5e14]) * u.Hz  # 1, 1.5, 2 um, increasing frequency reversed
    sp = specutils_class()(
        flux=np.array([1.0, 2.0, 3.0]) * u.Jy,
        spectral_axis=nu[::-1],
        uncertainty=VarianceUncertainty(np.array([0.04, 0.04, 0.04])),
    )
    s = from_specutils(sp, name="freq")
    # c / nu: 2.998e14 um Hz / 1.5e14 Hz = 1.9986 um, ...
    np.testing.assert_allclose(s.wavelength, 2.99792458e14 / nu.value, rtol=1e-12)
    assert s.uncertainty is not None
    np.testing.assert_allclose(s.uncertainty, [0.2, 0.2, 0.2])  # sqrt of the variance
    assert s.flux.tolist() == [3.0, 2.0, 1.0]
