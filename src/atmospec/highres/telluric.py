"""TelluricModel: Earth's atmospheric transmission as a second line-by-line emulator."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from atmospec.highres.emulator import LineEmulator
from atmospec.highres.linefinder import LineList, find_lines

__all__ = ["TelluricModel", "MolecularTelluric", "JointModel", "clone_molecules", "decompose"]

_C_KMS = 299_792.458


class TelluricModel(nn.Module):
    """Telluric transmission T(λ) = exp(-s · τ(λ)) from a :class:`LineEmulator` τ.

    The emulator is evaluated in the observatory frame (an optional velocity ``rv`` shifts it,
    for data already moved to another frame) and its optical depth is scaled by ``s`` (airmass
    and water column). The star's model is multiplied by T *before* the instrumental
    convolution (see :class:`~atmospec.highres.extrinsic.ExtrinsicModel`).

    Args:
        emulator: the pre-trained telluric line model (e.g. a clone of a TelFit or PSG template).
        scale: initial optical-depth scale s.
        rv: velocity of the telluric frame relative to the data's wavelength frame, km/s.

    Example:
        >>> import torch
        >>> from atmospec.highres.linefinder import LineList
        >>> em = LineEmulator(LineList([9000.0], [0.05], [0.03], [0.01]), device="cpu")
        >>> tell = TelluricModel(em, scale=2.0)
        >>> wl = torch.tensor([9000.0], dtype=torch.float64)
        >>> bool(torch.isclose(tell(wl), em(wl) ** 2).item())
        True
    """

    def __init__(self, emulator: LineEmulator, *, scale: float = 1.0, rv: float = 0.0) -> None:
        super().__init__()
        self.emulator = emulator
        ref = emulator.center0
        self.ln_scale = nn.Parameter(
            torch.tensor(math.log(scale), dtype=ref.dtype, device=ref.device)
        )
        self.rv = nn.Parameter(torch.tensor(float(rv), dtype=ref.dtype, device=ref.device))
        self.rv.requires_grad_(False)

    @property
    def scale(self) -> torch.Tensor:
        return torch.exp(self.ln_scale)

    def optical_depth(self, wavelength: torch.Tensor) -> torch.Tensor:
        return self.scale * self.emulator.optical_depth(wavelength / (1.0 + self.rv / _C_KMS))

    def forward(self, wavelength: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.optical_depth(wavelength))


class MolecularTelluric(nn.Module):
    """Earth's transmission as a product over molecules: T(λ) = exp(-Σ_m s_m τ_m(λ)).

    Each molecule is a :class:`TelluricModel` (its own line emulator and optical-depth scale
    s_m: a well-mixed gas such as CO2 scales with airmass, water with the water column too),
    all sharing one velocity shift.

    Example:
        >>> import torch
        >>> from atmospec.highres.linefinder import LineList
        >>> h2o = LineEmulator(LineList([9000.0], [0.05], [0.03], [0.01]), device="cpu")
        >>> co2 = LineEmulator(LineList([9001.0], [0.02], [0.03], [0.01]), device="cpu")
        >>> t = MolecularTelluric({"H2O": h2o, "CO2": co2})
        >>> wl = torch.tensor([9000.0, 9001.0], dtype=torch.float64)
        >>> bool(torch.allclose(t(wl), h2o(wl) * co2(wl)))
        True
    """

    def __init__(self, emulators: Mapping[str, LineEmulator], *, rv: float = 0.0) -> None:
        super().__init__()
        if not emulators:
            raise ValueError("MolecularTelluric needs at least one molecule")
        self.molecules = nn.ModuleDict({k: TelluricModel(v) for k, v in emulators.items()})
        ref = next(iter(emulators.values())).center0
        self.rv = nn.Parameter(torch.tensor(float(rv), dtype=ref.dtype, device=ref.device))
        self.rv.requires_grad_(False)

    def telluric_models(self) -> dict[str, TelluricModel]:
        """Each molecule's :class:`TelluricModel` (``molecules`` with its value type)."""
        return {k: cast(TelluricModel, m) for k, m in self.molecules.items()}

    def scales(self) -> dict[str, float]:
        """The fitted optical-depth scale of each molecule."""
        return {k: float(m.scale.detach()) for k, m in self.telluric_models().items()}

    def optical_depth(self, wavelength: torch.Tensor) -> torch.Tensor:
        wl = wavelength / (1.0 + self.rv / _C_KMS)
        parts = [m.scale * m.emulator.optical_depth(wl) for m in self.telluric_models().values()]
        tau = parts[0]
        for part in parts[1:]:
            tau = tau + part
        return tau

    def forward(self, wavelength: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.optical_depth(wavelength))


