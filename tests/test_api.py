"""The public API: top-level names (lazy, typed) and Spectrum's transform methods."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import atmospec
from atmospec.errors import CoverageError
from atmospec.spectrum import Spectrum

PUBLIC = ("read", "Spectrum", "load_grid", "ModelGrid", "load_model", "fit", "predict", "Predictor")


def test_top_level_names_are_the_real_objects() -> None:
    from atmospec import errors, fitting, grids, io, models
    from atmospec.prediction import predictor

    expected = {
        "read": io.read,
        "Spectrum": Spectrum,
        "load_grid": grids.load_grid,
        "ModelGrid": grids.ModelGrid,
        "load_model": models.load_model,
        "fit": fitting.fit,
        "predict": predictor.predict,
        "Predictor": predictor.Predictor,
    }
    for name, obj in expected.items():
        assert getattr(atmospec, name) is obj, name
    for name in errors.__all__:  # every error type, from the top
        assert getattr(atmospec, name) is getattr(errors, name)
        assert name in atmospec.__all__
    assert set(PUBLIC) <= set(atmospec.__all__) <= set(dir(atmospec))
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        atmospec.nonsense  # noqa: B018


def test_type_checkers_see_what_runtime_serves() -> None:
    """The ``if TYPE_CHECKING:`` imports name exactly the lazily served attributes, from the
    same modules (so an IDE's view and the runtime agree)."""
    tree = ast.parse(Path(atmospec.__file__).read_text(encoding="utf-8"))
    seen: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                for alias in imp.names:
                    seen[alias.name] = imp.module
    served = {n: atmospec._WHERE[n] for n in atmospec._WHERE}
    assert seen == served
    assert set(atmospec.__all__) == {"__version__", *served}


def test_import_is_light() -> None:
    code = (
        "import sys, atmospec; heavy = [m for m in ('torch', 'astropy.table', 'dask', "
        "'matplotlib', 'atmospec.prediction', 'atmospec.grids') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ Spectrum methods
def test_resample_conserves_flux_and_refuses_uncovered_bins() -> None:
    wave = np.linspace(1.0, 2.0, 501)  # 0.002 um pixels
    flux = 3.0 + 2.0 * wave  # a linear spectrum: each bin's mean is its centre's value
    spec = Spectrum(wave, flux, np.full(wave.size, 0.1), name="line")
    new = np.linspace(1.1, 1.9, 9)  # 0.1 um bins, fully inside
    out = spec.resample(new)
    np.testing.assert_allclose(out.flux, 3.0 + 2.0 * new, rtol=1e-12)
    # integrated flux over the covered range is conserved: sum f dlambda
    assert float(np.sum(out.flux * 0.1)) == pytest.approx(np.sum(3.0 + 2.0 * new) * 0.1)
    # independent pixel errors average down: 50 pixels per bin -> 0.1 / sqrt(50)
    assert out.uncertainty is not None
    assert float(np.median(out.uncertainty)) == pytest.approx(0.1 / np.sqrt(50), rel=0.02)
    with pytest.raises(CoverageError, match="line"):
        spec.resample([0.8, 1.5])
    masked = spec.resample([0.9, 1.3, 1.7], coverage="mask")  # bins 0.7-1.1, 1.1-1.5...
    assert masked.mask.tolist() == [True, False, False]
    assert masked.flux[1:].tolist() == pytest.approx([5.6, 6.4])


def test_convolve_adds_the_kernel_width_in_quadrature() -> None:
    wave = np.linspace(1.0, 1.1, 20001)  # 5e-6 um pixels
    sigma0 = 1e-4  # um: an intrinsic Gaussian line, FWHM 2.35e-4 um
    line = 1.0 - 0.5 * np.exp(-0.5 * ((wave - 1.05) / sigma0) ** 2)
    spec = Spectrum(wave, line)
    r = 10000.0  # kernel FWHM 1.05e-4 um at the line
    out = spec.convolve(r)
    depth = 1.0 - out.flux
    i = int(np.argmax(depth))
    left = np.interp(depth.max() / 2, depth[: i + 1], wave[: i + 1])  # rising side
    right = np.interp(depth.max() / 2, depth[i:][::-1], wave[i:][::-1])  # falling side
    fwhm = right - left
    expected = np.sqrt((2.3548 * sigma0) ** 2 + (1.05 / r) ** 2)
    assert fwhm == pytest.approx(expected, rel=0.01)
    # equivalent width is conserved by a normalised kernel
    step = wave[1] - wave[0]
    assert np.sum(depth) * step == pytest.approx(np.sum(1.0 - line) * step, rel=1e-3)


def test_add_noise_is_reproducible_and_adds_in_quadrature() -> None:
    wave = np.linspace(1.0, 2.0, 20000)
    spec = Spectrum(wave, np.full(wave.size, 2.0), np.full(wave.size, 0.03))
    a = spec.add_noise(snr=50, rng=7)
    b = spec.add_noise(snr=50, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.flux, b.flux)
    added = 2.0 / 50  # median flux / snr
    assert a.uncertainty is not None
    np.testing.assert_allclose(a.uncertainty, np.hypot(0.03, added))
    z = (a.flux - spec.flux) / added
    assert float(np.std(z)) == pytest.approx(1.0, abs=0.02)
    assert float(abs(np.mean(z))) < 0.03
    with pytest.raises(ValueError, match="exactly one"):
        spec.add_noise(rng=0)
