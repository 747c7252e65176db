"""Transit spectroscopy: Ariel raw-format io, calibration, simulator, detrenders, scoring."""

from __future__ import annotations

from atmospec.transit.calibration import CalibrationConfig, calibrate
from atmospec.transit.detrenders import DepthSpectrum, Detrender, make_detrender
from atmospec.transit.io import RawObservation, read_planet
from atmospec.transit.observation import TransitObservation
from atmospec.transit.scoring import ariel_score, coverage
from atmospec.transit.simulator import SimulationConfig, simulate_dataset, simulate_planet

__all__ = [
    "CalibrationConfig",
    "DepthSpectrum",
    "Detrender",
    "RawObservation",
    "SimulationConfig",
    "TransitObservation",
    "ariel_score",
    "calibrate",
    "coverage",
    "make_detrender",
    "read_planet",
    "simulate_dataset",
    "simulate_planet",
]
