"""Resumable results folder of a power or calibration run.

Layout::

    <folder>/plan.json                          the plan (and its hash) the results belong to
    <folder>/replicates/<cell key>/r000042.parquet   one file per finished replicate

Each replicate file is written to a temporary name and renamed into place (atomic on POSIX
file systems), so a killed run leaves only whole files; a rerun skips them. A folder that
holds results of another plan is refused rather than mixed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lcbayes.data.io import atomic_path
from lcbayes.errors import LcbayesError


class PlanChangedError(LcbayesError):
    """The results folder belongs to a different plan."""


class ResultFileError(LcbayesError):
    """A stored replicate file cannot be read."""


class ResultStore:
    """Results of one plan in ``folder``; ``kind`` is ``"power"`` or ``"sbc"``."""

    def __init__(self, folder: str | Path, plan_json: str, plan_hash: str, kind: str = "power"):
        self.folder, self.kind = Path(folder), kind
        marker = self.folder / "plan.json"
        if marker.exists():
            try:
                held = json.loads(marker.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ResultFileError(f"'{marker}' is damaged, so the results in '{self.folder}' cannot be matched to "
                                      "a plan. Fix: write to a new folder (--out), or delete the folder to start "
                                      "over.") from None
            if held["hash"] != plan_hash or held.get("kind", "power") != kind:
                raise PlanChangedError(f"'{self.folder}' holds results of another {held.get('kind', 'power')} plan "
                                       f"(hash {held['hash'][:12]}...; this plan's is {plan_hash[:12]}...). Fix: "
                                       "write to a new folder (--out), or delete the old results to start over.")
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(marker, json.dumps({"kind": kind, "hash": plan_hash, "plan": json.loads(plan_json)},
                                             indent=1, sort_keys=True).encode())

    def path(self, cell_key: str, replicate: int) -> Path:
        return self.folder / "replicates" / cell_key / f"r{replicate:06d}.parquet"

    def done(self, cell_key: str, replicate: int) -> bool:
        """Whether the replicate's file exists and can be read; an unreadable one (damaged outside lcbayes, e.g. cut
        short by a full disk) is set aside as ``*.unreadable`` so that the replicate runs again."""
        path = self.path(cell_key, replicate)
        if not path.exists():
            return False
        if _readable(path):
            return True
        path.rename(path.with_suffix(".unreadable"))
        return False

    def write(self, cell_key: str, replicate: int, rows: pd.DataFrame) -> Path:
        """Store one finished replicate (atomically)."""
        path = self.path(cell_key, replicate)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, rows.to_parquet(index=False))
        return path

    def load(self) -> pd.DataFrame:
        """All finished replicates, sorted by cell, replicate and target (empty if none)."""
        files = sorted((self.folder / "replicates").glob("*/r*.parquet"))
        if not files:
            return pd.DataFrame()
        damaged = [f for f in files if not _readable(f)]
        if damaged:
            raise ResultFileError(f"{len(damaged)} replicate file(s) cannot be read, e.g. '{damaged[0]}'. Fix: run the "
                                  "plan again (lcbayes power PLAN --out <this folder>): it sets them aside and redoes "
                                  "those replicates.")
        table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        return table.sort_values(["cell", "replicate", "target"], kind="stable").reset_index(drop=True)


def _readable(path: Path) -> bool:
    """Whether ``path`` is a whole Parquet file (its footer and schema read)."""
    try:
        pq.read_metadata(path)
    except (OSError, ValueError, pa.ArrowException):
        return False
    return True


def _atomic_write(path: Path, data: bytes) -> None:
    with atomic_path(path) as partial:
        partial.write_bytes(data)
