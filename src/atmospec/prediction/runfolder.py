"""The output folder of a batch run: its record, partition files and merged tables."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atmospec.errors import AtmospecError

if TYPE_CHECKING:
    import pandas as pd

    from atmospec.prediction.sources import Partition

__all__ = ["RunFolder", "merge_parts", "read_results", "RUN_FILE"]

_PARTS = "parts"
RUN_FILE = "run.json"


class RunFolder:
    """The output folder of a batch run: its record, partition files and merged tables.

    ``run.json`` records what the run is (catalogue, model, the options that decide the
    rows); :meth:`begin` refuses to resume a folder that holds another run. Everything is
    written atomically.
    """

    IDENTITY = ("catalog", "n_rows", "model_id", "options")

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.out = Path(out)
        self.parts = self.out / _PARTS
        self.record_path = self.out / RUN_FILE
        self.objects = self.out / "objects"

    def part_path(self, part: Partition) -> Path:
        return self.parts / f"{part.name}.parquet"

    def read_record(self) -> dict[str, Any]:
        if not self.record_path.is_file():
            return {}
        try:
            return dict(json.loads(self.record_path.read_text(encoding="utf-8")))
        except ValueError:
            return {}

    def begin(self, record: dict[str, Any]) -> None:
        """Create the folder, check a previous run in it is the same run, record this one."""
        from atmospec._fileio import write_json

        self.parts.mkdir(parents=True, exist_ok=True)
        old = self.read_record()
        if old:
            diff = [k for k in self.IDENTITY if k in old and old.get(k) != record.get(k)]
            if diff:
                what = ", ".join(f"{k}={old.get(k)!r}" for k in diff)
                mix = " (it would mix two models in one table)" if "model_id" in diff else ""
                raise AtmospecError(
                    f"{self.out}: this folder holds a run with another {', '.join(diff)} "
                    f"({what}){mix}; choose another --out, or delete the folder to start again"
                )
        for stale in self.parts.glob(".part-*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        write_json(self.record_path, {**record, "status": "running"})

    def finish(self, record: dict[str, Any]) -> None:
        from atmospec._fileio import write_json

        write_json(self.record_path, record)

    def finished(self, part: Partition, *, retry_failed: bool = False) -> bool:
        """The partition's file exists with all its rows (and, with ``retry_failed``,
        without failure rows)."""
        path = self.part_path(part)
        if not path.is_file():
            return False
        try:
            import pyarrow.parquet as pq

            if pq.read_metadata(path).num_rows != len(part):
                return False
            if retry_failed:
                errors = pq.read_table(path, columns=["error"]).column("error").to_pylist()
                return not any(errors)
            return True
        except (OSError, ValueError, KeyError):
            return False

    def write_part(self, part: Partition, frame: pd.DataFrame) -> None:
        from atmospec._fileio import atomic_path

        with atomic_path(self.part_path(part)) as tmp:
            frame.to_parquet(tmp, index=False)

    def results(self) -> pd.DataFrame:
        """All partition files as one table in catalogue order (``row``; ``error`` is empty
        for predicted rows)."""
        import pandas as pd

        files = sorted(self.parts.glob("part-*.parquet"))
        if not files:
            raise FileNotFoundError(f"{self.out}: no partition results (parts/part-*.parquet)")
        frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return frame.sort_values("row", kind="stable").reset_index(drop=True)

    def merge(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Write ``predictions.ecsv`` / ``.csv`` and ``failures.csv`` from the parts.

        Idempotent and atomic; returns ``(predictions, failures)``.
        """
        import pandas as pd
        from astropy.table import Table

        from atmospec._fileio import atomic_path

        try:
            table = self.results()
        except FileNotFoundError:
            table = pd.DataFrame(columns=["row", "source", "error"])
        bad = table["error"].astype(str) != ""
        rows = table[~bad].drop(columns=["error"]).reset_index(drop=True)
        rows = rows.infer_objects()  # the failure rows made some columns object / float
        for col in ("dof", "row"):
            if col in rows and len(rows):
                rows[col] = rows[col].astype("int64")
        fails = table.loc[bad, ["row", "source", "error"]].reset_index(drop=True)
        if len(rows):
            with atomic_path(self.out / "predictions.csv") as tmp:
                rows.to_csv(tmp, index=False)
            with atomic_path(self.out / "predictions.ecsv") as tmp:
                Table.from_pandas(rows).write(tmp, format="ascii.ecsv", overwrite=True)
        with atomic_path(self.out / "failures.csv") as tmp:
            fails.to_csv(tmp, index=False)
        return rows, fails


def merge_parts(out: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the part files of a run folder (see :meth:`RunFolder.merge`)."""
    return RunFolder(out).merge()


def read_results(out: str | os.PathLike[str]) -> pd.DataFrame:
    """Every row of a run, predicted or failed, in catalogue order (columns ``row``,
    ``source``, the prediction columns and ``error``).

    Example:
        >>> table = read_results("predictions/")  # doctest: +SKIP
    """
    return RunFolder(out).results()
