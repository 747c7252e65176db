"""Physical sanity gates: degenerate or non-physical spectra are refused before any fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atmospec.errors import FileFormatError, InvalidSpectrumError
from atmospec.sanity import LIMITS, check_arrays, check_spectrum
from atmospec.spectrum import Spectrum

HD3651B = "resources/Spectra/Public/SPEX-PRISM/10703_10070.fits.gz"


@pytest.fixture(scope="module")
def real(splat_dir: Path) -> Spectrum:
    """HD 3651B (T7.5) observed with SpeX prism: a healthy spectrum, S/N ~ 50 at the peak."""
    from atmospec.io import read

    return read(splat_dir / HD3651B, invalid="mask")


def _variant(
    s: Spectrum, flux: np.ndarray | None = None, unc: np.ndarray | None = None
) -> Spectrum:
    return Spectrum(
        s.wavelength,
        s.flux if flux is None else flux,
        s.uncertainty if unc is None else unc,
        mask=s.mask,
        meta={"source": "hd3651b-variant.fits"},
    )


def test_real_spectrum_passes(real: Spectrum) -> None:
    assert check_spectrum(real) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f, u: (0 * f, u), "zero at every usable pixel"),
        (lambda f, u: (np.full_like(f, 0.7), u), "constant"),
        (lambda f, u: (-f, u), "median flux is negative"),
        (lambda f, u: (f * 1e300, u * 1e300), "beyond 1e\\+100"),
        (lambda f, u: (f * 1e-300, u * 1e-300), "below 1e-100"),
        (lambda f, u: (f, np.full_like(u, 1e-300)), "uncertainties span"),
        (lambda f, u: (np.where(np.arange(f.size) == 100, 1e12, f), u), "times the median"),
        (lambda f, u: (np.minimum(f, np.nanpercentile(f, 60)), u), "saturated or clipped"),
        # S/N values (here |flux| / sigma of the real data, ~5-80) where sigma should be
        (lambda f, u: (f, np.abs(f) / u), "not 1-sigma errors"),
        # flux and sigma each inside 1e+-100 but 1e120 apart: (flux/sigma)^2 overflows float64
        (
            lambda f, u: (f * 1e60 / np.nanmax(np.abs(f)), u * 1e-60 / np.nanmax(u)),
            "not in the same unit",
        ),
    ],
    ids=[
        *("zero", "constant", "negative", "x1e300", "x1e-300", "err1e-300", "spike", "clip"),
        *("snr", "units"),
    ],
)
def test_degenerate_variants_of_a_real_spectrum_are_refused(
    real: Spectrum, change, message: str
) -> None:
    assert real.uncertainty is not None
    flux, unc = change(real.flux.copy(), real.uncertainty.copy())
    with pytest.raises(InvalidSpectrumError, match=message) as err:
        check_spectrum(_variant(real, flux, unc))
    assert str(err.value).startswith("hd3651b-variant.fits: ")


def test_library_files_with_snr_in_the_error_row_are_refused(splat_dir: Path) -> None:
    """Real SpeX library files whose third row is not 1-sigma errors.

    10316_10380 stores a flux of ~2.4e-16 with an "error" of ~49 (a S/N), and 10042_11301 a
    normalised flux of ~0.39 with "errors" of ~134: median S/N 6e-18 and 3e-3, far below
    the 0.2 gate, where the other ~3,090 library files lie above it.
    """
    from atmospec.io import read

    for key in ("10316_10380", "10042_11301"):
        path = splat_dir / f"resources/Spectra/Public/SPEX-PRISM/{key}.fits.gz"
        spec = read(path, invalid="mask")
        with pytest.raises(InvalidSpectrumError, match=f"{key}.*not 1-sigma errors"):
            check_spectrum(spec)


def test_fit_refuses_zero_flux_instead_of_reporting_the_first_node(real: Spectrum, grid) -> None:
    from atmospec.fitting import fit

    with pytest.raises(InvalidSpectrumError, match="zero at every usable pixel"):
        fit(_variant(real, 0 * real.flux), grid)
    with pytest.raises(InvalidSpectrumError, match="beyond 1e\\+100"):
        fit(_variant(real, real.flux * 1e308, real.uncertainty), grid)


def test_best_node_guard() -> None:
    """The last line after the gates: NaN, equal chi2 or a negative scale give no 'best' node."""
    from atmospec.fitting.chi2 import _best_node

    ok = np.array([5.0, 2.0, 9.0])
    assert _best_node(ok, np.array([1.0, 2.0, 3.0]), "s", "g") == 1
    with pytest.raises(InvalidSpectrumError, match="not finite"):
        _best_node(np.full(3, np.nan), np.ones(3), "s", "g")
    with pytest.raises(InvalidSpectrumError, match="same at every"):
        _best_node(np.zeros(3), np.zeros(3), "s", "g")
    with pytest.raises(InvalidSpectrumError, match="scale is -2"):
        _best_node(ok, np.array([1.0, -2.0, 3.0]), "s", "g")


def test_fits_gz_failing_its_gzip_checksum_is_refused(splat_dir: Path, tmp_path: Path) -> None:
    from atmospec.io import read

    raw = bytearray((splat_dir / HD3651B).read_bytes())
    raw[-6] ^= 0xFF  # one bit pattern in the stored CRC-32: the data no longer match it
    bad = tmp_path / "10703_10070.fits.gz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="10703_10070.fits.gz: corrupt gzip file"):
        read(bad)


def test_limits_leave_float64_headroom() -> None:
    """Squares of values inside the limits stay finite and normal in float64 (chi2 sums)."""
    assert np.isfinite(LIMITS["max_abs"] ** 2) and LIMITS["min_abs"] ** 2 > np.finfo(float).tiny
    assert check_arrays(np.array([1e-99, 2e-99, 3e-99]), source="x") == []
