"""Readers of tables whose header gives each column a unit: ECSV, IPAC and VOTable.

ECSV is what atmospec writes; IPAC tables are what the NASA/IPAC archives (IRSA, the
Exoplanet Archive) serve; VOTables are the Virtual Observatory's format (VizieR, the SVO,
Simple Spectral Access services). astropy parses all three; the columns are then matched
by name as in every other reader, and a VOTable's columns without a known name are matched
by their UCD or utype (``em.wl``, ``phot.flux.density``, ``stat.error``; the IVOA Spectrum
data model's ``SpectralAxis`` / ``FluxAxis`` utypes).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from atmospec.errors import FileFormatError
from atmospec.io._common import (
    ERROR_NAMES,
    FLUX_NAMES,
    MASK_NAMES,
    WAVE_NAMES,
    Invalid,
    build_spectrum,
    check_file,
    check_flux_unit,
    check_wave_unit,
    find_column,
    flux_column_unit,
    match_columns,
    meta_from_json,
    open_text,
    wave_column_unit,
)
from atmospec.io.error_columns import find_error_column, note_errors, to_sigma
from atmospec.io.flux_density import file_flux_unit, mark_assumed, mark_overridden
from atmospec.spectrum import Spectrum

__all__ = [
    "read_ecsv",
    "read_ipac",
    "read_votable",
    "spectrum_from_table",
    "ECSV_META_KEY",
    "vo_roles",
]

_T = TypeVar("_T")

ECSV_META_KEY = "atmospec"  # table meta key holding the JSON name/meta of files atmospec writes


def read_ecsv(
    path: str | Path,
    *,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Read an ECSV table (units and metadata in its YAML header), e.g. one atmospec wrote.

    Columns are matched as in :func:`atmospec.io.text.read_text`; a ``mask`` column restores
    the mask, and the metadata atmospec stores (``meta['atmospec']``) restores name and meta
    exactly, but for ``meta['source']``: it is this file (messages name it), and where the
    spectrum was written from (a library key, another file) is kept as ``meta['origin']``.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.ecsv"
        >>> _ = f.write_text("# %ECSV 1.0\\n# ---\\n# datatype:\\n"
        ...                  "# - {name: wave, unit: nm, datatype: float64}\\n"
        ...                  "# - {name: flux, unit: Jy, datatype: float64}\\n"
        ...                  "wave flux\\n1000 2.0\\n1500 2.5\\n")
        >>> s = read_ecsv(f)
        >>> s.wavelength.tolist(), s.flux_unit
        ([1.0, 1.5], 'Jy')
    """
    from astropy.table import Table

    p = check_file(path)
    src = str(p)
    lines = open_text(p)
    if not lines[0].startswith("# %ECSV"):
        raise FileFormatError(f"{src}: not an ECSV file (first line is not '# %ECSV <version>')")
    table = _parsed(lambda: Table.read("\n".join(lines), format="ascii.ecsv"), src, "ECSV")
    return spectrum_from_table(
        table,
        src=src,
        fmt="ecsv",
        name=p.name.split(".")[0],
        stored=table.meta.get(ECSV_META_KEY),
        given=(wave_col, flux_col, err_col),
        units=(wave_unit, flux_unit),
        invalid=invalid,
    )


