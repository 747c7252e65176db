"""Optional dependencies: the one place that imports them and names the extra that installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from atmospec.errors import MissingDependencyError

__all__ = ["EXTRAS", "require"]

#: Each extra of ``pip install 'atmospec[EXTRA]'`` and the top-level modules it provides.
EXTRAS: dict[str, tuple[str, ...]] = {
    "scale": ("dask", "distributed", "zarr", "pyarrow"),
    "tune": ("optuna",),
    "explain": ("shap",),
    "transit": ("celerite2", "batman", "pyarrow"),
    "specutils": ("specutils",),
}


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (e.g. ``"pyarrow.parquet"``), installed by ``atmospec[extra]``.

    Raises:
        MissingDependencyError: the module cannot be imported; the message names the
            ``pip install`` command of the extra.
        ValueError: ``extra`` does not list ``module`` (a mistake in atmospec itself).

    Example:
        >>> require("optuna", "scale")
        Traceback (most recent call last):
        ...
        ValueError: the extra 'scale' does not provide optuna; see atmospec._optional.EXTRAS
    """
    top = module.partition(".")[0]
    if top not in EXTRAS.get(extra, ()):
        raise ValueError(
            f"the extra {extra!r} does not provide {top}; see atmospec._optional.EXTRAS"
        )
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"this needs the optional dependency {top}, which cannot be imported ({err}); "
            f"install it with: pip install 'atmospec[{extra}]'  (or 'atmospec[all]' for every "
            "optional capability)",
            name=top,
        ) from err
