"""Reading transmission spectra for the molecule commands, naming the command a refused file
belongs to (a flux spectrum: ``atmospec predict``; an HPF file: ``atmospec highres``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atmospec.errors import FileFormatError
from atmospec.molecules.spectrum import TransmissionSpectrum

__all__ = ["read_planet", "transmission_hint"]


def transmission_hint(path: str | Path) -> str | None:
    """For a file the transmission-spectrum reader refused: the atmospec command that reads
    it, in a sentence; None when none does.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "dwarf.csv"
        >>> _ = f.write_text("wavelength [um],flux [W m-2 um-1],error [W m-2 um-1]\\n"
        ...                  "1.0,1e-15,1e-17\\n1.1,2e-15,1e-17\\n")
        >>> transmission_hint(f)[:36]
        'it reads as a flux spectrum (2 pixel'
    """
    from atmospec.io import read
    from atmospec.io.other_kinds import hint_from

    def sentence(spec: Any, path: Path) -> str:
        return (
            f"it reads as a flux spectrum ({spec.wavelength.size} pixels, "
            f"{spec.wavelength.min():.2f}-{spec.wavelength.max():.2f} um, "
            f"{spec.meta.get('format', 'spectrum')} format): "
            f"`atmospec predict {path.name}` or `atmospec fit {path.name}` read those"
        )

    return hint_from(path, lambda p: read(p, hint=False, invalid="mask"), sentence)


def read_planet(path: str | Path, **options: Any) -> TransmissionSpectrum:
    """:func:`atmospec.molecules.io.read_transmission`, its refusals completed by
    :func:`transmission_hint`."""
    from atmospec.molecules.io import read_transmission

    try:
        return read_transmission(path, **options)
    except FileFormatError as err:
        said = transmission_hint(path)
        if said is None:
            raise
        raise FileFormatError(f"{err}; {said}") from None
