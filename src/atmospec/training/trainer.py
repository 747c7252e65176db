"""Trainer: a PyTorch loop with early stopping, LR schedule, per-epoch checkpoints and resume."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec._logging import progress_enabled
from atmospec.errors import ModelFileError

if TYPE_CHECKING:
    import torch

__all__ = ["Trainer", "TrainingHistory", "default_device"]

_CHECKPOINT = "checkpoint.pt"
_SCHEDULERS = ("plateau", "cosine", "onecycle", "none")


@dataclass
class TrainingHistory:
    """Per-epoch record of a training run.

    Attributes:
        train_loss: mean training loss per epoch.
        val_loss: validation loss per epoch (NaN when no validation loader was given).
        lr: learning rate used in each epoch.
        seconds: cumulative training wall time (s) at the end of each epoch, summed across
            resumes (time spent in ``metrics_fn`` and checkpoints excluded).
        cpu_seconds: the same in process CPU time (all threads).
        best_epoch: index of the epoch with the lowest validation loss (weights restored there).
        stopped_early: True if patience ran out before ``max_epochs``.
        extra: per-epoch values returned by an optional ``metrics_fn``.

    Example:
        >>> h = TrainingHistory(train_loss=[1.0, 0.5], val_loss=[1.1, 0.7], lr=[1e-3, 1e-3],
        ...                     seconds=[0.1, 0.2], best_epoch=1)
        >>> h.n_epochs, h.best_val_loss
        (2, 0.7)
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    extra: list[dict[str, float]] = field(default_factory=list)

    @property
    def n_epochs(self) -> int:
        return len(self.train_loss)

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch] if self.best_epoch >= 0 else math.nan

    @property
    def total_seconds(self) -> float:
        return self.seconds[-1] if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingHistory:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def default_device() -> str:
    """``"cuda"`` when a GPU is visible to torch, else ``"cpu"``.

    Example:
        >>> import torch
        >>> default_device() == ("cuda" if torch.cuda.is_available() else "cpu")
        True
    """
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def _torch_env(seed: int, num_threads: int | None, device: str) -> Iterator[None]:
    """Seed torch and set its thread count for the block only, then restore both."""
    import torch

    old_threads = torch.get_num_threads()
    devices = [torch.cuda.current_device()] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        try:
            yield
        finally:
            torch.set_num_threads(old_threads)


