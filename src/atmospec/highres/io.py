"""Readers for high-resolution data: HPF spectra, muler templates and the NSO/Kitt Peak atlas."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np

from atmospec.errors import DataNotFoundError, FileFormatError
from atmospec.spectrum import Spectrum

__all__ = [
    "read_hpf",
    "read_muler_template",
    "read_psg_molecules",
    "read_solar_atlas",
    "MULER_TEMPLATES",
]

MULER_TEMPLATES = {
    "phoenix": "PHOENIX_10kK_hpf_template.csv",
    "telfit": "telfit_HPFtemplate_temp286_hum050.csv",
    "psg": "psg_trn_r100000_1.4_2.5_um.txt",
}

_FRAME = (
    "vacuum wavelengths in the observatory (topocentric) frame: the HPF pipeline applies no "
    "barycentric correction; BRVCORR in the header (m/s) is the correction to add to a "
    "measured RV"
)


def _berv_kms(header: Any, path: Path) -> float | None:
    """The header's barycentric correction BRVCORR (m/s) in km/s; None when absent."""
    if "BRVCORR" not in header:
        return None
    try:
        value = float(header["BRVCORR"]) / 1000.0
    except (TypeError, ValueError) as err:
        raise FileFormatError(f"{path}: BRVCORR {header['BRVCORR']!r} is not a number") from err
    if not np.isfinite(value):
        raise FileFormatError(f"{path}: BRVCORR is not finite ({header['BRVCORR']!r})")
    return value


def _exists(path: Path) -> None:
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file")


