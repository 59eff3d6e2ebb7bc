"""A validated study: the long table in canonical form plus the integer codes PyMC needs.

>>> study = Study.from_path("data/example_study.csv", roles="data/example_roles.toml")
>>> study.coords["community"][:3], study.idx["participant"][:5]
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lcbayes.data.io import read_table
from lcbayes.data.roles import ResponseRange, Roles
from lcbayes.data.scoring import multilevel_omega, reliability_table, reverse_key, score_items, unique_variance
from lcbayes.data.validation import validate
from lcbayes.errors import LcbayesWarning, Problem, StudyValidationError

if TYPE_CHECKING:
    from lcbayes.data.summary import StudySummary

GROUPINGS = ("community", "participant", "organization", "session")


def _factorize(values: pd.Series) -> tuple[np.ndarray, list]:
    """Integer codes 0..K-1 and their labels, labels sorted when they are comparable."""
    try:
        codes, labels = pd.factorize(values, sort=True)
    except TypeError:  # mixed id types (e.g. 3 and "3b"): keep order of appearance
        codes, labels = pd.factorize(values, sort=False)
    return codes.astype(np.int64), [v.item() if isinstance(v, np.generic) else v for v in labels]


@dataclass(frozen=True, eq=False)
class Study:
    """A validated learning-community study.

    - ``table``: one row per participant x session, sorted by community, participant, session, with columns
      ``community``, ``participant``, [``organization``], ``session`` (int 1..T), ``time`` (float; the session number
      when no time role is mapped) and one float column per variable and scale score (named as in the roles). The
      index keeps the labels of the user's table (line numbers for CSV files).
    - ``roles``: the column roles the study was built with.
    - ``items``: per scale, its item responses after reverse keying, aligned with ``table``.
    - ``coords``: labels of each grouping (``community``, ``participant``, ``organization``, ``session``), in code
      order: the coords of the fitted InferenceData.
    - ``idx``: per grouping, the integer code (0-based, shape ``(n_rows,)``) of each row.
    """

    table: pd.DataFrame
    roles: Roles
    items: dict[str, pd.DataFrame]
    coords: dict[str, list]
    idx: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, df: pd.DataFrame, roles: Roles | Mapping[str, Any], new_data: bool = False) -> Study:
        """Validate ``df`` against ``roles`` and build the study.

        Raises :class:`~lcbayes.errors.StudyValidationError` listing every problem (column, rows, fix) and
        :class:`~lcbayes.errors.ConfigError` for a malformed roles mapping. ``new_data``: rows to predict at, checked
        for structure, types and ranges but not for what a fit needs (spread, two members per community).
        """
        roles = Roles.parse(roles)
        numeric = validate(df, roles, new_data)
        table = pd.DataFrame(index=df.index)
        for role in ("community", "participant", "organization"):
            if getattr(roles, role) is not None:
                table[role] = df[getattr(roles, role)].to_numpy(dtype=object)
        table["session"] = numeric[roles.session].astype(np.int64)
        table["time"] = numeric[roles.time] if roles.time else table["session"].astype(float)
        for var in roles.variables.values():
            table[var.name] = numeric[var.column]
        items = {}
        ranged = [(v.name, [v.column], v.range) for v in roles.variables.values()]
        ranged += [(s.name, list(s.items), s.range) for s in roles.scales.values()]
        for name, columns, declared in ranged:
            if declared is not None:
                _warn_unused_options(name, np.concatenate([numeric[c].to_numpy() for c in columns]), *declared)
        for scale in roles.scales.values():
            raw = pd.DataFrame({c: numeric[c] for c in scale.items})
            for col in scale.reverse:
                raw[col] = reverse_key(raw[col], scale.range)
            items[scale.name] = raw
            table[scale.name] = score_items(raw, scale.min_share)
        constant = [] if new_data else [_constant_score(name, table[name], roles.scales[name].reverse)
                                        for name in items]
        if any(constant):
            raise StudyValidationError([p for p in constant if p is not None])
        order = np.lexsort([table["session"], _factorize(table["participant"])[0], _factorize(table["community"])[0]])
        table = table.iloc[order]
        items = {name: frame.loc[table.index] for name, frame in items.items()}
        coords, idx = {}, {}
        for role in GROUPINGS:
            if role in table:
                idx[role], coords[role] = _factorize(table[role])
        return cls(table, roles, items, coords, idx)

    def with_values(self, values: Mapping[str, np.ndarray]) -> Study:
        """A copy whose measures ``values`` (name -> row-aligned array, NaN = missing) replace the current ones; ids,
        sessions and everything else stay (used to put simulated outcomes into a study's layout)."""
        table = self.table.copy()
        for name, v in values.items():
            self.roles.level_of(name)
            v = np.asarray(v, dtype=float)
            if v.shape != (len(table),):
                raise ValueError(f"values for '{name}' have shape {v.shape}, the study has {len(table)} rows")
            table[name] = v
        return replace(self, table=table)

    @classmethod
    def from_path(cls, path: str | Path, roles: Roles | Mapping[str, Any] | str | Path) -> Study:
        """Read a CSV/Parquet table and a roles mapping or roles TOML file, then validate."""
        if isinstance(roles, (str, Path)):
            roles = Roles.from_toml(roles)
        return cls.from_frame(read_table(path), roles)

    @property
    def n_obs(self) -> int:
        return len(self.table)

    def n(self, grouping: str) -> int:
        """Number of distinct communities / participants / organizations / sessions."""
        return len(self.coords[grouping])

    @property
    def participant_community(self) -> np.ndarray:
        """Community code of each participant, shape ``(n_participants,)``."""
        return self._participant_map("community")

    @property
    def participant_organization(self) -> np.ndarray:
        """Organization code of each participant, shape ``(n_participants,)``."""
        if "organization" not in self.idx:
            raise KeyError("this study has no organization role")
        return self._participant_map("organization")

    def _participant_map(self, grouping: str) -> np.ndarray:
        out = np.empty(self.n("participant"), dtype=np.int64)
        out[self.idx["participant"]] = self.idx[grouping]
        return out

    def values(self, name: str) -> np.ndarray:
        """Row-level values of a variable or scale score, shape ``(n_obs,)``, NaN if missing."""
        self.roles.level_of(name)  # raises a clear KeyError for unknown names
        return self.table[name].to_numpy(dtype=float)

    def participant_values(self, name: str) -> pd.Series:
        """A participant-level measure, one value per participant (NaN if never observed)."""
        if self.roles.level_of(name) != "participant":
            raise ValueError(f"'{name}' is session-level; participant_values() needs a participant-level measure")
        by = pd.Series(self.values(name)).groupby(self.idx["participant"]).first()
        return by.reindex(range(self.n("participant"))).set_axis(
            pd.Index(self.coords["participant"], name="participant"))

    def reliability(self) -> pd.DataFrame:
        """Cronbach's alpha and McDonald's omega per scale and session, plus all sessions pooled; for session-level
        scales also the within- and between-person omega of the pooled row (Geldhof et al. 2014,
        :func:`~lcbayes.data.scoring.multilevel_omega`: the reliability of a score's within-person deviations, which
        the lagged and within-person effects rest on, and of person means).

        Participant-level scales are measured once per person: one pooled row over participants (no within/between
        split). Columns: scale, session ("all" for pooled), n (complete responses), alpha, omega, omega_within,
        omega_between (NaN where not defined)."""
        frames = []
        for name, items in self.items.items():
            if self.roles.scales[name].level == "participant":  # one response per person
                table = reliability_table(items.groupby(self.table["participant"], sort=False).first())
            else:
                table = pd.concat([reliability_table(items, by=self.table["session"]), reliability_table(items)])
                within, between = multilevel_omega(items, self.table["participant"].to_numpy())
                table.loc["all", ["omega_within", "omega_between"]] = [within, between]
            frames.append(table.rename_axis("session").reset_index().assign(scale=name))
        columns = ["scale", "session", "n", "alpha", "omega", "omega_within", "omega_between"]
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True).reindex(columns=columns)

    def response_range(self, name: str) -> ResponseRange:
        """The score range of measure ``name``: its declared ``range`` in the roles (a scale's items' range), else the
        observed mean -/+ 2.5 observed SDs (``declared`` False; the default priors then depend on the data)."""
        roles = self.roles
        roles.level_of(name)
        declared = roles.scales[name].range if name in roles.scales else roles.variables[name].range
        if declared is not None:
            return ResponseRange(float(declared[0]), float(declared[1]))
        v = self.values(name)
        v = v[~np.isnan(v)]
        mean, sd = (float(v.mean()), float(v.std())) if len(v) else (0.0, 0.0)
        sd = sd or 1.0
        return ResponseRange(mean - 2.5 * sd, mean + 2.5 * sd, declared=False)

    def measurement_error(self, name: str) -> tuple[float, int] | None:
        """(theta, J) of scale ``name``: the unique variance of one item (:func:`~lcbayes.data.scoring.unique_variance`,
        pooled over all rows) and its number of items, so that theta / J is the error variance of the scale score; None
        for a measure without items (a single score)."""
        self.roles.level_of(name)
        if name not in self.items:
            return None
        return unique_variance(self.items[name]), self.items[name].shape[1]

    def summary(self) -> StudySummary:
        """Design, attrition and missingness of the study (see :class:`StudySummary`)."""
        from lcbayes.data.summary import StudySummary

        return StudySummary.of(self)