class Trainer:
    """Train a ``torch.nn.Module`` on batches of ``(inputs..., target)`` tensors.

    Every batch from a loader is a tuple; the last element is the target and the others are
    passed to ``model(*inputs)``; the loss is ``loss_fn(output, target)``. After each epoch
    the trainer evaluates the validation loader, steps the LR schedule, writes a checkpoint
    (model, optimizer, scheduler, history, best weights) and stops when the validation loss
    has not improved for ``patience`` epochs. The best weights are restored at the end.

    Args:
        model: the network to train (moved to ``device``).
        loss_fn: ``loss_fn(output, target) -> scalar tensor``.
        val_loss_fn: the validation loss (early stopping, LR schedule); default ``loss_fn``.
        lr: initial learning rate of Adam(W).
        max_epochs: upper bound on epochs.
        patience: epochs without validation improvement before stopping.
        scheduler: ``"plateau"`` (halve LR after patience//3 flat epochs), ``"cosine"``
            (anneal to zero over ``max_epochs``), ``"onecycle"`` (Smith & Topin 2019: start at
            ``lr`` / 25, warm up to ``lr`` over the first 30 % of ``max_epochs``, then anneal to
            ``lr`` / 25 / 1e4, stepped every batch; the loader must have a length) or ``"none"``.
        checkpoint_dir: folder for ``checkpoint.pt`` (tensors only, loaded with
            ``weights_only=True``); None disables checkpoints and resume.
        seed: seed for weight init and dropout inside the run (global RNG state is restored).
        num_threads: torch CPU threads for the run (None keeps the current setting).
        device: ``"cpu"``, ``"cuda"``...; None picks the GPU when present.
        weight_decay: AdamW weight decay.
        max_seconds: stop after this much training wall time, None = no limit.
        max_cpu_seconds: stop after this much process CPU time (a budget that does not depend
            on other load on the machine), None = no limit.
        metrics_fn: optional ``metrics_fn(model) -> dict`` called after each epoch.
        grad_clip: clip the gradient norm at this value (None = off).
        callback: ``callback(epoch, history)`` after each epoch (e.g. Optuna pruning; it may
            raise to abort).

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(64, 3, generator=g); y = x @ torch.tensor([[1.0], [2.0], [-1.0]])
        >>> dl = DataLoader(TensorDataset(x, y), batch_size=16)
        >>> tr = Trainer(torch.nn.Linear(3, 1), torch.nn.functional.mse_loss, lr=0.05,
        ...              max_epochs=60)
        >>> hist = tr.fit(dl, dl)
        >>> hist.best_val_loss < 0.01
        True
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: Callable[..., torch.Tensor],
        *,
        lr: float = 1e-3,
        max_epochs: int = 100,
        patience: int = 10,
        scheduler: str = "plateau",
        checkpoint_dir: str | os.PathLike[str] | None = None,
        seed: int = 0,
        num_threads: int | None = None,
        device: str | None = None,
        weight_decay: float = 0.0,
        max_seconds: float | None = None,
        max_cpu_seconds: float | None = None,
        metrics_fn: Callable[[torch.nn.Module], dict[str, float]] | None = None,
        grad_clip: float | None = None,
        callback: Callable[[int, TrainingHistory], None] | None = None,
        val_loss_fn: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        if scheduler not in _SCHEDULERS:
            raise ValueError(f"scheduler must be one of {_SCHEDULERS}, not {scheduler!r}")
        self.model = model
        self.loss_fn = loss_fn
        self.val_loss_fn = val_loss_fn or loss_fn  # early stopping and schedule
        self.lr = lr
        self.max_epochs = max_epochs
        self.patience = patience
        self.scheduler = scheduler
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.seed = seed
        self.num_threads = num_threads
        self.device = device
        self.weight_decay = weight_decay
        self.max_seconds = max_seconds
        self.max_cpu_seconds = max_cpu_seconds
        self.metrics_fn = metrics_fn
        self.grad_clip = grad_clip
        self.callback = callback
        self.history = TrainingHistory()

    # -- helpers -----------------------------------------------------------------------
    def _make_optim(self, steps_per_epoch: int | None = None) -> tuple[Any, Any]:
        import torch

        opt = torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched: Any = None
        if self.scheduler == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, factor=0.5, patience=max(1, self.patience // 3)
            )
        elif self.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.max_epochs))
        elif self.scheduler == "onecycle":
            if not steps_per_epoch:
                raise ValueError("scheduler='onecycle' needs a training loader with a length")
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt,
                max_lr=self.lr,
                epochs=max(1, self.max_epochs),
                steps_per_epoch=steps_per_epoch,
                pct_start=0.3,
                cycle_momentum=False,
            )
        return opt, sched

    def _to(self, batch: Sequence[torch.Tensor], device: str) -> list[torch.Tensor]:
        return [b.to(device, non_blocking=True) for b in batch]

    def _run_epoch(
        self, loader: Iterable[Any], opt: Any, device: str, train: bool, batch_sched: Any = None
    ) -> float:
        import torch

        self.model.train(train)
        total, count = 0.0, 0
        ctx = torch.enable_grad() if train else torch.no_grad()
        with ctx:
            for batch in loader:
                *inputs, target = self._to(batch, device)
                out = self.model(*inputs)
                loss = (self.loss_fn if train else self.val_loss_fn)(out, target)
                if train:
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip:
                        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
                    opt.step()
                    if batch_sched is not None:
                        batch_sched.step()
                n = int(target.shape[0])
                total += float(loss.detach()) * n
                count += n
        return total / max(count, 1)

    def _save(self, opt: Any, sched: Any, best_state: dict[str, Any], wait: int) -> None:
        import torch

        from atmospec._fileio import atomic_path

        assert self.checkpoint_dir is not None
        state = {
            "model": self.model.state_dict(),
            "best": best_state,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else {},
            "history": self.history.to_dict(),
            "wait": wait,
            "rng": torch.get_rng_state(),
        }
        with atomic_path(self.checkpoint_dir / _CHECKPOINT) as tmp:
            torch.save(state, tmp)

    def _load(self, opt: Any, sched: Any) -> tuple[dict[str, Any], int]:
        import torch

        assert self.checkpoint_dir is not None
        path = self.checkpoint_dir / _CHECKPOINT
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if sched is not None and state["scheduler"]:
                sched.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, EOFError, OSError) as err:
            raise ModelFileError(f"{path}: cannot resume from this checkpoint ({err})") from None
        self.history = TrainingHistory.from_dict(state["history"])
        torch.set_rng_state(state["rng"])
        return state["best"], int(state["wait"])

    # -- main loop ---------------------------------------------------------------------
    def fit(
        self,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any] | None = None,
        resume: bool = False,
    ) -> TrainingHistory:
        """Train until ``max_epochs``, patience or ``max_seconds`` runs out; return the history.

        With ``resume=True`` and a checkpoint in ``checkpoint_dir``, training continues from the
        last completed epoch (weights, optimizer, schedule, history and RNG state restored).
        """
        import torch

        device = self.device or default_device()
        self.model.to(device)
        with _torch_env(self.seed, self.num_threads, device):
            steps = len(train_loader) if isinstance(train_loader, Sized) else None
            opt, sched = self._make_optim(steps)
            batch_sched = sched if self.scheduler == "onecycle" else None  # stepped per batch
            best_state = copy.deepcopy(self.model.state_dict())
            wait = 0
            if resume:
                if self.checkpoint_dir is None:
                    raise ValueError("resume=True needs checkpoint_dir")
                if (self.checkpoint_dir / _CHECKPOINT).is_file():
                    best_state, wait = self._load(opt, sched)
                    self.model.to(device)
            else:
                self.history = TrainingHistory()
            hist = self.history
            wall = hist.total_seconds
            cpu = hist.cpu_seconds[-1] if hist.cpu_seconds else 0.0
            bar = None
            if progress_enabled():
                from tqdm.auto import tqdm

                bar = tqdm(total=self.max_epochs, initial=hist.n_epochs, desc="training", unit="ep")
            try:
                for epoch in range(hist.n_epochs, self.max_epochs):
                    if hasattr(train_loader, "set_epoch"):  # per-epoch data (fresh noise)
                        train_loader.set_epoch(epoch)
                    lr_now = float(opt.param_groups[0]["lr"])
                    t0, c0 = time.perf_counter(), time.process_time()
                    tr_loss = self._run_epoch(
                        train_loader, opt, device, train=True, batch_sched=batch_sched
                    )
                    va_loss = (
                        self._run_epoch(val_loader, opt, device, train=False)
                        if val_loader is not None
                        else tr_loss
                    )
                    if not math.isfinite(tr_loss):
                        raise FloatingPointError(
                            f"training loss became {tr_loss} at epoch {epoch}; lower the learning "
                            "rate or check the inputs for NaN"
                        )
                    hist.train_loss.append(tr_loss)
                    hist.val_loss.append(va_loss if val_loader is not None else math.nan)
                    hist.lr.append(lr_now)
                    wall += time.perf_counter() - t0
                    cpu += time.process_time() - c0
                    hist.seconds.append(wall)
                    hist.cpu_seconds.append(cpu)
                    if self.metrics_fn is not None:
                        self.model.eval()
                        with torch.no_grad():
                            hist.extra.append(dict(self.metrics_fn(self.model)))
                    if (
                        hist.best_epoch < 0
                        or va_loss < hist.val_loss[hist.best_epoch]
                        or (val_loader is None and tr_loss < hist.train_loss[hist.best_epoch])
                    ):
                        hist.best_epoch = epoch
                        best_state = copy.deepcopy(self.model.state_dict())
                        wait = 0
                    else:
                        wait += 1
                    if self.scheduler == "plateau":
                        sched.step(va_loss)
                    elif self.scheduler == "cosine":
                        sched.step()
                    if self.checkpoint_dir is not None:
                        self._save(opt, sched, best_state, wait)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(
                            train=f"{tr_loss:.4g}", val=f"{va_loss:.4g}", lr=f"{lr_now:.2g}"
                        )
                    if self.callback is not None:
                        self.callback(epoch, hist)
                    if wait >= self.patience:
                        hist.stopped_early = True
                        break
                    if self.max_seconds is not None and hist.seconds[-1] >= self.max_seconds:
                        break
                    if self.max_cpu_seconds is not None and cpu >= self.max_cpu_seconds:
                        break
            finally:
                if bar is not None:
                    bar.close()
            self.model.load_state_dict(best_state)
        return hist
