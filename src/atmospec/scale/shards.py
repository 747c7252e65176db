"""Distributed training-set generation: shards built in parallel, identical for any shard count."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from atmospec.errors import FileFormatError

if TYPE_CHECKING:
    from distributed import Client

    from atmospec.grids import ModelGrid
    from atmospec.training.builder import TrainingSet

__all__ = ["block_seeds", "plan_shards", "build_shards", "merge_shards", "ShardPlan"]

_DATASETS = ("flux", "sigma", "params", "snr", "node", "cell")
_OPTIONAL = ("clean",)
"""Datasets a training set may hold (the noise-free fluxes for ``fit(clean=...)`` and a
recipe's ``fresh_noise``): carried through shards and merges whenever the blocks have them."""


def _datasets(h5: Any) -> tuple[str, ...]:
    """The row datasets of an open training-set file: the required ones and those optional
    ones it holds."""
    return _DATASETS + tuple(n for n in _OPTIONAL if n in h5)


def block_seeds(seed: int, n_blocks: int) -> list[int]:
    """The seed of every block: child ``i`` of ``numpy.random.SeedSequence(seed).spawn``.

    Child ``i`` does not depend on how many children are spawned, so block ``i`` gets the same
    seed whatever the total size or the number of shards.

    Example:
        >>> block_seeds(7, 3)[:2] == block_seeds(7, 2)
        True
    """
    children = np.random.SeedSequence(int(seed)).spawn(int(n_blocks))
    return [int(c.generate_state(1, np.uint64)[0]) for c in children]


@dataclass(frozen=True)
class ShardPlan:
    """Which blocks of rows each shard file holds.

    A training set of ``n_samples`` rows is cut into blocks of ``block_size`` rows (the
    last may be shorter); block ``b`` holds rows ``b * block_size ...`` and is built by the
    learning core's :func:`~atmospec.training.builder.build_training_set` with seed
    ``block_seeds(seed, n_blocks)[b]``. Shards are runs of consecutive blocks, so
    concatenating the shards in order gives the same rows for any shard count.

    Example:
        >>> plan = plan_shards(2500, 2, block_size=1000)
        >>> plan.n_blocks, plan.block_rows(2), plan.shard_rows(0), plan.shard_rows(1)
        (3, (2000, 2500), (0, 2000), (2000, 2500))
    """

    n_samples: int
    block_size: int
    seed: int
    shards: tuple[tuple[int, ...], ...]

    @property
    def n_blocks(self) -> int:
        return -(-self.n_samples // self.block_size)

    def block_rows(self, b: int) -> tuple[int, int]:
        """Global rows ``(start, stop)`` of block ``b``."""
        start = b * self.block_size
        return start, min(start + self.block_size, self.n_samples)

    def shard_rows(self, s: int) -> tuple[int, int]:
        blocks = self.shards[s]
        return self.block_rows(blocks[0])[0], self.block_rows(blocks[-1])[1]


def plan_shards(
    n_samples: int, n_shards: int, *, block_size: int = 1024, seed: int = 0
) -> ShardPlan:
    """Split ``n_samples`` rows into blocks and the blocks into ``n_shards`` contiguous shards.

    Example:
        >>> plan_shards(2500, 2, block_size=1000).shards
        ((0, 1), (2,))
    """
    if n_samples < 1 or block_size < 1 or n_shards < 1:
        raise ValueError("n_samples, block_size and n_shards must all be >= 1")
    n_blocks = -(-n_samples // block_size)
    n_shards = min(n_shards, n_blocks)
    per = -(-n_blocks // n_shards)
    shards = tuple(tuple(range(s, min(s + per, n_blocks))) for s in range(0, n_blocks, per))
    return ShardPlan(n_samples, block_size, int(seed), shards)


@functools.lru_cache(maxsize=4)
def _grid(ref: str) -> ModelGrid:
    from atmospec.grids import load_grid

    return load_grid(ref)


def _grid_ref(grid: ModelGrid | str) -> str:
    if isinstance(grid, str):
        return grid
    path = getattr(grid, "path", None)
    return str(path) if path is not None and Path(path).is_file() else str(grid.name)


def _shard_path(out: Path, s: int) -> Path:
    return out / f"shard-{s:05d}.h5"


def _shard_complete(path: Path, plan: ShardPlan, s: int) -> bool:
    if not path.is_file():
        return False
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            info = json.loads(h5.attrs["shard"])
    except (OSError, KeyError, ValueError):
        return False
    start, stop = plan.shard_rows(s)
    return bool(
        info.get("rows") == [start, stop]
        and info.get("seed") == plan.seed
        and info.get("block_size") == plan.block_size
    )


def _build_shard(grid_ref: str, out: str, plan: ShardPlan, s: int, kwargs: dict[str, Any]) -> str:
    """Build shard ``s``: its blocks through the builder, concatenated into one HDF5 file."""
    import h5py

    from atmospec._fileio import atomic_path
    from atmospec._logging import progress_hidden
    from atmospec.training.builder import build_training_set

    path = _shard_path(Path(out), s)
    if _shard_complete(path, plan, s):
        return str(path)
    grid = _grid(grid_ref)
    seeds = block_seeds(plan.seed, plan.n_blocks)
    start, stop = plan.shard_rows(s)
    with (
        tempfile.TemporaryDirectory(prefix=".blocks-", dir=out) as tmp,
        atomic_path(path) as dst,
        progress_hidden(),  # the caller's bar counts shards
    ):
        sets: list[TrainingSet] = []
        for b in plan.shards[s]:
            lo, hi = plan.block_rows(b)
            sets.append(
                build_training_set(
                    grid,
                    Path(tmp) / f"block-{b}.h5",
                    n_samples=hi - lo,
                    seed=seeds[b],
                    **kwargs,
                )
            )
        try:
            with h5py.File(dst, "w") as h5:
                first = sets[0]._h5
                for key, value in first.attrs.items():
                    h5.attrs[key] = value
                config = json.loads(first.attrs["config"])
                config.update(
                    n_samples=plan.n_samples,
                    seed=plan.seed,
                    block_size=plan.block_size,
                    sharded=True,
                )
                h5.attrs["config"] = json.dumps(config)
                h5.attrs["shard"] = json.dumps(
                    {
                        "index": s,
                        "rows": [start, stop],
                        "blocks": list(plan.shards[s]),
                        "block_seeds": [seeds[b] for b in plan.shards[s]],
                        "seed": plan.seed,
                        "block_size": plan.block_size,
                        "n_samples_total": plan.n_samples,
                    }
                )
                h5.create_dataset("wavelength", data=first["wavelength"][:])
                for name in _datasets(first):
                    data = np.concatenate([t._h5[name][:] for t in sets])
                    chunks = (min(256, data.shape[0]),) + data.shape[1:] if data.ndim > 1 else None
                    h5.create_dataset(name, data=data, chunks=chunks)
        finally:
            for t in sets:
                t.close()
    return str(path)


def build_shards(
    grid: ModelGrid | str,
    out: str | os.PathLike[str],
    *,
    n_samples: int,
    n_shards: int | None = None,
    block_size: int = 1024,
    seed: int = 0,
    client: Client | None = None,
    **builder_kwargs: Any,
) -> list[Path]:
    """Build a training set as shard files in parallel (one Dask task per shard).

    The rows are defined by their global index: block ``b`` (``block_size`` rows) is built by
    :func:`~atmospec.training.builder.build_training_set` with the ``b``-th
    ``SeedSequence(seed).spawn`` child, so 1 shard or 40 shards give the same rows, in the
    same order. Each shard file is a complete training set (open it with
    :class:`~atmospec.training.builder.TrainingSet`), written atomically; shards already
    complete are skipped on a rerun. :func:`merge_shards` joins them into one file.

    Args:
        grid: a ModelGrid or a grid name / path (workers load it by reference).
        out: output folder (``shard-00000.h5`` ...).
        n_samples: total rows.
        n_shards: shard files (default: one per worker, or 1 without a client).
        block_size: rows per seeded block (fixes the result; keep it when scaling out).
        seed: global seed.
        client: a Dask client; None builds the shards here, one after the other.
        **builder_kwargs: passed to ``build_training_set`` (axis, nodes, snr, systematics ...).

    Example:
        >>> paths = build_shards("dback24", "shards/", n_samples=100_000, client=client)  # doctest: +SKIP
        >>> merge_shards(paths, "train.h5")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from atmospec._logging import progress_enabled

    for bad in ("path", "seed", "n_samples"):
        if bad in builder_kwargs:
            raise TypeError(f"build_shards sets {bad!r} itself; do not pass it")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if n_shards is None:
        n_shards = (
            1 if client is None else max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        )
    plan = plan_shards(n_samples, n_shards, block_size=block_size, seed=seed)
    ref = _grid_ref(grid)
    kwargs = dict(builder_kwargs)
    if "nodes" in kwargs and kwargs["nodes"] is not None:
        kwargs["nodes"] = np.asarray(kwargs["nodes"], dtype=np.int64)
    bar_off = not progress_enabled()
    with tqdm(total=len(plan.shards), disable=bar_off, unit="shard", desc="training shards") as bar:
        if client is None:
            paths = []
            for s in range(len(plan.shards)):
                paths.append(_build_shard(ref, str(out_dir), plan, s, kwargs))
                bar.update(1)
        else:
            from atmospec._optional import require

            as_completed = require("distributed", "scale").as_completed

            futs = [
                client.submit(
                    _build_shard, ref, str(out_dir), plan, s, kwargs, pure=False, retries=2
                )
                for s in range(len(plan.shards))
            ]
            for f in as_completed(futs):
                f.result()
                bar.update(1)
            paths = [f.result() for f in futs]
    return [Path(p) for p in paths]


def merge_shards(
    shards: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], path: str | os.PathLike[str]
) -> TrainingSet:
    """Concatenate shard files (a list, or the folder holding them) into one training set.

    The merged file is identical in rows to a single-shard build; its ``shard`` record lists
    the block seeds. Shards must be consecutive and complete.

    Example:
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.training.systematics import Systematics
        >>> d = Path(tempfile.mkdtemp()); w = np.linspace(1.0, 2.0, 60)
        >>> with ModelGrid.create(d / "toy.h5", w, ("teff",), name="toy") as g:
        ...     for t in (1000.0, 1500.0, 2000.0):
        ...         g.add({"teff": t}, w ** -(t / 1000))
        >>> kw = dict(axis=np.linspace(1.1, 1.9, 16), noise_shapes="flat",
        ...           systematics=Systematics.none(), n_samples=10, block_size=4)
        >>> two = build_shards(str(d / "toy.h5"), d / "two", n_shards=2, **kw)
        >>> [p.name for p in two]
        ['shard-00000.h5', 'shard-00001.h5']
        >>> ts = merge_shards(d / "two", d / "merged.h5")  # the folder, or the list of files
        >>> one = merge_shards(build_shards(str(d / "toy.h5"), d / "one", **kw), d / "one.h5")
        >>> len(ts), np.array_equal(ts.flux[:], one.flux[:])  # the same rows as one shard
        (10, True)
    """
    import h5py

    from atmospec._fileio import atomic_path
    from atmospec.training.builder import TrainingSet

    if isinstance(shards, (str, os.PathLike)):
        files = sorted(Path(shards).glob("shard-*.h5"))
    else:
        files = [Path(p) for p in shards]
    if not files:
        raise FileNotFoundError(f"no shard files in {shards}")
    infos = []
    for f in files:
        with h5py.File(f, "r") as h5:
            if "shard" not in h5.attrs:
                raise FileFormatError(f"{f}: not a training-set shard (no 'shard' attribute)")
            infos.append(json.loads(h5.attrs["shard"]))
    order = np.argsort([i["rows"][0] for i in infos])
    files = [files[i] for i in order]
    infos = [infos[i] for i in order]
    expect = 0
    for f, info in zip(files, infos, strict=True):
        if info["rows"][0] != expect:
            raise FileFormatError(
                f"{f}: starts at row {info['rows'][0]}, expected {expect} "
                "(a shard is missing; rerun build_shards)"
            )
        expect = info["rows"][1]
    if expect != infos[0]["n_samples_total"]:
        raise FileFormatError(
            f"shards hold {expect} of {infos[0]['n_samples_total']} rows; "
            "rerun build_shards to complete them"
        )
    with atomic_path(path) as dst, h5py.File(dst, "w") as out:
        with h5py.File(files[0], "r") as h0:
            for key, value in h0.attrs.items():
                out.attrs[key] = value
            out.create_dataset("wavelength", data=h0["wavelength"][:])
            names = _datasets(h0)
            shapes = {n: h0[n].shape[1:] for n in names}
            dtypes = {n: h0[n].dtype for n in names}
        seeds = [s for info in infos for s in info["block_seeds"]]
        out.attrs["shard"] = json.dumps(
            {
                **infos[0],
                "index": None,
                "rows": [0, expect],
                "blocks": list(range(len(seeds))),
                "block_seeds": seeds,
            }
        )
        dsets = {
            n: out.create_dataset(
                n,
                (expect, *shapes[n]),
                dtypes[n],
                chunks=(min(256, expect), *shapes[n]) if shapes[n] else None,
            )
            for n in names
        }
        for f, info in zip(files, infos, strict=True):
            lo, hi = info["rows"]
            with h5py.File(f, "r") as h5:
                if _datasets(h5) != names:
                    raise FileFormatError(
                        f"{f}: holds {', '.join(_datasets(h5))} but {files[0]} holds "
                        f"{', '.join(names)} (shards built with other options; rebuild them)"
                    )
                for n in names:
                    dsets[n][lo:hi] = h5[n][:]
    return TrainingSet(path)