def read_hpf(path: str | Path, *, fiber: str = "Sci", order: int | None = None) -> list[Spectrum]:
    """Read an HPF spectrum: a Goldilocks file (28 orders) or a one-order table (WASP-69 stack).

    Goldilocks files hold image HDUs ``"<fiber> Flux"``, ``"<fiber> Error"`` and
    ``"<fiber> Wavl"`` (28 orders × 2048 pixels, Å); the stack is a binary table with columns
    wavelength (Å), flux, uncertainty. Wavelengths are vacuum, in the observatory frame (no
    barycentric correction; ``meta["berv_kms"]`` holds the header's BRVCORR in km/s).
    NaN pixels are masked.

    Args:
        path: the FITS file.
        fiber: ``"Sci"``, ``"Sky"`` or ``"Cal"`` (Goldilocks only).
        order: keep only this order index (0-27); all orders by default.

    Returns:
        One :class:`~atmospec.spectrum.Spectrum` per order (wavelengths stored in µm).

    Example:
        >>> import tempfile
        >>> from astropy.io import fits
        >>> w = np.linspace(8700.0, 8710.0, 100)                 # a one-order table, Å
        >>> flux = np.ones(w.size)
        >>> flux[3] = np.nan
        >>> cols = [fits.Column(name=n, format="D", array=a) for n, a in
        ...         (("wavelength", w), ("flux", flux), ("uncertainty", np.full(w.size, 0.01)))]
        >>> table = fits.BinTableHDU.from_columns(cols)
        >>> table.header["BRVCORR"] = 12345.0                     # m/s
        >>> path = Path(tempfile.mkdtemp()) / "stack.fits"
        >>> fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
        >>> (spec,) = read_hpf(path)
        >>> spec.name, round(float(spec.wavelength[0]), 4), int(spec.mask.sum())
        ('stack[0]', 0.87, 1)
        >>> spec.meta["berv_kms"], spec.meta["instrument"]
        (12.345, 'HPF')
    """
    from atmospec._fileio import first_block
    from atmospec.io._common import open_fits

    path = Path(path)
    _exists(path)
    if not first_block(path).startswith(b"SIMPLE  ="):
        from atmospec.io.other_kinds import spectrum_hint

        said = spectrum_hint(path)  # a transmission spectrum names `atmospec molecules`
        raise FileFormatError(
            f"{path}: not a FITS file; HPF spectra are FITS files (a Goldilocks file of 28 "
            "orders, or a one-order table)" + (f"; {said}" if said else "")
        )
    with open_fits(path) as hdul:  # read whole: truncated or corrupt files raise here
        names = [h.name.upper() for h in hdul]
        goldilocks = f"{fiber} FLUX".upper() in names
        if not goldilocks and len(hdul) < 2:
            raise FileFormatError(
                f"{path}: neither a Goldilocks file (HDUs '{fiber} Flux/Error/Wavl') nor an "
                f"HPF table (wavelength, flux, uncertainty); HDUs are {names}"
            )
        header = hdul[0].header if goldilocks else hdul[1].header
        meta = {
            "source": str(path),
            "object": str(header.get("OBJECT", "")),
            "date_obs": str(header.get("DATE-OBS", "")),
            "berv_kms": _berv_kms(header, path),
            "wavelength_frame": _FRAME,
            "instrument": "HPF",
        }
        if f"{fiber} FLUX".upper() in names:
            try:
                flux = np.asarray(hdul[f"{fiber} Flux"].data, dtype=np.float64)
                err = np.asarray(hdul[f"{fiber} Error"].data, dtype=np.float64)
                wave = np.asarray(hdul[f"{fiber} Wavl"].data, dtype=np.float64)
            except KeyError as missing:
                raise FileFormatError(f"{path}: Goldilocks HDU missing ({missing})") from missing
        elif len(hdul) > 1 and hasattr(hdul[1], "columns"):
            cols = [c.lower() for c in hdul[1].columns.names]
            need = {"wavelength", "flux", "uncertainty"}
            if not need <= set(cols):
                raise FileFormatError(
                    f"{path}: table lacks columns {sorted(need - set(cols))} (has {cols})"
                )
            data = hdul[1].data
            wave = np.asarray(data["wavelength"], dtype=np.float64)[None, :]
            flux = np.asarray(data["flux"], dtype=np.float64)[None, :]
            err = np.asarray(data["uncertainty"], dtype=np.float64)[None, :]
        else:
            raise FileFormatError(
                f"{path}: neither a Goldilocks file (HDUs '{fiber} Flux/Error/Wavl') nor an "
                f"HPF table (wavelength, flux, uncertainty); HDUs are {names}"
            )
    if flux.shape != wave.shape or err.shape != wave.shape:
        raise FileFormatError(f"{path}: flux {flux.shape}, error {err.shape}, wave {wave.shape}")
    orders = range(wave.shape[0]) if order is None else [order]
    out: list[Spectrum] = []
    for i in orders:
        if not 0 <= i < wave.shape[0]:
            raise FileFormatError(f"{path}: order {i} out of range 0-{wave.shape[0] - 1}")
        bad = ~np.isfinite(flux[i]) | ~np.isfinite(err[i]) | (err[i] <= 0)
        f = np.where(bad, 1.0, flux[i])
        e = np.where(bad, 1.0, err[i])
        out.append(
            Spectrum(
                wave[i],
                f,
                e,
                mask=bad,
                wave_unit="AA",
                meta={**meta, "order": i},
                name=f"{path.stem}[{i}]",
            )
        )
    return out


