"""Community composition: who is in each learning community, as predictors z_j.

Per community, over its participants (each counted once): ``size``; ``n_organizations`` (distinct employers);
``largest_org_share`` (share of members from the largest organization); and for each participant-level trait
``<trait>_mean`` and ``<trait>_sd`` (SD with ddof = 1 over members with a value: the trait diversity of the community).
:func:`standardize` turns columns into z-scores over communities (mean 0, SD 1, ddof = 0), the form in which the
consensus emergence model uses them and the simulator defines them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lcbayes.data.study import Study
from lcbayes.errors import ConfigError


def community_composition(study: Study, traits: Sequence[str] = ()) -> pd.DataFrame:
    """Composition of every community, indexed by community label (see module docstring)."""
    comm = pd.Series(np.asarray(study.coords["community"], dtype=object)[study.participant_community])
    out = pd.DataFrame({"size": comm.value_counts(sort=False)}).reindex(study.coords["community"])
    if "organization" in study.idx:
        org = pd.Series(study.participant_organization)
        counts = pd.crosstab(comm, org)
        out["n_organizations"] = (counts > 0).sum(axis=1)
        out["largest_org_share"] = counts.max(axis=1) / counts.sum(axis=1)
    for trait in traits:
        if study.roles.level_of(trait) != "participant":
            raise ConfigError(f"composition needs participant-level traits; '{trait}' is session-level.")
        values = pd.Series(study.participant_values(trait).to_numpy())
        grouped = values.groupby(comm.to_numpy())
        out[f"{trait}_mean"] = grouped.mean()
        out[f"{trait}_sd"] = grouped.std(ddof=1)
    out.index.name = "community"
    return out


def standardize(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns as z-scores over rows (ddof = 0); a constant or incomplete column is an error."""
    problems = [c for c in frame if frame[c].isna().any() or frame[c].std(ddof=0) == 0]
    if problems:
        raise ConfigError(f"composition predictor(s) {problems} are constant or undefined for some community "
                          "(e.g. a trait SD of a community with one rated member); choose other predictors.")
    return (frame - frame.mean()) / frame.std(ddof=0)
