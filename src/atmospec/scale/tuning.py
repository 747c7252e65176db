"""Distributed tuning: processes or Dask workers share one Optuna study in an RDB."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from atmospec.errors import AtmospecError

if TYPE_CHECKING:
    import optuna
    from distributed import Client

__all__ = [
    "TuneJob",
    "storage_url",
    "create_study",
    "run_tune_worker",
    "tune_processes",
    "tune_dask",
    "worker_seed",
    "split_shares",
]


def storage_url(
    storage: str | os.PathLike[str] | None, out_dir: str | os.PathLike[str] = "."
) -> str:
    """The study's RDB URL, as the learning core's tuner reads it: None is SQLite in
    ``out_dir/study.db`` (the single-machine default), a file path is SQLite there, and a URL
    (``postgresql://user@host:5432/db``, ``mysql://...``) is kept, so machines share it.

    Example:
        >>> storage_url("postgresql://tuner@db.example.org/atmospec")
        'postgresql://tuner@db.example.org/atmospec'
        >>> storage_url(None, "/tmp/run")
        'sqlite:////tmp/run/study.db'
    """
    from atmospec.training.tuning import storage_url as core_url

    return core_url(storage, out_dir)


def worker_seed(seed: int, index: int) -> int:
    """Sampler seed of worker ``index``: the ``index``-th ``SeedSequence(seed).spawn`` child,
    so workers propose different points while the whole search stays reproducible.

    Example:
        >>> worker_seed(0, 1) != worker_seed(0, 0)
        True
    """
    child = np.random.SeedSequence(int(seed), spawn_key=(int(index),))
    return int(child.generate_state(1)[0])


def split_shares(n_trials: int, n_workers: int) -> list[int]:
    """Trials per worker, as even as possible.

    Example:
        >>> split_shares(7, 3)
        [3, 2, 2]
    """
    if n_workers < 1:
        raise ValueError("need at least one worker")
    return [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]


@dataclass(frozen=True)
class TuneJob:
    """What each tuning worker runs: the learning core's
    :func:`~atmospec.training.tuning.tune` on training / validation sets stored as files
    (built once, read by every worker), for estimator ``estimator`` with fixed ``params``
    and the searched ``space`` (default: the core's ``DEFAULT_SPACE``).

    Example:
        >>> job = TuneJob("train.h5", "val.h5", estimator="mlp", params={"hidden": [64]},
        ...               storage="postgresql://tuner@db.example.org/atmospec")
        >>> TuneJob.from_json(job.to_json()) == job  # what travels to each worker
        True
        >>> job.url, job.max_epochs
        ('postgresql://tuner@db.example.org/atmospec', 30)
    """

    train: str
    validation: str
    estimator: str = "cnn"
    params: Mapping[str, Any] = field(default_factory=dict)
    space: Mapping[str, list[Any]] | None = None
    study_name: str = "atmospec"
    storage: str | None = None
    out_dir: str = "tuning"
    max_epochs: int = 30
    seed: int = 0
    timeout: float | None = None

    @property
    def url(self) -> str:
        return storage_url(self.storage, self.out_dir)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=list)

    @classmethod
    def from_json(cls, text: str) -> TuneJob:
        return cls(**json.loads(text))

    @classmethod
    def from_recipe(
        cls,
        config: str | os.PathLike[str],
        *,
        out_dir: str | os.PathLike[str] = "tuning",
        storage: str | None = None,
        study_name: str | None = None,
        max_epochs: int = 30,
    ) -> TuneJob:
        """Build a recipe's training and validation sets once and describe the job."""
        from atmospec.learning.recipe import build_sets, load_recipe, tunable_recipe

        recipe = tunable_recipe(load_recipe(config))  # refused before the sets are built
        sets = build_sets(recipe, Path(out_dir) / "work")
        params = dict(recipe.params)
        params.pop("max_cpu_seconds", None)
        params.update(num_threads=1, n_members=1)
        return cls(
            train=str(sets["train"].path),
            validation=str(sets["val"].path),
            estimator=recipe.estimator,
            params=params,
            study_name=study_name or recipe.name,
            storage=storage,
            out_dir=str(out_dir),
            max_epochs=max_epochs,
            seed=recipe.seed,
        )


def create_study(job: TuneJob) -> optuna.Study:
    """Create the shared study (or load it) before the workers start.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> study = create_study(TuneJob("t.h5", "v.h5", study_name="demo", out_dir=str(d)))
        >>> study.study_name, study.direction.name, len(study.trials), (d / "study.db").is_file()
        ('demo', 'MINIMIZE', 0, True)
        >>> try:  # an unreachable server: the error names the study, never the password
        ...     create_study(TuneJob("t.h5", "v.h5", storage="postgresql://u:pw@localhost:1/db"))
        ... except AtmospecError as err:
        ...     print(str(err).split(": ")[0])
        cannot open the Optuna study 'atmospec' at postgresql://u:***@localhost:1/db
    """
    from atmospec._optional import require

    optuna = require("optuna", "tune")

    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    try:
        return optuna.create_study(
            study_name=job.study_name,
            storage=job.url,
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=job.seed),
            pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=job.max_epochs),
            load_if_exists=True,
        )
    except Exception as err:  # sqlalchemy / driver errors differ per backend
        raise AtmospecError(
            f"cannot open the Optuna study {job.study_name!r} at {_redact(job.url)}: {err}"
        ) from None


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def run_tune_worker(job: TuneJob, index: int, n_trials: int) -> dict[str, Any]:
    """Run ``n_trials`` trials of the shared study in this process (worker ``index``).

    Calls the learning core's tuner with sampler seed :func:`worker_seed` ``(job.seed,
    index)``. Returns ``{"worker": "host:pid", "index", "trials": [numbers run here]}``; the
    trial numbers are read back from the estimator seeds the tuner hands out
    (``seed + trial.number``).

    Example:
        >>> import tempfile
        >>> from atmospec.grids import ModelGrid
        >>> from atmospec.training.builder import build_training_set
        >>> from atmospec.training.systematics import Systematics
        >>> d, w = Path(tempfile.mkdtemp()), np.linspace(1.0, 2.0, 60)
        >>> with ModelGrid.create(d / "toy.h5", w, ("teff",), name="toy") as g:
        ...     for t in (1000.0, 1500.0, 2000.0):
        ...         g.add({"teff": t}, w ** -(t / 1000))
        >>> for name, n in (("train", 64), ("val", 16)):
        ...     build_training_set(ModelGrid(d / "toy.h5"), d / f"{name}.h5", n_samples=n,
        ...                        axis=np.linspace(1.1, 1.9, 16), noise_shapes="flat",
        ...                        systematics=Systematics.none()).close()
        >>> job = TuneJob(str(d / "train.h5"), str(d / "val.h5"), estimator="mlp",
        ...               params={"hidden": [4]}, space={"lr": ["log", 1e-3, 1e-2]},
        ...               out_dir=str(d / "tune"), max_epochs=2)
        >>> rec = run_tune_worker(job, 0, 1)
        >>> rec["index"], rec["trials"], run_tune_worker(job, 1, 1)["trials"]  # one study
        (0, [0], [1])
    """
    from atmospec._logging import progress_hidden
    from atmospec.learning.recipe import make_estimator
    from atmospec.training.builder import TrainingSet
    from atmospec.training.tuning import tune

    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)
    seed = worker_seed(job.seed, index)
    mine: list[int] = []

    def build(p: dict[str, Any]) -> Any:
        if "seed" in p:  # a trial's estimator (the tuner also builds one to read its kind)
            mine.append(int(p["seed"]) - seed)
        return make_estimator(job.estimator, {**job.params, **p})

    with TrainingSet(job.train) as tr, TrainingSet(job.validation) as va:
        train, val, fit_kwargs = tr.arrays(), va.arrays(), tr.fit_kwargs()
    space = None if job.space is None else {k: tuple(v) for k, v in job.space.items()}
    with progress_hidden():  # a worker process: no bars, no per-trial Optuna log
        tune(
            build,
            train,
            val,
            fit_kwargs,
            n_trials=n_trials,
            space=space,
            study_name=job.study_name,
            storage=job.url,
            out_dir=job.out_dir,
            max_epochs=job.max_epochs,
            seed=seed,
            timeout=job.timeout,
        )
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "index": int(index), "trials": mine}