def read_muler_template(name: str, root: str | Path | None = None) -> Spectrum:
    """Read a muler template: ``"phoenix"`` (10,000 K on the HPF grid), ``"telfit"``, ``"psg"``.

    The PSG file has one transmittance column per molecule; its ``Total`` column is returned.
    Wavelengths are returned in µm (the PHOENIX template's are vacuum: Ca II 8662 sits at
    8664.5 Å).

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())                       # a tiny stand-in file, Å
        >>> _ = (root / MULER_TEMPLATES["phoenix"]).write_text(
        ...     "wavelength,flux\\n8700.0,1.0\\n8700.5,0.8\\n8700.5,0.8\\n8701.0,1.0\\n")
        >>> spec = read_muler_template("phoenix", root=root)      # duplicates dropped
        >>> spec.wavelength.round(5).tolist(), spec.flux.tolist(), spec.name
        ([0.87, 0.87005, 0.8701], [1.0, 0.8, 1.0], 'muler:phoenix')
        >>> try:
        ...     read_muler_template("kurucz")
        ... except FileFormatError as err:
        ...     print(err)
        unknown muler template 'kurucz'; known: ['phoenix', 'psg', 'telfit']
    """
    if name not in MULER_TEMPLATES:
        raise FileFormatError(f"unknown muler template {name!r}; known: {sorted(MULER_TEMPLATES)}")
    if root is None:
        from atmospec.data import require

        root = require("muler") / "templates"
    path = Path(root) / MULER_TEMPLATES[name]
    _exists(path)
    try:
        if name == "psg":
            arr = np.loadtxt(path, comments="#", usecols=(0, 1))
            wave_um, flux = arr[:, 0], arr[:, 1]
        else:
            arr = np.loadtxt(path, delimiter=",", skiprows=1)
            wave_um, flux = arr[:, 0] / 1e4, arr[:, 1]
    except ValueError as err:
        raise FileFormatError(f"{path}: cannot parse ({err})") from err
    _, keep = np.unique(wave_um, return_index=True)
    return Spectrum(
        wave_um[keep],
        flux[keep],
        meta={"source": str(path), "template": name, "credit": "muler (MIT)"},
        name=f"muler:{name}",
    )


def read_psg_molecules(
    band_um: tuple[float, float] | None = None, root: str | Path | None = None
) -> dict[str, Spectrum]:
    """The muler PSG transmittance (R = 100,000, 1.4-2.5 µm) split by molecule.

    The file (NASA-GSFC Planetary Spectrum Generator, Villanueva et al. 2018) has one column
    per absorber after the total: H2O, CO2, O3, N2O, CO, CH4, O2, N2, Rayleigh, CIA. Returns
    ``{name: Spectrum}`` for every column (``"Total"`` included), wavelengths in µm,
    restricted to ``band_um`` when given.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())                       # a tiny stand-in file, µm
        >>> rows = "".join(f"{1.5 + 0.001 * i:.3f} 0.90 0.92 0.98\\n" for i in range(8))
        >>> _ = (root / MULER_TEMPLATES["psg"]).write_text("# Wave/freq Total H2O CO2\\n" + rows)
        >>> mols = read_psg_molecules((1.501, 1.505), root=root)
        >>> sorted(mols), mols["H2O"].wavelength.size, float(mols["H2O"].flux[0])
        (['CO2', 'H2O', 'Total'], 5, 0.92)
    """
    if root is None:
        from atmospec.data import require

        root = require("muler") / "templates"
    path = Path(root) / MULER_TEMPLATES["psg"]
    _exists(path)
    names: list[str] = []
    with open(path) as fh:
        for line in fh:
            if line.startswith("# Wave"):
                names = line[1:].split()[1:]
                break
    if not names:
        raise FileFormatError(f"{path}: no '# Wave/freq ...' header naming the columns")
    try:
        arr = np.loadtxt(path, comments="#")
    except ValueError as err:
        raise FileFormatError(f"{path}: cannot parse ({err})") from err
    if arr.ndim != 2 or arr.shape[1] != len(names) + 1:
        raise FileFormatError(f"{path}: header names {len(names)} columns, data has {arr.shape}")
    _, keep = np.unique(arr[:, 0], return_index=True)
    arr = arr[keep]
    if band_um is not None:
        arr = arr[(arr[:, 0] >= band_um[0]) & (arr[:, 0] <= band_um[1])]
        if arr.shape[0] < 5:
            raise FileFormatError(f"{path}: fewer than 5 points in {band_um} µm")
    meta = {"source": str(path), "template": "psg", "credit": "muler (MIT); NASA-GSFC PSG"}
    return {
        name: Spectrum(
            arr[:, 0], arr[:, i + 1], meta={**meta, "molecule": name}, name=f"PSG {name}"
        )
        for i, name in enumerate(names)
    }


