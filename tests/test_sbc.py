"""Simulation-based calibration plumbing: prior studies keep the layout, ranks are stored
per parameter, and the band check tells uniform ranks from miscalibrated ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import ClimateGrowth, KnowledgeSharing
from lcbayes.power import Plan, run
from lcbayes.power.sbc import THINNED, sbc_check, sbc_replicate


def ranks_table(ranks: np.ndarray, name: str = "x") -> pd.DataFrame:
    return pd.DataFrame({"target": name, "rank": ranks, "n_draws": THINNED, "diagnostics_passed": True})


def test_band_check_accepts_uniform_ranks_and_rejects_skewed_ones():
    rng = np.random.default_rng(3)
    uniform = ranks_table(rng.integers(0, THINNED + 1, 400))
    assert sbc_check(uniform)["inside_band"].all()
    skewed = ranks_table(np.minimum(rng.integers(0, THINNED + 1, 400), rng.integers(0, THINNED + 1, 400)))
    assert not sbc_check(skewed)["inside_band"].any()          # truth too often low: posterior too high
    narrow = ranks_table(np.where(rng.random(400) < 0.5, 0, THINNED))   # overconfident: truths in the tails
    assert not sbc_check(narrow)["inside_band"].any()


@pytest.mark.parametrize("model_cls, outcome", [(ClimateGrowth, "climate"), (KnowledgeSharing, "sharing")])
def test_prior_study_keeps_layout_and_missingness(model_cls, outcome):
    sim = simulate_study(Design(communities=4, participants=5, sessions=4, predictor_missing=0.2), seed=4)
    study = Study.from_frame(sim.table, sim.roles)
    model = model_cls(study, {"outcome": outcome})
    new, truth = model.prior_study(seed=9)
    for name in model.measures[-4:] if model_cls is KnowledgeSharing else [outcome]:
        old_v, new_v = study.values(name), new.values(name)
        np.testing.assert_array_equal(np.isnan(old_v), np.isnan(new_v))
        assert not np.allclose(old_v[~np.isnan(old_v)], new_v[~np.isnan(new_v)])
    pd.testing.assert_frame_equal(new.table[["community", "participant", "session"]],
                                  study.table[["community", "participant", "session"]])
    assert set(model.population) <= set(truth.data_vars)             # every parameter has its true value
    again, _ = model.prior_study(seed=9)
    np.testing.assert_array_equal(again.values(outcome), new.values(outcome))       # seeded


def test_sbc_replicates_store_one_rank_per_parameter(tmp_path):
    raw = {"model": "climate_growth", "replicates": 3, "seed": 5, "min_ess": 50,
           "spec": {"outcome": "climate", "options": {"organization": False},
                    "sampler": {"backend": "nutpie-jax", "chains": 2, "draws": 200, "tune": 200}},
           "design": {"communities": 5, "participants": 4, "sessions": 4}}
    plan = Plan.parse(raw, require_targets=False)
    results = run(plan, str(tmp_path), progress=False, task=sbc_replicate, kind="sbc").load()
    names = {"beta_intercept", "beta_time[time]", "sigma", "tau_community[intercept]", "tau_community[slope]",
             "corr_community[intercept:slope]", "tau_participant[intercept]", "tau_participant[slope]",
             "corr_participant[intercept:slope]"}
    assert set(results["target"]) == names
    assert results.groupby("replicate").size().eq(len(names)).all()
    assert results["rank"].between(0, THINNED).all()
    # the truth is the prior draw the replicate's data came from
    assert results.groupby("target")["truth"].nunique().eq(3).all()
