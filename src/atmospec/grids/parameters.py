"""The one table of physical parameter names, units and meanings used across atmospec."""

from __future__ import annotations

__all__ = ["END_MEMBERS", "PARAMETERS", "describe", "with_unit"]

#: name -> (astropy-style unit, description). Every grid, estimator and table in atmospec uses
#: these names. Grid-specific parameters are listed after the common ones.
PARAMETERS: dict[str, tuple[str, str]] = {
    "teff": ("K", "effective temperature"),
    "logg": ("dex(cm/s2)", "log10 of the surface gravity in cgs units"),
    "mh": ("dex", "metallicity [M/H], log10 relative to solar"),
    "co": ("", "carbon-to-oxygen ratio C/O (relative to solar in TelescopeML's grid)"),
    "fsed": (
        "",
        "cloud sedimentation efficiency f_sed (Ackerman & Marley 2001); the cloud-free "
        "Sonora Diamondback models ('nc') are stored as fsed = 10",
    ),
    "alpha": ("dex", "alpha-element enhancement [alpha/Fe]"),
    "kzz": ("dex(cm2/s)", "log10 of the vertical eddy diffusion coefficient K_zz"),
    "cloudy": (
        "",
        "Burrows et al. (2006) cloud flag: 1 = cloudy models ('cldf100' in the file names), "
        "0 = clear models ('cldnc'); categorical, never interpolated",
    ),
}

#: name -> the value at which a grid's edge is a physical end-member, not the end of the
#: models' reach: a posterior piled there is an answer (fsed = 10 is Diamondback's cloud-free
#: 'nc' models: a T dwarf without condensate clouds), not a sign the object lies beyond it.
END_MEMBERS: dict[str, float] = {"fsed": 10.0}


def describe(name: str) -> str:
    """A one-line description of parameter ``name`` with its unit.

    Example:
        >>> describe("teff")
        'teff [K]: effective temperature'
    """
    unit, text = PARAMETERS.get(name, ("", "grid-specific parameter"))
    return f"{name} [{unit}]: {text}" if unit else f"{name}: {text}"


def with_unit(name: str) -> str:
    """A column header for parameter ``name``: its name and unit (a unitless one alone).

    Example:
        >>> with_unit("teff"), with_unit("fsed"), with_unit("x")
        ('teff [K]', 'fsed', 'x')
    """
    unit = PARAMETERS.get(name, ("", ""))[0]
    return f"{name} [{unit}]" if unit else name
