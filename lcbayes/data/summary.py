"""What a study looks like: design, unbalanced-panel patterns and missingness.

Unbalanced panels are valid input; this summary makes them visible instead of silently absorbing them. Definitions
(per participant, relative to the sessions their community held):

- *late joiner*: first observed session after the community's first session;
- *dropout*: last observed session before the community's last session;
- *missed sessions*: sessions between a participant's first and last that have no row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from lcbayes.data.study import Study


@dataclass(frozen=True)
class StudySummary:
    """Counts describing a study.

    ``per_session`` has one row per session with ``participants`` and ``communities`` observed, ``joined`` (first
    observation), ``dropped`` (last observation before the community's end) and, per measure, ``missing_<name>`` (rows
    present with the value NaN). ``community_sizes``: per community, ``participants``, ``organizations`` and ``rows``.
    """

    n_rows: int
    n_communities: int
    n_participants: int
    n_organizations: int | None
    n_sessions: int
    late_joiners: int
    dropouts: int
    missed_sessions: int
    communities_per_organization: float | None
    per_session: pd.DataFrame
    community_sizes: pd.DataFrame

    @classmethod
    def of(cls, study: Study) -> StudySummary:
        t = study.table
        span = t.groupby("community")["session"].agg(["min", "max"])
        person = t.groupby("participant").agg(community=("community", "first"), first=("session", "min"),
                                              last=("session", "max"), rows=("session", "size"))
        person["late"] = person["first"] > span.loc[person["community"], "min"].to_numpy()
        person["dropped"] = person["last"] < span.loc[person["community"], "max"].to_numpy()
        sessions_held = t.groupby("community")["session"].unique()
        person["missed"] = [sum(1 for s in sessions_held[c] if first <= s <= last) - r for c, first, last, r
                            in zip(person["community"], person["first"], person["last"], person["rows"], strict=True)]
        per_session = t.groupby("session").agg(
            participants=("participant", "nunique"), communities=("community", "nunique"))
        for column, key, rows in (("joined", "first", person), ("dropped", "last", person[person["dropped"]])):
            per_session[column] = rows.groupby(key).size().reindex(per_session.index, fill_value=0)
        for name in study.roles.measures:
            per_session[f"missing_{name}"] = t[name].isna().groupby(t["session"]).sum()
        has_org = "organization" in t
        sizes = t.groupby("community").agg(participants=("participant", "nunique"), rows=("session", "size"),
                                           **({"organizations": ("organization", "nunique")} if has_org else {}))
        per_org = float(t.groupby("organization")["community"].nunique().mean()) if has_org else None
        return cls(n_rows=len(t), n_communities=study.n("community"), n_participants=study.n("participant"),
                   n_organizations=study.n("organization") if has_org else None, n_sessions=study.n("session"),
                   late_joiners=int(person["late"].sum()), dropouts=int(person["dropped"].sum()),
                   missed_sessions=int(person["missed"].sum()), communities_per_organization=per_org,
                   per_session=per_session.astype(int), community_sizes=sizes)

    def to_dict(self) -> dict[str, Any]:
        """The counts as plain JSON-ready values: the scalars, and ``per_session`` and ``community_sizes`` as lists of
        records (one per session or community, keyed by ``session`` or ``community``)."""
        scalars = {f.name: getattr(self, f.name) for f in fields(self) if not isinstance(getattr(self, f.name),
                                                                                         pd.DataFrame)}
        return {**scalars, "per_session": records(self.per_session.reset_index()),
                "community_sizes": records(self.community_sizes.reset_index())}

    def __str__(self) -> str:
        sizes = self.community_sizes["participants"]
        orgs = f", {self.n_organizations} organizations" if self.n_organizations is not None else ""
        lines = [f"{self.n_rows} rows: {self.n_communities} communities, {self.n_participants} participants, "
                 f"{self.n_sessions} sessions{orgs}",
                 f"participants per community: min {sizes.min()}, median {sizes.median():g}, max {sizes.max()}"]
        if self.communities_per_organization is not None:
            per = self.community_sizes["organizations"]
            lines.append(f"organizations per community: min {per.min()}, max {per.max()}; "
                         f"communities per organization: {self.communities_per_organization:.2f} on average")
        lines += [f"late joiners: {self.late_joiners}, dropouts: {self.dropouts}, "
                  f"missed sessions (gaps): {self.missed_sessions}", "per session:", self.per_session.to_string()]
        return "\n".join(lines)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as a list of JSON-ready records (numpy scalars as Python numbers, NaN as None)."""
    return json.loads(df.to_json(orient="records", double_precision=15))