def read_ipac(
    path: str | Path,
    *,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Read an IPAC table (``\\KEY = value`` lines, then ``|``-delimited header rows of names,
    types and units), as the NASA/IPAC archives serve spectra.

    Columns are matched by name as in the other readers; units come from the header's unit
    row; null values become NaN (refused, or masked with ``invalid="mask"``). A keyword
    ``OBJECT`` names the spectrum.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.tbl"
        >>> _ = f.write_text("\\\\OBJECT = 'HD 3651B'\\n"
        ...                  "|  wave  |  flux  |  error |\\n"
        ...                  "| double | double | double |\\n"
        ...                  "|   um   |   Jy   |   Jy   |\\n"
        ...                  "   1.0     2.0      0.1\\n   1.5     2.5      0.1\\n")
        >>> s = read_ipac(f)
        >>> s.name, s.wavelength.tolist(), s.flux_unit
        ('HD 3651B', [1.0, 1.5], 'Jy')
    """
    from astropy.table import Table

    p = check_file(path)
    src = str(p)
    lines = open_text(p)
    table = _parsed(lambda: Table.read(lines, format="ascii.ipac"), src, "IPAC table")
    keywords = {
        str(k): v.get("value") if isinstance(v, Mapping) else v
        for k, v in dict(table.meta.get("keywords", {})).items()
    }
    return spectrum_from_table(
        table,
        src=src,
        fmt="ipac",
        name=_object_name(keywords) or p.name.split(".")[0],
        header=keywords,
        given=(wave_col, flux_col, err_col),
        units=(wave_unit, flux_unit),
        invalid=invalid,
    )


def read_votable(
    path: str | Path,
    *,
    table: int | None = None,
    wave_col: str | None = None,
    flux_col: str | None = None,
    err_col: str | None = None,
    wave_unit: str | None = None,
    flux_unit: str | None = None,
    invalid: Invalid = "error",
) -> Spectrum:
    """Read a spectrum from a VOTable (an IVOA Simple Spectral Access answer, a VizieR or
    SVO table).

    ``table`` is the index of the TABLE element (default: the first holding a wavelength and
    a flux column). Columns are matched by name as in the other readers; a role no name
    matches is taken from the column's UCD or utype (:func:`vo_roles`). Units come from each
    FIELD's ``unit``; null values become NaN; a table of one row whose cells are arrays is
    read from that row. A ``PARAM`` or ``INFO`` named ``TargetName`` / ``OBJECT`` names the
    spectrum.

    Example:
        >>> import pathlib, tempfile
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.vot"
        >>> _ = f.write_text('<?xml version="1.0"?><VOTABLE version="1.4"><RESOURCE><TABLE>'
        ...     '<FIELD name="SPECTRAL" datatype="double" unit="um" ucd="em.wl"/>'
        ...     '<FIELD name="FLUX" datatype="double" unit="Jy" ucd="phot.flux.density"/>'
        ...     '<DATA><TABLEDATA><TR><TD>1.0</TD><TD>2.0</TD></TR>'
        ...     '<TR><TD>1.5</TD><TD>2.5</TD></TR></TABLEDATA></DATA></TABLE></RESOURCE>'
        ...     '</VOTABLE>')
        >>> s = read_votable(f)
        >>> s.wavelength.tolist(), s.flux_unit, s.meta["columns_from_ucd"]
        ([1.0, 1.5], 'Jy', {'wavelength': 'SPECTRAL'})
    """
    from astropy.io.votable import parse
    from astropy.io.votable.tree import Info, Param

    p = check_file(path)
    src = str(p)

    def elements_of() -> tuple[Any, list[Any]]:
        with warnings.catch_warnings():  # VOUnit and schema remarks: the units are checked below
            warnings.simplefilter("ignore")
            vot = parse(str(p), verify="ignore")
            return vot, list(vot.iter_tables())

    vot, elements = _parsed(elements_of, src, "VOTable")
    if not elements:
        raise FileFormatError(f"{src}: a VOTable without any TABLE element; no spectrum in it")
    if table is not None:
        if not 0 <= table < len(elements):
            raise FileFormatError(f"{src}: no TABLE {table}; it holds {len(elements)}")
        chosen = elements[table]
    else:
        usable = [t for t in elements if _has_spectrum(t)]
        chosen = usable[0] if usable else elements[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = chosen.to_table(use_names_over_ids=True)
    fields = {f.name: f for f in chosen.fields}
    given = [wave_col, flux_col, err_col]
    from_ucd: dict[str, str] = {}
    names = list(data.colnames)
    meanings = vo_roles(fields.values())
    for k, (role, synonyms) in enumerate(
        (("wavelength", WAVE_NAMES), ("flux", FLUX_NAMES), ("uncertainty", ERROR_NAMES))
    ):
        by_meaning = meanings.get(role)
        if given[k] is None and not match_columns(names, synonyms) and by_meaning is not None:
            given[k] = from_ucd[role] = by_meaning
    params = {
        str(x.name): x.value
        for x in (*vot.iter_fields_and_params(), *vot.iter_info())
        if x.name and isinstance(x, (Param, Info))  # a Param is a kind of Field
    }
    header = {k: v for k, v in params.items() if isinstance(v, (str, int, float))}
    return spectrum_from_table(
        data,
        src=src,
        fmt="votable",
        name=_object_name(header) or p.name.split(".")[0],
        header=header,
        given=(given[0], given[1], given[2]),
        units=(wave_unit, flux_unit),
        invalid=invalid,
        extra={"columns_from_ucd": from_ucd} if from_ucd else None,
        raw_units={n: f.unit for n, f in fields.items()},
    )


_ROLE_UCD = {
    "wavelength": ("em.wl", "em.freq", "em.wavenumber", "em.energy"),
    "flux": ("phot.flux.density", "phot.fludens"),
    "uncertainty": ("stat.error",),
}
_ROLE_UTYPE = {
    "wavelength": "spectralaxis.value",
    "flux": "fluxaxis.value",
    "uncertainty": "fluxaxis.accuracy.staterror",
}


def vo_roles(fields: Any) -> dict[str, str]:
    """Role (``wavelength``, ``flux``, ``uncertainty``) -> the name of the one VOTable FIELD
    whose UCD's first word (or utype, after the IVOA Spectrum data model) says it; a role
    that no field or several fields claim is left out.

    A flux error's UCD begins with ``stat.error`` (``stat.error;phot.flux.density``); a flux
    column's begins with ``phot.flux.density`` (UCD1+) or ``phot.fluDens``. A spectral axis
    in frequency, wavenumber or energy (``em.freq``, ...) takes the wavelength role where no
    ``em.wl`` column does: its unit converts it.

    Example:
        >>> from types import SimpleNamespace as F
        >>> vo_roles([F(name="x", ucd="em.wl", utype=None),
        ...           F(name="y", ucd="phot.flux.density;em.wl", utype=None),
        ...           F(name="e", ucd="stat.error;phot.flux.density", utype=None)])
        {'wavelength': 'x', 'flux': 'y', 'uncertainty': 'e'}
    """
    out: dict[str, str] = {}
    fields = list(fields)
    for role, words in _ROLE_UCD.items():
        for word in (*words, None):  # in order of preference; None: the utype
            hits = [
                str(f.name)
                for f in fields
                if (
                    str(f.ucd or "").split(";")[0].strip().lower() == word
                    if word is not None
                    else str(f.utype or "").lower().endswith(_ROLE_UTYPE[role])
                )
            ]
            if hits:
                if len(hits) == 1:
                    out[role] = hits[0]
                break
    return out


def _parsed(read: Callable[[], _T], src: str, what: str) -> _T:
    """``read()``, with whatever astropy raises on a malformed file (many types: YAML, XML,
    header rows) turned into a FileFormatError naming the file."""
    try:
        return read()
    except Exception as err:
        raise FileFormatError(f"{src}: malformed {what} ({type(err).__name__}: {err})") from err


def _has_spectrum(element: Any) -> bool:
    names = [str(f.name) for f in element.fields]
    roles = vo_roles(element.fields)
    wave = bool(match_columns(names, WAVE_NAMES)) or "wavelength" in roles
    flux = bool(match_columns(names, FLUX_NAMES)) or "flux" in roles
    return wave and flux


def _object_name(header: Mapping[str, Any]) -> str | None:
    for key, value in header.items():
        if key.lower() in ("object", "targetname", "target", "target_name") and str(value).strip():
            return str(value).strip()
    return None


def _restored_meta(stored: Any, src: str) -> tuple[str | None, dict[str, Any]]:
    """The name and meta atmospec stored in a file it wrote, as read from ``src``: the
    ``source`` is ``src``, the file read (messages name the file the user gave), and the one
    the spectrum was written from (a library key, an earlier file) is kept as
    ``meta["origin"]`` (the first one, over several writes and reads).

    Example:
        >>> _restored_meta('{"name": "HD 3651B", "meta": {"source": "10703_10070"}}', "hd.ecsv")
        ('HD 3651B', {'source': 'hd.ecsv', 'origin': '10703_10070'})
    """
    name, meta = meta_from_json(str(stored), source=src)
    earlier = meta.pop("source", None)
    out: dict[str, Any] = {"source": src}
    if earlier is not None and str(earlier) != src and "origin" not in meta:
        out["origin"] = earlier
    return name, {**out, **meta}


def spectrum_from_table(
    table: Any,
    *,
    src: str,
    fmt: str,
    name: str,
    given: tuple[str | None, str | None, str | None],
    units: tuple[str | None, str | None],
    invalid: Invalid,
    stored: Any = None,
    header: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    raw_units: Mapping[str, Any] | None = None,
) -> Spectrum:
    """A Spectrum from an astropy table with per-column units (ECSV, IPAC, VOTable, a FITS
    binary table): the wavelength, flux, error (or variance, inverse variance) and mask
    columns found by name (or ``given``), units from each column (``raw_units``: the file's
    own unit strings, where astropy's parse would lose a spelling), a table of one row of
    array cells read from that row. ``stored`` is the JSON of the name and meta atmospec wrote
    into its own files (a table meta key, a FITS header card), restored with ``src`` as the
    source (the one written, if another, as ``meta["origin"]``); without it the meta records
    the source, format, ``header`` and ``extra``.

    Example:
        >>> from astropy.table import Table
        >>> t = Table({"wave": [1000.0, 2000.0], "flux": [2.0, 3.0], "ivar": [100.0, 25.0]})
        >>> t["wave"].unit, t["flux"].unit = "nm", "Jy"
        >>> s = spectrum_from_table(t, src="mem", fmt="table", name="toy", given=(None,) * 3,
        ...                         units=(None, None), invalid="error")
        >>> s.wavelength.tolist(), s.flux_unit, s.uncertainty.tolist()  # 1 / sqrt(ivar)
        ([1.0, 2.0], 'Jy', [0.1, 0.2])
        >>> s.meta["uncertainty_from"]
        "inverse variance column 'ivar' converted to 1-sigma errors"
    """
    names = list(table.colnames)
    cw = find_column(names, WAVE_NAMES, what="wavelength", source=src, given=given[0])
    cf = find_column(names, FLUX_NAMES, what="flux", source=src, given=given[1])
    ce, kind = find_error_column(names, source=src, given=given[2])
    cm = find_column(names, MASK_NAMES, what="mask", source=src, required=False)
    assert cw is not None and cf is not None
    wave_unit, flux_unit = units

    def unit_of(col: str) -> str | None:
        raw = (raw_units or {}).get(col)
        unit = raw if raw is not None else table[col].unit
        return (
            None if unit is None else str(unit.to_string() if hasattr(unit, "to_string") else unit)
        )

    def values(col: str | None) -> NDArray[np.float64] | None:
        if col is None:
            return None
        column = table[col]
        # one row of array cells (SSA answers): fixed length, or variable ("*": object cells)
        arrays = len(column) > 0 and np.ndim(column[0]) == 1
        if arrays and len(column) > 1:
            raise FileFormatError(
                f"{src}: column '{col}' holds {len(column)} spectra, one per row; atmospec "
                "reads one spectrum per file: write each row to its own file"
            )
        cells = np.ma.asarray(column[0] if arrays else column)
        if cells.ndim != 1:
            raise FileFormatError(
                f"{src}: column '{col}' has shape {cells.shape}; expected one value per pixel, "
                "or a single row holding the arrays"
            )
        try:
            return np.ma.filled(cells.astype(np.float64), np.nan)
        except (TypeError, ValueError):
            raise FileFormatError(f"{src}: column '{col}' does not hold numbers") from None

    wunit = check_wave_unit(
        wave_unit or wave_column_unit(cw, unit_of(cw), source=src), source=src, column=cw
    )
    file_unit = None if flux_unit is not None else flux_column_unit(cf, unit_of(cf), ce, source=src)
    funit = check_flux_unit(
        flux_unit if flux_unit is not None else file_unit, source=src, column=cf
    )
    if stored is not None:
        out_name, meta = _restored_meta(stored, src)
    else:
        out_name = name
        meta = {"source": src, "format": fmt}
        if fmt == "ecsv":
            meta.update({k: v for k, v in table.meta.items() if isinstance(v, (str, int, float))})
        if header:
            meta["header"] = dict(header)
        meta.update(extra or {})
        note_errors(meta, names, ce, kind)
    # atmospec writes a relative flux as F_lambda: only someone else's file leaves it open
    mark_assumed(meta, funit, stated=flux_unit is not None or bool(file_unit) or bool(stored))
    if flux_unit is not None:
        mark_overridden(meta, flux_unit, file_flux_unit(cf, unit_of(cf), ce, source=src))
    mask = values(cm)
    return build_spectrum(
        values(cw),  # type: ignore[arg-type]
        values(cf),  # type: ignore[arg-type]
        to_sigma(values(ce), kind),
        source=src,
        wave_unit=wunit,
        flux_unit=funit,
        mask=None if mask is None else np.nan_to_num(mask, nan=1.0).astype(bool),
        meta=meta,
        name=out_name,
        invalid=invalid,
    )