class JointModel(nn.Module):
    """Star × telluric × constant continuum, both line models evaluated on one grid.

    For spectra at a resolution far above the lines' widths (an FTS atlas), no convolution.

    Example:
        >>> import torch
        >>> star = LineEmulator(LineList([9002.0], [0.02], [0.08], [0.001]), device="cpu")
        >>> h2o = LineEmulator(LineList([9001.0], [0.004], [0.012], [0.001]), device="cpu")
        >>> joint = JointModel(star, TelluricModel(h2o))
        >>> wl = torch.tensor([9001.0, 9002.0], dtype=torch.float64)
        >>> bool(torch.allclose(joint(wl), star(wl) * h2o(wl))), float(joint.level.detach())
        (True, 1.0)
    """

    def __init__(self, star: LineEmulator, telluric: nn.Module) -> None:
        super().__init__()
        self.star = star
        self.telluric = telluric
        ref = star.center0
        self.level = nn.Parameter(torch.tensor(1.0, dtype=ref.dtype, device=ref.device))

    def forward(self, wavelength: torch.Tensor) -> torch.Tensor:
        return self.level * self.star(wavelength) * self.telluric(wavelength)


def clone_molecules(
    wavelength: np.ndarray,
    columns: Mapping[str, np.ndarray],
    *,
    prominence: float = 0.003,
    min_depth: float = 0.01,
    rounds: int = 2,
    epochs: int = 200,
    profile: str = "voigt",
    device: str | torch.device | None = None,
) -> dict[str, LineEmulator]:
    """Clone each molecule's transmittance (e.g. the PSG columns) into its own line emulator.

    Molecules whose deepest line is shallower than ``min_depth`` in the band are skipped.

    Example:
        >>> import numpy as np
        >>> w = np.linspace(9000.0, 9004.0, 801)
        >>> co2 = np.exp(-0.3 * np.exp(-0.5 * ((w - 9002.0) / 0.03) ** 2))
        >>> ems = clone_molecules(w, {"CO2": co2, "O3": np.ones_like(w)}, rounds=1,
        ...                       epochs=50, device="cpu")
        >>> sorted(ems), ems["CO2"].n_lines
        (['CO2'], 1)
    """
    from atmospec.highres.emulator import clone

    out: dict[str, LineEmulator] = {}
    for name, flux in columns.items():
        f = np.asarray(flux, dtype=np.float64)
        if 1.0 - float(np.min(f)) < min_depth:
            continue
        em = clone(
            wavelength,
            f,
            prominence=prominence,
            rounds=rounds,
            epochs=epochs,
            profile=profile,
            device=device,
        )
        if em.n_lines:
            em.meta["molecule"] = name
            out[name] = em
    return out


def _restrict(em: LineEmulator, lo: float, hi: float, min_depth: float) -> LineEmulator:
    """A copy of ``em`` with only its lines in [lo, hi] deeper than ``min_depth``."""
    ll = em.lines()
    keep = (ll.center > lo) & (ll.center < hi) & (ll.depth > min_depth)
    if not keep.any():
        keep = (ll.center > lo) & (ll.center < hi)
    sub = ll.select(keep)
    return LineEmulator(sub, **em.settings(), device=em.center0.device)


