"""Files another atmospec command reads: the command to name when the spectrum reader refuses one.

A transmission spectrum or an HPF echelle file given to ``atmospec predict`` is refused by
the flux-spectrum reader, whose message says what it could not parse ("cannot read 'ppm' as a
number"). :func:`spectrum_hint` looks at the refused file once more and, when it is one that
another atmospec command reads, returns a sentence naming that command, which
:func:`atmospec.io.read` appends to the refusal. It never raises: a file nothing reads gets no
hint.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from atmospec.errors import AtmospecError

__all__ = ["HPF_HINT", "ariel_hint", "hint_from", "is_hpf", "is_planet_folder", "spectrum_hint"]

HPF_HINT = (
    "it is an HPF spectrum (INSTRUME 'HPF', R ~55,000): the `atmospec highres` commands "
    "(`fit`, `echelle` for a Goldilocks file of 28 orders) model high-resolution spectra"
)


def is_hpf(path: str | Path) -> bool:
    """A FITS file from HPF: Goldilocks HDUs (``Sci Flux``) or INSTRUME ``HPF`` in a header.

    Example:
        >>> import pathlib, tempfile
        >>> from astropy.io import fits
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "order.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(name="Sci Flux")]).writeto(f)
        >>> is_hpf(f)
        True
    """
    from atmospec._fileio import first_block
    from atmospec.io._common import open_fits

    path = Path(path)
    try:
        if not first_block(path).startswith(b"SIMPLE  ="):
            return False
        with open_fits(path) as hdul:
            return any(
                h.name.upper() == "SCI FLUX"
                or str(h.header.get("INSTRUME", "")).strip().upper().startswith("HPF")
                for h in hdul
            )
    except (AtmospecError, OSError, ValueError):
        return False


def is_planet_folder(path: str | Path) -> bool:
    """True when ``path`` holds an AIRS-CH0 signal file (an Ariel ``ROOT/split/PLANET_ID``;
    ``atmospec transit`` reads such folders, the spectrum reader names it for their files).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp()); (d / "AIRS-CH0_signal_0.parquet").touch()
        >>> is_planet_folder(d), is_planet_folder(d.parent)
        (True, False)
    """
    return Path(path).is_dir() and any(Path(path).glob("AIRS-CH0_signal*.parquet"))


def ariel_hint(path: str | Path) -> str | None:
    """For a file of an Ariel raw dataset (the Ariel Data Challenge layout: ``ROOT`` holding
    ``axis_info.parquet``, planets in ``ROOT/train/ID`` with ``AIRS-CH0_signal*.parquet`` and
    calibration folders): the command that reduces it, in a sentence; None for any other file.
    It looks at file names only.

    Example:
        >>> import pathlib, tempfile
        >>> planet = pathlib.Path(tempfile.mkdtemp()) / "train" / "342072318"
        >>> (planet / "AIRS-CH0_calibration_0").mkdir(parents=True)
        >>> _ = (planet / "AIRS-CH0_signal_0.parquet").write_bytes(b"PAR1")
        >>> ariel_hint(planet / "AIRS-CH0_calibration_0" / "dark.parquet")[:56]
        'it belongs to the Ariel raw visit of planet 342072318: `'
    """
    path = Path(path)
    for planet in (path.parent, path.parent.parent):
        if is_planet_folder(planet):
            return (
                f"it belongs to the Ariel raw visit of planet {planet.name}: "
                f"`atmospec transit reduce {planet}` calibrates its frames into a "
                "transmission spectrum"
            )
    if (path.parent / "axis_info.parquet").is_file():
        return (
            f"it belongs to the Ariel raw dataset {path.parent}: `atmospec transit reduce "
            f"{path.parent}` reduces its planets"
        )
    return None


def hint_from(
    path: str | Path, read: Callable[[Path], Any], sentence: Callable[[Any, Path], str]
) -> str | None:
    """The hint for a refused file: :data:`HPF_HINT` for an HPF file, else
    ``sentence(read(path), path)`` when another reader, ``read``, takes it; None when it
    refuses the file too (never raises).

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
        >>> _ = f.write_text("just words")
        >>> hint_from(f, lambda p: float(p.read_text()), lambda x, p: "a number") is None
        True
    """
    path = Path(path)
    try:
        return HPF_HINT if is_hpf(path) else sentence(read(path), path)
    except (AtmospecError, OSError, ValueError, UnicodeError):
        return None


def spectrum_hint(path: str | Path) -> str | None:
    """For a file the flux-spectrum reader (:func:`atmospec.io.read`) refused: the atmospec
    command that reads it, in a sentence; None when none does.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "planet.csv"
        >>> _ = f.write_text("wavelength,bin_width,depth,depth_err\\n"
        ...                  "1.0,0.01,0.0210,0.0001\\n1.1,0.01,0.0212,0.0001\\n")
        >>> spectrum_hint(f)[:42]
        'it reads as a transmission spectrum (2 bin'
    """
    ariel = ariel_hint(path)
    if ariel is not None:
        return ariel
    from atmospec.molecules.io import read_transmission  # refuses binary files itself

    def read(p: Path) -> tuple[Any, str]:
        """The spectrum and the option it needs: a table of depths without bin widths (a
        paper's source data) reads only as contiguous bins."""
        try:
            return read_transmission(p), ""
        except AtmospecError:
            return read_transmission(p, width="contiguous"), " --width contiguous"

    def sentence(got: tuple[Any, str], path: Path) -> str:
        spec, option = got
        return (
            f"it reads as a transmission spectrum ({spec.wavelength.size} bins of transit "
            f"depth, {spec.wavelength.min():.2f}-{spec.wavelength.max():.2f} um): "
            f"`atmospec molecules {path.name}{option}` reads those"
        )

    return hint_from(path, read, sentence)