def _constant_score(name: str, score: pd.Series, reverse: Sequence[str]) -> Problem | None:
    """A scale whose items vary but whose score does not (the items cancel out, as when a reversed item is keyed twice
    or a mirror item is missing from ``reverse``): the score, a model's outcome, cannot be modelled."""
    observed = score.dropna()
    if observed.empty or observed.nunique() > 1:
        return None
    keyed = f"reverse = {list(reverse)}" if reverse else "no reversed items"
    return Problem(None, f"scale '{name}': its score equals {observed.iloc[0]:g} in every row although its items vary "
                   f"(the items cancel out; the roles declare {keyed}).",
                   "check which items are reverse-keyed (an item worded in the opposite direction belongs in "
                   "`reverse`, once), or remove the scale from the roles.")


def _warn_unused_options(name: str, values: np.ndarray, low: float, high: float) -> None:
    """Warn when no whole-number response uses the two (or more) lowest or highest options of a measure's declared
    range (e.g. range [1, 7] declared for 5-point items): reverse-keying then maps responses wrongly (1 -> 7, not 5),
    and agreement indices judge spread against a null over options no rater had, which overstates agreement."""
    seen = values[~np.isnan(values)]
    if seen.size == 0 or np.any(seen != np.round(seen)) or max(seen.min() - low, high - seen.max()) < 2:
        return   # one unused option at an end is common on skewed items; two or more suggest a wrong range
    unused = [f"{a:g}-{b:g}" if a != b else f"{a:g}" for a, b in ((low, seen.min() - 1), (seen.max() + 1, high))
              if a <= b]
    warnings.warn(
        f"'{name}': no response uses option(s) {' and '.join(unused)} of the declared range [{low:g}, {high:g}] "
        f"({seen.size} responses, {seen.min():g}-{seen.max():g} used). If the items had fewer options, reverse-keying "
        f"maps them wrongly and agreement indices (a null over {high - low + 1:g} options) overstate agreement. "
        f"Fix: declare the items' true range (e.g. range = [{seen.min():g}, {seen.max():g}]) in the roles; if the "
        "declared range is right, ignore this.", LcbayesWarning, stacklevel=3)