def read_solar_atlas(
    start: int, stop: int | None = None, root: str | Path | None = None
) -> dict[str, Spectrum]:
    """Read pages of the NSO/Kitt Peak FTS solar atlas (Livingston & Wallace 1991).

    Each ``wnXXXX.gz`` page covers XXXX to XXXX+25 cm⁻¹ (plus 2 cm⁻¹ overlaps, dropped here;
    its last "total" value is the ``dg`` parameter, also dropped). Columns are wavenumber, the
    solar component, the atmospheric (telluric) component and the total. Pages are scaled
    independently, so combine pages only after renormalising. Wavelengths are vacuum
    (λ = 1/σ), returned increasing, in µm. Credit: "NSO/Kitt Peak FTS data used here were
    produced by NSF/NOAO."

    Args:
        start: the first page's wavenumber (a multiple of 25, 1850-8975).
        stop: the last page (inclusive); ``start`` alone by default.
        root: the SolAtlas folder; the embedded splat data by default.

    Returns:
        ``{"solar": ..., "telluric": ..., "total": ...}`` spectra on one wavelength grid.

    Example:
        >>> import gzip, tempfile
        >>> root = Path(tempfile.mkdtemp())     # one tiny page: cm^-1, solar, telluric, total
        >>> page = ["8999.0 1 1 1", "9000.0 0.9 1.0 0.9", "9010.0 1.0 0.8 0.8",
        ...         "9020.0 1.0 1.0 1.0", "9026.0 1 1 1", "0 0 0 0.5"]   # overlaps, dg
        >>> with gzip.open(root / "wn9000.gz", "wt") as fh:
        ...     _ = fh.write("\\n".join(page) + "\\n")
        >>> atlas = read_solar_atlas(9000, root=root)
        >>> sorted(atlas), atlas["telluric"].wavelength.round(5).tolist()   # 1e4 / sigma
        (['solar', 'telluric', 'total'], [1.10865, 1.10988, 1.11111])
        >>> atlas["telluric"].flux.tolist(), atlas["solar"].flux.tolist()
        ([1.0, 0.8, 1.0], [1.0, 1.0, 0.9])
    """
    if root is None:
        from atmospec.data import require

        root = require("splat") / "resources" / "Telluric" / "SolAtlas"
    root = Path(root)
    pages = range(start, (stop if stop is not None else start) + 1, 25)
    rows = []
    for p in pages:
        path = root / f"wn{p:04d}.gz"
        _exists(path)
        try:
            with gzip.open(path, "rt") as fh:
                arr = np.loadtxt(fh)
        except (OSError, ValueError) as err:
            raise FileFormatError(f"{path}: cannot read the atlas page ({err})") from err
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise FileFormatError(f"{path}: expected 4 columns, found shape {arr.shape}")
        arr = arr[:-1]
        arr = arr[(arr[:, 0] >= p) & (arr[:, 0] < p + 25)]
        rows.append(arr)
    data = np.concatenate(rows)
    data = data[np.argsort(-data[:, 0])]  # decreasing wavenumber = increasing wavelength
    wave_um = 1e4 / data[:, 0]
    meta = {
        "source": str(root),
        "pages": list(pages),
        "credit": "NSO/Kitt Peak FTS data used here were produced by NSF/NOAO.",
        "wavelength_frame": "vacuum, ground-based (telluric lines at rest)",
    }
    return {
        key: Spectrum(wave_um, data[:, col], meta={**meta, "component": key}, name=f"NSO {key}")
        for key, col in (("solar", 1), ("telluric", 2), ("total", 3))
    }
