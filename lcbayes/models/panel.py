"""Dense participant x session layout of a study, the data every model is built from.

Rows of the long table become cells of ``(P, T)`` arrays (P participants, T sessions) with a mask of observed cells.
Shapes depend only on the design, not on which sessions were missed, so a compiled model can be refitted to another data
set of the same design by swapping arrays (power analysis), and per-participant sums are plain axis sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lcbayes.data.study import Study
from lcbayes.errors import ConfigError


@dataclass(frozen=True)
class Panel:
    """Arrays of one study in participant x session layout.

    ``time``: (P, T) time since the first session in model units (0 at session 1), defined
    for every cell (unobserved cells take the session's typical time, so trajectories can be
    predicted there). ``community`` and ``organization``: (P,) codes per participant.
    """

    study: Study
    time: np.ndarray
    community: np.ndarray
    organization: np.ndarray | None

    @classmethod
    def from_study(cls, study: Study, time: str = "session", time_scale: float = 1.0,
                   origin: Panel | None = None) -> Panel:
        """Layout of ``study``; ``time`` is ``"session"`` (s = session - first session) or ``"time"`` (the
        study's time role, minus the participant's community start), divided by ``time_scale``. ``origin``: the
        panel of a fitted study whose first session and community starts new data are timed from (prediction)."""
        if time not in ("session", "time"):
            raise ConfigError(f"time must be 'session' or 'time', got {time!r}")
        if time_scale <= 0:
            raise ConfigError(f"time_scale must be positive, got {time_scale}")
        sessions = np.asarray(study.coords["session"], dtype=float)
        first = float(origin.study.coords["session"][0]) if origin is not None else sessions[0]
        P, T = study.n("participant"), study.n("session")
        grid = (np.broadcast_to(sessions - first, (P, T)).copy() if time == "session"
                else cls._time_grid(study, origin.starts() if origin is not None else {}))
        organization = study.participant_organization if "organization" in study.idx else None
        return cls(study, grid / time_scale, study.participant_community, organization)

    def starts(self) -> dict[Any, float]:
        """Each community's first time (the origin of its times with ``time = "time"``), by label."""
        return self.study.table.groupby("community")["time"].min().to_dict()

    @staticmethod
    def _time_grid(study: Study, starts: dict[Any, float]) -> np.ndarray:
        """Observed times where present; elsewhere the community's median time of that session,
        else the study-wide median (relative to each community's first session, or to its start in ``starts``)."""
        t = study.table
        start = t.groupby("community")["time"].transform("min")
        start = t["community"].map(starts).fillna(start).astype(float)
        rel = pd.DataFrame({"c": study.idx["community"], "s": study.idx["session"], "t": t["time"] - start})
        by_cs = rel.groupby(["c", "s"])["t"].median()
        by_s = rel.groupby("s")["t"].median().reindex(range(study.n("session"))).interpolate(limit_direction="both")
        P, T = study.n("participant"), study.n("session")
        comm = study.participant_community
        grid = by_s.to_numpy()[None, :].repeat(P, axis=0)
        known = by_cs.reindex(pd.MultiIndex.from_product([range(study.n("community")), range(T)]))
        known = known.to_numpy().reshape(study.n("community"), T)[comm]
        grid = np.where(np.isnan(known), grid, known)
        grid[study.idx["participant"], study.idx["session"]] = rel["t"].to_numpy()
        return grid

    @property
    def shape(self) -> tuple[int, int]:
        return self.time.shape

    def cells(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """A session-level measure as (P, T) values (0 where absent) and its mask (1 = observed)."""
        values, mask = np.zeros(self.shape), np.zeros(self.shape)
        v = self.study.values(name)
        ok = ~np.isnan(v)
        pi, ti = self.study.idx["participant"][ok], self.study.idx["session"][ok]
        values[pi, ti] = v[ok]
        mask[pi, ti] = 1.0
        return values, mask

    def present(self) -> np.ndarray:
        """(P, T) mask of cells with a row in the table (whatever their values)."""
        mask = np.zeros(self.shape)
        mask[self.study.idx["participant"], self.study.idx["session"]] = 1.0
        return mask
