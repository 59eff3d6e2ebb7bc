"""Community composition predictors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.composition import community_composition, standardize
from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError


def test_composition_by_hand():
    rows = []
    # community A: 3 people, orgs X, X, Y, lgo 1, 2, 4; community B: 2 people, org Z, lgo 3, 3.5
    for pid, comm, org, lgo in [("a1", "A", "X", 1), ("a2", "A", "X", 2), ("a3", "A", "Y", 4),
                                ("b1", "B", "Z", 3), ("b2", "B", "Z", 3.5)]:
        for s in (1, 2):
            rows.append({"c": comm, "p": pid, "o": org, "s": s, "lgo": lgo, "y": s + lgo})
    study = Study.from_frame(pd.DataFrame(rows), {
        "community": "c", "participant": "p", "organization": "o", "session": "s",
        "variables": {"lgo": {"column": "lgo", "level": "participant"}, "y": "y"}})
    comp = community_composition(study, ["lgo"])
    assert comp.loc["A", "size"] == 3 and comp.loc["B", "size"] == 2
    assert comp.loc["A", "n_organizations"] == 2 and comp.loc["B", "n_organizations"] == 1
    assert comp.loc["A", "largest_org_share"] == pytest.approx(2 / 3)
    assert comp.loc["A", "lgo_mean"] == pytest.approx(7 / 3)
    assert comp.loc["A", "lgo_sd"] == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert comp.loc["B", "lgo_sd"] == pytest.approx(np.std([3, 3.5], ddof=1))
    z = standardize(comp[["lgo_sd"]])
    assert z["lgo_sd"].tolist() == pytest.approx([1.0, -1.0])     # two communities: +-1
    with pytest.raises(ConfigError, match="composition needs participant-level traits"):
        community_composition(study, ["y"])


def test_simulator_composition_is_the_helpers():
    sim = simulate_study(Design(likert=5), seed=3)
    study = Study.from_frame(sim.table, sim.roles)
    z = standardize(community_composition(study, ["lgo"])[["lgo_sd"]])["lgo_sd"]
    truth = sim.truth.communities.set_index("community")["z"]
    assert z.to_numpy() == pytest.approx(truth.reindex(z.index).to_numpy(), abs=1e-12)


def test_standardize_rejects_constant_columns():
    with pytest.raises(ConfigError, match="constant or undefined"):
        standardize(pd.DataFrame({"size": [12, 12, 12]}))