def decompose(
    wavelength: np.ndarray,
    total: np.ndarray,
    telluric_prior: LineEmulator | Mapping[str, LineEmulator],
    *,
    prominence: float = 0.01,
    star_sigma_kms: tuple[float, float] = (1.2, 10.0),
    star_gamma_kms: float = 10.0,
    telluric_sigma_kms: tuple[float, float] = (0.1, 1.0),
    telluric_gamma_cm: float = 0.1,
    max_shift_kms: float = 0.6,
    star_shift_kms: float = 3.0,
    l1: float = 1e-5,
    robust: float = 0.01,
    epochs: tuple[int, int] = (150, 400),
    lr: float = 0.01,
) -> tuple[JointModel, dict[str, Any]]:
    """Split an observed (star × atmosphere) spectrum into its stellar and telluric parts.

    The model is ``level · S(λ) · T(λ)`` with T a :class:`MolecularTelluric` built from the
    prior (one line emulator per molecule, e.g. clones of the PSG columns) and S a stellar
    line emulator found in the data. Physics separates the two:

    - **positions**: Earth's lines stay where the prior puts them (each may move by at most
      ``max_shift_kms``, plus one common velocity shift), their strengths scale per molecule
      (airmass, water column) and each line's amplitude may change only against an L1
      penalty ``l1 · Σ|Δ ln A|``;
    - **widths**: telluric Gaussian widths are thermal Doppler widths of cold molecules,
      bounded to ``telluric_sigma_kms`` (CO2 at 250 K: 0.22 km/s), while stellar lines are
      broadened by the photosphere's thermal motion, turbulence and rotation, bounded below
      by ``star_sigma_kms[0]`` (the Sun: ≳ 1.2 km/s), with Lorentzian (damping) half-widths
      below ``star_gamma_kms``; telluric Lorentzian half-widths are
      pressure widths, at most ``telluric_gamma_cm`` (cm⁻¹; air-broadening coefficients of
      H2O and CO2 are ≤ 0.1 cm⁻¹ atm⁻¹). Stellar lines may move by at most
      ``star_shift_kms`` from where they were found. Bounds are enforced by projection
      after each Adam step.

    Steps: (1) fit T alone to ``total`` with a robust (Cauchy, scale ``robust``) loss that
    ignores the stellar lines; (2) find the stellar lines in ``total / T``, dropping narrow
    features at the cores of telluric lines (misfit telluric residue); (3) fit S and T
    jointly (squared error). ``epochs`` gives the Adam steps of (1) and (3).

    Returns:
        The fitted :class:`JointModel` and a summary dict.

    Example:
        >>> import torch
        >>> w = np.linspace(9000.0, 9004.0, 801)
        >>> h2o = LineEmulator(LineList([9001.0, 9003.0], [0.004, 0.003], [0.012, 0.012],
        ...                             [0.001, 0.001]), device="cpu")   # 0.4 km/s: cold
        >>> star = np.exp(-0.2 * np.exp(-0.5 * ((w - 9002.0) / 0.08) ** 2))   # 2.7 km/s
        >>> total = 0.98 * star * h2o(torch.as_tensor(w)).detach().numpy()
        >>> joint, info = decompose(w, total, {"H2O": h2o}, epochs=(20, 20))
        >>> info["n_star_lines"], info["n_telluric_lines"], round(info["telluric_scales"]["H2O"], 2)
        (1, {'H2O': 2}, 1.0)
        >>> round(float(joint.star.lines().center[0]), 1)   # the stellar line, found in the data
        9002.0
    """
    from tqdm.auto import trange

    from atmospec._logging import progress_enabled

    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(total, dtype=np.float64)
    priors = (
        {"telluric": telluric_prior}
        if isinstance(telluric_prior, LineEmulator)
        else dict(telluric_prior)
    )
    first = next(iter(priors.values()))
    dev = first.center0.device
    kw: dict[str, Any] = {"dtype": first.center0.dtype, "device": dev}
    lam = float(np.median(w))
    to_wl = lam / _C_KMS  # km/s -> wavelength units at the band centre
    ems = {k: _restrict(v, w[0] - 1.0, w[-1] + 1.0, 0.5 * robust) for k, v in priors.items()}
    tell = MolecularTelluric(ems)
    tell.rv.requires_grad_(True)
    wt = torch.as_tensor(w, **kw)
    ft = torch.as_tensor(f, **kw)
    prior_ln_amp = {
        k: m.emulator.ln_amp.detach().clone() for k, m in tell.telluric_models().items()
    }
    t_sig = (math.log(telluric_sigma_kms[0] * to_wl), math.log(telluric_sigma_kms[1] * to_wl))
    s_sig = (math.log(star_sigma_kms[0] * to_wl), math.log(star_sigma_kms[1] * to_wl))
    max_shift = max_shift_kms * to_wl
    t_gam_max = math.log(telluric_gamma_cm * lam / (1e8 / lam))  # HWHM in wavelength units
    star_shift = star_shift_kms * to_wl
    s_gam_max = math.log(star_gamma_kms * to_wl)
    with torch.no_grad():
        for m in tell.telluric_models().values():
            m.emulator.ln_sigma.clamp_(*t_sig)
            m.emulator.ln_gamma.clamp_(max=t_gam_max)
            m.emulator.set_windows()

    def project(star: LineEmulator | None) -> None:
        with torch.no_grad():
            for m in tell.telluric_models().values():
                m.emulator.ln_sigma.clamp_(*t_sig)
                m.emulator.ln_gamma.clamp_(max=t_gam_max)
                m.emulator.d_center.clamp_(-max_shift, max_shift)
            if star is not None:
                star.ln_sigma.clamp_(*s_sig)
                star.ln_gamma.clamp_(max=s_gam_max)
                star.d_center.clamp_(-star_shift, star_shift)

    def l1_penalty() -> torch.Tensor:
        total = torch.zeros((), **kw)
        for k, m in tell.telluric_models().items():
            total = total + (m.emulator.ln_amp - prior_ln_amp[k]).abs().sum()
        return l1 * total

    def run(model: nn.Module, n: int, loss_fn: Any, star: LineEmulator | None, desc: str) -> float:
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        emus = [e for e in model.modules() if isinstance(e, LineEmulator)]
        last = math.nan
        for epoch in trange(n, desc=desc, disable=not progress_enabled(), leave=False):
            if epoch and epoch % 50 == 0:
                for e in emus:
                    e.set_windows()
            opt.zero_grad()
            r = model(wt) - ft
            loss = loss_fn(r)
            (loss + l1_penalty()).backward()
            opt.step()
            project(star)
            last = float((r.detach() ** 2).mean())
        for e in emus:
            e.set_windows()
        return last

    # (1) the telluric model alone, robust to the stellar lines
    level = nn.Parameter(torch.tensor(float(np.percentile(f, 99)), **kw))

    class _TellOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.t = tell
            self.level = level

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.level * self.t(x)

    def cauchy(r: torch.Tensor) -> torch.Tensor:
        return robust**2 * torch.log1p((r / robust) ** 2).mean()

    run(_TellOnly(), epochs[0], cauchy, None, "telluric")

    # (2) stellar lines in total / telluric, minus telluric residue
    with torch.no_grad():
        t_now = tell(wt).cpu().numpy()
    ratio = f / (float(level.detach()) * np.maximum(t_now, 1e-3))
    found = find_lines(w, ratio, prominence=prominence)
    t_at = np.interp(found.center, w, t_now)
    narrow = found.fwhm < 2.0 * math.sqrt(2.0 * math.log(2.0)) * star_sigma_kms[0] * to_wl
    residue = narrow & (t_at < 1.0 - 2.0 * prominence)
    # features centred within the half-width of a strong telluric line are its misfit core
    tl = [m.emulator.lines() for m in tell.telluric_models().values()]
    tc = np.concatenate([x.center for x in tl])
    thw = np.concatenate([0.5 * x.fwhm for x in tl])
    strong = np.interp(tc, w, t_now) < 0.7
    if strong.any() and len(found):
        near = np.abs(found.center[:, None] - tc[strong][None, :]) < thw[strong][None, :]
        residue |= near.any(1)
    star_lines = found.select(~residue)
    if len(star_lines) == 0:
        star_lines = LineList(
            np.array([lam]), np.array([1e-9]), np.array([math.exp(s_sig[0])]), np.array([1e-6])
        )
    sig0 = np.clip(star_lines.sigma, math.exp(s_sig[0]), math.exp(s_sig[1]))
    star_lines = LineList(
        star_lines.center, star_lines.amplitude, sig0, star_lines.gamma, star_lines.meta
    )
    star = LineEmulator(star_lines, **first.settings(), device=dev)
    star.max_window = None
    star.set_windows()

    # (3) both together
    joint = JointModel(star, tell)
    with torch.no_grad():
        joint.level.copy_(level.detach())
    rms2 = run(joint, epochs[1], lambda r: (r**2).mean(), star, "decompose")
    info = {
        "n_star_lines": star.n_lines,
        "n_telluric_lines": {k: m.emulator.n_lines for k, m in tell.telluric_models().items()},
        "n_residue_dropped": int(residue.sum()),
        "rms_total": math.sqrt(rms2),
        "telluric_scales": tell.scales(),
        "telluric_rv_kms": float(tell.rv.detach()),
    }
    return joint, info