def tune_processes(
    job: TuneJob, n_trials: int, n_processes: int = 2
) -> tuple[optuna.Study, list[dict[str, Any]]]:
    """Share one study between ``n_processes`` local processes (``n_trials`` in total).

    The study is created first; each process runs ``python -m atmospec.scale.tuning``
    (:func:`run_tune_worker`, one CPU thread). Raises with a process's error output if it fails.

    Returns:
        The study (loaded from the storage) and each worker's record.
    """
    from atmospec._optional import require

    optuna = require("optuna", "tune")

    create_study(job)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = []
    for i, k in enumerate(split_shares(n_trials, n_processes)):
        if k == 0:
            continue
        cmd = [sys.executable, "-m", "atmospec.scale.tuning", job.to_json(), str(i), str(k)]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    records, failures = [], []
    for i, p in enumerate(procs):
        out, err = p.communicate()
        if p.returncode != 0:
            failures.append(f"worker {i} exited with {p.returncode}: {err.strip()[-3000:]}")
            continue
        records.append(json.loads(out.strip().splitlines()[-1]))
    if failures:
        raise AtmospecError("distributed tuning failed:\n" + "\n".join(failures))
    return optuna.load_study(study_name=job.study_name, storage=job.url), records


def tune_dask(
    job: TuneJob, n_trials: int, client: Client
) -> tuple[optuna.Study, list[dict[str, Any]]]:
    """Share one study between the workers of a Dask cluster (one tuning task per worker).

    The storage must be reachable from every worker: a PostgreSQL (or MySQL) server for a
    cluster; SQLite only when all workers share one machine.
    """
    from atmospec._optional import require

    optuna = require("optuna", "tune")

    create_study(job)
    workers = list(client.scheduler_info(n_workers=-1)["workers"])
    if not workers:
        raise AtmospecError("the Dask cluster has no workers")
    futs = [
        client.submit(
            run_tune_worker, job, i, k, pure=False, workers=[workers[i]], allow_other_workers=True
        )
        for i, k in enumerate(split_shares(n_trials, len(workers)))
        if k
    ]
    records = client.gather(futs)
    return optuna.load_study(study_name=job.study_name, storage=job.url), list(records)


def _main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3:
        print("usage: python -m atmospec.scale.tuning JOB_JSON INDEX N_TRIALS", file=sys.stderr)
        return 2
    job = TuneJob.from_json(args[0])
    record = run_tune_worker(job, int(args[1]), int(args[2]))
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
