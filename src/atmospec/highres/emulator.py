"""LineEmulator: a sparse, differentiable line-by-line model of a normalised spectrum."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from atmospec.errors import ModelFileError
from atmospec.highres.linefinder import LineList
from atmospec.highres.voigt import PROFILES

__all__ = ["LineEmulator", "clone", "default_device", "dense_optical_depth", "train_clone"]

KIND = "line_emulator"  # the record kind (atmospec.models, atmospec.serialization)


def default_device() -> torch.device:
    """CUDA when available, else CPU: the default ``device`` of every highres model.

    Example:
        >>> default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
        True
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LineEmulator(nn.Module):
    """N absorption lines over a unit continuum: flux(λ) = exp(-Σ_j A_j V(λ - λ_j; σ_j, γ_j)).

    Parameters are learned in log space (amplitude, sigma, gamma stay positive) plus a shift of
    each centre. Evaluation is sparse: each line touches only a window of pixels around its
    centre and the optical depths are accumulated with ``index_add`` -- memory and time scale
    with lines × window, never lines × pixels. Each line's window is sized from its own
    parameters: it ends where the line's optical depth falls below ``tolerance`` (so a weak or
    narrow line gets a narrow window and a strong Lorentzian a wide one), never closer than
    ``min_wing`` FWHM and never beyond ``wing`` FWHM or ``max_window``. Lines are grouped by
    window size (factors of 2) so each group is one padded tensor operation; there is no
    Python loop over lines. Broad groups are evaluated on every ``k``-th pixel (at least
    ``samples_per_fwhm`` samples per FWHM of the group's narrowest line) and linearly
    interpolated. :meth:`set_windows` re-sizes the windows from the current (fitted)
    parameters. Runs on the device it is built on.

    Args:
        lines: the initial lines (e.g. from :func:`~atmospec.highres.linefinder.find_lines`).
        profile: ``"voigt"`` (exact, Faddeeva) or ``"pseudo-voigt"`` (faster, ~1 %).
        wing: the largest half-window in units of the line's FWHM.
        tolerance: optical depth at which a line's window ends (0: always ``wing`` FWHM).
        min_wing: the smallest half-window in units of the line's FWHM.
        min_window: the smallest half-window, in wavelength units.
        max_window: the largest half-window (caps very broad lines), in wavelength units.
        samples_per_fwhm: sampling of broad groups before interpolation (0: every pixel).
        device: where the parameters live; CUDA if available by default.
        dtype: floating dtype of the parameters.

    Example:
        >>> import torch
        >>> em = LineEmulator(LineList([5000.0], [0.05], [0.05], [0.01]), device="cpu")
        >>> wl = torch.linspace(4999.0, 5001.0, 401, dtype=torch.float64)
        >>> flux = em(wl).detach()
        >>> # scipy: exp(-0.05 * voigt_profile(0, 0.05, 0.01)) = 0.7100
        >>> round(float(flux.min()), 4), round(float(flux[0]), 3)
        (0.71, 1.0)
    """

    center0: torch.Tensor  # registered buffers (typed here: nn.Module.__getattr__ is untyped)
    group: torch.Tensor

    def __init__(
        self,
        lines: LineList,
        *,
        profile: str = "voigt",
        wing: float = 25.0,
        tolerance: float = 1e-5,
        min_wing: float = 2.0,
        min_window: float | None = None,
        max_window: float | None = None,
        samples_per_fwhm: float = 24.0,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
        self.profile = profile
        self.wing = float(wing)
        self.tolerance = float(tolerance)
        self.min_wing = float(min_wing)
        self.min_window = min_window
        self.max_window = max_window
        self.samples_per_fwhm = float(samples_per_fwhm)
        dev = torch.device(device) if device is not None else default_device()
        kw: dict[str, Any] = {"dtype": dtype, "device": dev}
        self.register_buffer("center0", torch.as_tensor(lines.center, **kw))
        self.d_center = nn.Parameter(torch.zeros(len(lines), **kw))
        self.ln_amp = nn.Parameter(torch.as_tensor(np.log(lines.amplitude), **kw))
        self.ln_sigma = nn.Parameter(torch.as_tensor(np.log(lines.sigma), **kw))
        self.ln_gamma = nn.Parameter(torch.as_tensor(np.log(np.maximum(lines.gamma, 1e-12)), **kw))
        self.register_buffer("group", torch.zeros(len(lines), dtype=torch.int64, device=dev))
        self.half_windows: list[float] = []
        self.group_fwhm: list[float] = []
        self.meta: dict[str, Any] = dict(lines.meta)
        self.set_windows()

    def window_half_widths(self) -> torch.Tensor:
        """Each line's half-window from its current parameters (see the class docstring).

        The reach where A·V(x) = ``tolerance`` is found by bisection on the profile itself,
        so it holds for either profile; the result is clipped to [``min_wing``, ``wing``] FWHM
        and to [``min_window``, ``max_window``].
        """
        from atmospec.highres.voigt import voigt_fwhm

        with torch.no_grad():
            amp, sig, gam = self.amplitude, self.sigma, self.gamma
            fwhm = voigt_fwhm(sig, gam)
            lo, hi = self.min_wing * fwhm, self.wing * fwhm
            if self.max_window is not None:
                hi = hi.clamp(max=self.max_window)
            if self.tolerance > 0:
                profile = PROFILES[self.profile]
                a, b = torch.zeros_like(hi), hi.clone()
                for _ in range(40):  # the profile decreases with |x|: bisect A·V(x) = tol
                    mid = 0.5 * (a + b)
                    above = amp * profile(mid, sig, gam) > self.tolerance
                    a = torch.where(above, mid, a)
                    b = torch.where(above, b, mid)
                half = torch.maximum(b, lo).minimum(hi)
            else:
                half = hi
            if self.min_window is not None:
                half = half.clamp(min=self.min_window)
            if self.max_window is not None:
                half = half.clamp(max=self.max_window)
        return half

    def set_windows(self) -> None:
        """Re-size every line's window from the current parameters and regroup the lines."""
        if self.n_lines == 0:
            self.half_windows, self.group_fwhm = [], []
            return
        from atmospec.highres.voigt import voigt_fwhm

        half = self.window_half_widths().cpu().numpy()
        with torch.no_grad():
            fwhm = voigt_fwhm(self.sigma, self.gamma).cpu().numpy()
        base = float(half.min())
        klass = np.floor(np.log2(np.maximum(half / base, 1.0))).astype(np.int64)
        used = np.unique(klass)
        klass = np.searchsorted(used, klass)  # consecutive group labels, no empty group
        self.group = torch.as_tensor(klass, device=self.center0.device)
        self.half_windows = [float(half[klass == k].max()) for k in range(used.size)]
        self.group_fwhm = [float(fwhm[klass == k].min()) for k in range(used.size)]

    def settings(self) -> dict[str, Any]:
        """The evaluation settings (profile and windowing), to build a sibling emulator."""
        return {
            "profile": self.profile,
            "wing": self.wing,
            "tolerance": self.tolerance,
            "min_wing": self.min_wing,
            "min_window": self.min_window,
            "max_window": self.max_window,
            "samples_per_fwhm": self.samples_per_fwhm,
        }

    @property
    def n_lines(self) -> int:
        return int(self.center0.numel())

    @property
    def center(self) -> torch.Tensor:
        return self.center0 + self.d_center

    @property
    def amplitude(self) -> torch.Tensor:
        return torch.exp(self.ln_amp)

    @property
    def sigma(self) -> torch.Tensor:
        return torch.exp(self.ln_sigma)

    @property
    def gamma(self) -> torch.Tensor:
        return torch.exp(self.ln_gamma)

    def optical_depth(self, wavelength: torch.Tensor) -> torch.Tensor:
        """Σ_j A_j V_j(λ) at increasing wavelengths ``wavelength`` (sparse windows)."""
        wl = wavelength.to(self.center0)
        n_pix = wl.numel()
        tau = torch.zeros(n_pix, dtype=wl.dtype, device=wl.device)
        if self.n_lines == 0:
            return tau
        wl_d = wl.detach()
        step = float(wl_d[-1] - wl_d[0]) / (n_pix - 1) if n_pix > 1 else math.inf
        max_step = float((wl_d[1:] - wl_d[:-1]).max()) if n_pix > 1 else math.inf
        center, amp, sig, gam = self.center, self.amplitude, self.sigma, self.gamma
        for k, half in enumerate(self.half_windows):
            sel = torch.nonzero(self.group == k).squeeze(1)
            if sel.numel() == 0:
                continue
            stride = 1
            if self.samples_per_fwhm > 0:
                stride = max(int(self.group_fwhm[k] / (self.samples_per_fwhm * max_step)), 1)
                stride = min(stride, max(n_pix // 4, 1))
            if stride == 1:
                tau = tau + self._accumulate(wl, step, half, sel, center, amp, sig, gam)
                continue
            # a broad group: evaluate on every stride-th pixel (plus the last) and interpolate
            idx = torch.arange(0, n_pix, stride, device=wl.device)
            if int(idx[-1]) != n_pix - 1:
                idx = torch.cat([idx, torch.tensor([n_pix - 1], device=wl.device)])
            coarse = wl[idx]
            tau_c = self._accumulate(coarse, step * stride, half, sel, center, amp, sig, gam)
            j = (torch.arange(n_pix, device=wl.device) // stride).clamp(max=idx.numel() - 2)
            x0, x1 = coarse[j].detach(), coarse[j + 1].detach()
            frac = (wl_d - x0) / (x1 - x0)
            tau = tau + tau_c[j] * (1.0 - frac) + tau_c[j + 1] * frac
        return tau

    def _accumulate(
        self,
        wl: torch.Tensor,
        step: float,
        half: float,
        sel: torch.Tensor,
        center: torch.Tensor,
        amp: torch.Tensor,
        sig: torch.Tensor,
        gam: torch.Tensor,
    ) -> torch.Tensor:
        """Optical depth of the lines ``sel`` on ``wl``, each over ±``half`` (one padded op)."""
        n_pix = wl.numel()
        half_px = int(math.ceil(half / step))
        width = min(2 * half_px + 1, n_pix)
        c = center[sel]
        idx0 = torch.searchsorted(wl.detach().contiguous(), c.detach()) - half_px
        idx0 = idx0.clamp(0, n_pix - width)
        win = idx0.unsqueeze(1) + torch.arange(width, device=wl.device).unsqueeze(0)
        x = wl[win] - c.unsqueeze(1)
        profile = PROFILES[self.profile]
        t = amp[sel].unsqueeze(1) * profile(x, sig[sel].unsqueeze(1), gam[sel].unsqueeze(1))
        out = torch.zeros(n_pix, dtype=wl.dtype, device=wl.device)
        return out.index_add(0, win.reshape(-1), t.reshape(-1))

    def forward(self, wavelength: torch.Tensor) -> torch.Tensor:
        """The normalised flux exp(-τ) at ``wavelength``."""
        return torch.exp(-self.optical_depth(wavelength))

    def lines(self) -> LineList:
        """The current per-line parameters as a :class:`LineList` (exportable as a table)."""
        with torch.no_grad():
            return LineList(
                self.center.cpu().numpy(),
                self.amplitude.cpu().numpy(),
                self.sigma.cpu().numpy(),
                self.gamma.cpu().numpy(),
                dict(self.meta),
            )

    def save(self, path: str | Path, *, provenance: dict[str, Any] | None = None) -> Path:
        """Save as a model folder (:mod:`atmospec.serialization`): the line parameters in
        ``weights.safetensors``, the settings, meta and provenance in a checksummed
        ``model.json``. Returns the folder."""
        from atmospec.serialization import save_arrays

        ll = self.lines()
        arrays = {
            "center": np.asarray(ll.center),
            "amplitude": np.asarray(ll.amplitude),
            "sigma": np.asarray(ll.sigma),
            "gamma": np.asarray(ll.gamma),
        }
        record = {
            "kind": KIND,
            "settings": self.settings(),
            "meta": self.meta,
            "provenance": provenance or {},
        }
        return save_arrays(path, record, arrays)

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device | None = None) -> LineEmulator:
        """Load a model folder written by :meth:`save` (both files verified by sha256).

        Raises:
            ModelFileError: a missing, modified or truncated file (named), or another model.
        """
        from atmospec.serialization import load_arrays

        p = Path(path)
        if p.is_file() and p.name != "model.json":
            raise ModelFileError(
                f"{p}: a single file, not a model folder; line emulators are saved as a folder "
                "(model.json + weights.safetensors, checksummed) since this version: re-create "
                "it with `atmospec highres clone`"
            )
        record, t = load_arrays(p)
        if record.get("kind") != KIND:
            raise ModelFileError(f"{p}: not a line emulator (kind={record.get('kind')!r})")
        try:
            ll = LineList(t["center"], t["amplitude"], t["sigma"], t["gamma"], record["meta"])
            return cls(ll, **record["settings"], device=device)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFileError(f"{p}: inconsistent line emulator record ({err})") from None


def dense_optical_depth(em: LineEmulator, wavelength: torch.Tensor) -> torch.Tensor:
    """Reference implementation for benchmarks only: the dense lines × pixels matrix, summed.

    Mathematically identical to :meth:`LineEmulator.optical_depth` without window cuts; its
    memory grows as lines × pixels, which is what the sparse evaluation avoids.

    Example:
        >>> em = LineEmulator(LineList([5000.0], [0.05], [0.05], [0.01]), device="cpu")
        >>> wl = torch.linspace(4999.0, 5001.0, 401, dtype=torch.float64)
        >>> tau = dense_optical_depth(em, wl).detach()
        >>> round(float(tau.max()), 4)   # 0.05 * voigt_profile(0, 0.05, 0.01)
        0.3425
        >>> bool(torch.allclose(tau, em.optical_depth(wl), atol=1e-5))   # the sparse sum
        True
    """
    wl = wavelength.to(em.center0)
    profile = PROFILES[em.profile]
    x = wl.unsqueeze(0) - em.center.unsqueeze(1)
    t = em.amplitude.unsqueeze(1) * profile(x, em.sigma.unsqueeze(1), em.gamma.unsqueeze(1))
    return t.sum(0)


def train_clone(
    em: nn.Module,
    wavelength: ArrayLike | torch.Tensor,
    flux: ArrayLike | torch.Tensor,
    *,
    epochs: int = 300,
    lr: float = 0.01,
    weight: ArrayLike | torch.Tensor | None = None,
    penalty: Callable[[], torch.Tensor] | None = None,
    desc: str = "clone",
    refresh: int = 50,
) -> list[float]:
    """Fit a model's parameters to a spectrum with Adam (mean squared error, optionally weighted).

    Args:
        em: a module mapping wavelengths to model flux (e.g. a :class:`LineEmulator`).
        wavelength: increasing wavelengths of the target.
        flux: the target flux (continuum-normalised for a clone).
        epochs: number of full-spectrum gradient steps.
        lr: Adam learning rate.
        weight: per-pixel weights (e.g. 0 on masked pixels).
        penalty: an extra term added to the loss (a regulariser).
        refresh: re-size the line windows from the current widths every this many epochs
            (and at the end); 0 never.

    Returns:
        The loss after each epoch.

    Example:
        >>> import numpy as np, torch
        >>> w = np.linspace(5000.0, 5002.0, 801)
        >>> truth = LineEmulator(LineList([5001.0], [0.04], [0.04], [0.01]), device="cpu")
        >>> f = truth(torch.as_tensor(w)).detach()
        >>> em = LineEmulator(LineList([5001.01], [0.02], [0.05], [0.02]), device="cpu")
        >>> loss = train_clone(em, w, f, epochs=200, lr=0.02)
        >>> loss[-1] < 1e-3 * loss[0]
        True
    """
    from tqdm.auto import trange

    from atmospec._logging import progress_enabled

    p0 = next(em.parameters())
    wl = torch.as_tensor(wavelength, dtype=p0.dtype, device=p0.device)
    target = torch.as_tensor(flux, dtype=p0.dtype, device=p0.device)
    wt = None if weight is None else torch.as_tensor(weight, dtype=p0.dtype, device=p0.device)
    params = [p for p in em.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    history: list[float] = []
    emulators = [m for m in em.modules() if isinstance(m, LineEmulator)]
    progress = progress_enabled()
    bar = trange(epochs, desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        if refresh and epoch > 0 and epoch % refresh == 0:
            for e in emulators:  # widths move during training: re-size the windows
                e.set_windows()
        opt.zero_grad()
        resid2 = (em(wl) - target) ** 2
        loss = resid2.mean() if wt is None else (wt * resid2).sum() / wt.sum()
        total = loss + penalty() if penalty is not None else loss
        total.backward()
        opt.step()
        history.append(float(loss.detach()))
        if progress:
            bar.set_postfix(rms=f"{math.sqrt(history[-1]):.2e}")
    for e in emulators:
        e.set_windows()
    return history


def clone(
    wavelength: ArrayLike,
    flux: ArrayLike,
    *,
    prominence: float = 0.005,
    rounds: int = 2,
    epochs: int = 300,
    lr: float = 0.02,
    profile: str = "voigt",
    wing: float = 25.0,
    tolerance: float = 1e-5,
    max_window: float | None = None,
    device: str | torch.device | None = None,
) -> LineEmulator:
    """Clone a continuum-normalised spectrum into a trained :class:`LineEmulator`.

    Lines are found in the spectrum and trained with Adam; then, for each further round, lines
    are searched in the ratio data / model (blends and lines hidden in broad wings show up
    there), added with their fitted neighbours kept, and the whole set is trained again.

    Args:
        wavelength: increasing wavelengths.
        flux: continuum-normalised flux.
        prominence: the smallest line depth searched for.
        rounds: line-finding rounds (1 = no search in the residual).
        epochs: Adam steps per round.
        lr: Adam learning rate.
        profile: ``"voigt"`` or ``"pseudo-voigt"``.
        wing: the largest window half-width in FWHM.
        tolerance: optical depth at which each line's window ends (see :class:`LineEmulator`).
        max_window: cap on the window half-width (wavelength units).
        device: CUDA if available by default.

    Example:
        >>> import numpy as np, torch
        >>> w = np.linspace(5000.0, 5004.0, 1601)
        >>> truth = LineEmulator(LineList([5001.0, 5002.5], [0.03, 0.02], [0.04, 0.05],
        ...                               [0.01, 0.01]), device="cpu")
        >>> em = clone(w, truth(torch.as_tensor(w)).detach().numpy(), rounds=1, epochs=150,
        ...            device="cpu")
        >>> em.n_lines, bool(abs(em(torch.as_tensor(w)) - truth(torch.as_tensor(w))).max() < 0.01)
        (2, True)
    """
    from atmospec.highres.linefinder import find_lines

    w = np.asarray(wavelength, dtype=np.float64)
    f = np.asarray(flux, dtype=np.float64)
    lines = find_lines(w, f, prominence=prominence)
    em = LineEmulator(
        lines,
        profile=profile,
        wing=wing,
        tolerance=tolerance,
        max_window=max_window,
        device=device,
    )
    for r in range(max(int(rounds), 1)):
        if r > 0:
            with torch.no_grad():
                model = em(torch.as_tensor(w, device=em.center0.device)).cpu().numpy()
            extra = find_lines(w, f / model, prominence=prominence)
            if len(extra) == 0:
                break
            em = LineEmulator(em.lines().extended(extra), **em.settings(), device=device)
        train_clone(em, w, f, epochs=epochs, lr=lr, desc=f"clone round {r + 1}")
    em.meta.update({"prominence": prominence, "rounds": rounds, "epochs": epochs})
    return em
