"""Study simulator: reproducibility, design shape, missingness and the generative formulas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.simulate import ClimateTruth, Design, SharingTruth, simulate_study
from lcbayes.data.study import Study

COMPLETE = dict(attrition=0.0, late_join=0.0, missed=0.0)


def test_same_seed_same_table_bit_for_bit():
    a = simulate_study(Design(likert=5, predictor_missing=0.1), seed=7)
    b = simulate_study(Design(likert=5, predictor_missing=0.1), seed=7)
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    assert a.truth.to_dict() == b.truth.to_dict()


def test_different_seeds_differ():
    a, b = simulate_study(seed=1).table, simulate_study(seed=2).table
    assert not a["climate"].head(50).equals(b["climate"].head(50))


def test_reference_design_complete_panel_has_1440_rows():
    sim = simulate_study(Design(**COMPLETE), seed=3)
    t = sim.table
    assert len(t) == 20 * 12 * 6
    assert t.groupby("community")["participant"].nunique().eq(12).all()
    assert sorted(t["session"].unique()) == [1, 2, 3, 4, 5, 6]
    assert not t.duplicated(["participant", "session"]).any()
    # week increases within participant, first session at week 0
    assert t.groupby("participant")["week"].apply(lambda w: w.is_monotonic_increasing and w.iloc[0] == 0).all()


def test_varying_community_sizes_within_range():
    sizes = simulate_study(Design(participants=(5, 9), **COMPLETE), seed=4).table.groupby(
        "community")["participant"].nunique()
    assert sizes.between(5, 9).all()
    assert sizes.nunique() > 1


def test_organizations_are_crossed_with_communities():
    t = simulate_study(Design(organizations=10, orgs_per_community=3), seed=5).table
    per_community = t.groupby("community")["organization"].nunique()
    assert per_community.le(3).all()
    per_org = t.groupby("organization")["community"].nunique()
    assert per_org.mean() > 2       # 20 communities x ~3 orgs drawn from 10: each org in ~6
    assert t.groupby("participant")["organization"].nunique().eq(1).all()


def test_attrition_matches_hazard():
    design = Design(communities=100, participants=20, sessions=5, attrition=0.2, late_join=0.0, missed=0.0)
    t = simulate_study(design, seed=6).table
    last = t.groupby("participant")["session"].max()
    p_stay = 0.8 ** 4                                   # survives the hazard at sessions 2..5
    se = np.sqrt(p_stay * (1 - p_stay) / len(last))
    assert (last == 5).mean() == pytest.approx(p_stay, abs=4 * se)
    # per-session presence follows 0.8^(t-1)
    share = t.groupby("session")["participant"].nunique() / len(last)
    assert share.to_numpy() == pytest.approx(0.8 ** np.arange(5), abs=0.03)


def test_late_joiners_and_missed_sessions():
    design = Design(communities=50, participants=20, sessions=6, attrition=0.0, late_join=0.3, missed=0.15)
    sim = simulate_study(design, seed=8)
    first = sim.table.groupby("participant")["session"].min()
    join = sim.truth.participants.set_index("participant")["join"]
    assert (join > 1).mean() == pytest.approx(0.3, abs=0.04)
    assert (first >= join.reindex(first.index)).all()
    enrolled = (7 - join).sum()                          # participant-sessions from joining to the end
    assert len(sim.table) / enrolled == pytest.approx(0.85, abs=0.02)


def test_predictor_missing_rate_and_nothing_else_missing():
    t = simulate_study(Design(communities=40, predictor_missing=0.15), seed=9).table
    for col in ("support", "self_efficacy", "motivation"):
        assert t[col].isna().mean() == pytest.approx(0.15, abs=0.03)
    assert t[["climate", "sharing", "lgo"]].notna().all().all()


def test_likert_items_are_integers_in_range_and_reverse_keyed():
    sim = simulate_study(Design(likert=7), seed=10)
    t = sim.table
    items = sim.roles.scales["climate"].items
    values = t[list(items)].to_numpy(dtype=float)
    assert np.isin(values, np.arange(1, 8)).all()
    corr = t[list(items)].astype(float).corr()
    assert corr.loc["climate_3", "climate_1"] < -0.3 < 0.3 < corr.loc["climate_2", "climate_1"]
    study = Study.from_frame(t, sim.roles)          # the roles describe the table
    assert study.reliability().query("scale == 'climate' and session == 'all'")["alpha"].item() > 0.7


def test_composition_and_trait_are_standardised_observed_scores():
    sim = simulate_study(Design(likert=5), seed=11)
    study = Study.from_frame(sim.table, sim.roles)
    lgo = study.participant_values("lgo")
    community = pd.Series(study.coords["community"])[study.participant_community].to_numpy()
    sd = lgo.groupby(community).std()
    z = (sd - sd.mean()) / sd.std(ddof=0)
    truth = sim.truth.communities.set_index("community")
    assert truth["lgo_sd"].to_numpy() == pytest.approx(sd.to_numpy(), abs=1e-12)
    assert truth["z"].to_numpy() == pytest.approx(z.to_numpy(), abs=1e-12)
    safety = study.participant_values("psych_safety")
    w = sim.truth.participants.set_index("participant")["w"].reindex(safety.index)
    assert w.to_numpy() == pytest.approx(((safety - safety.mean()) / safety.std(ddof=0)).to_numpy(), abs=1e-12)


def test_consensus_follows_the_scale_equation():
    """transient_sd is the scale equation (no trait terms: every member has the same sigma); consensus_sd adds the
    participant variance at s (no organization or predictor parts here)."""
    truth = ClimateTruth(tau_v=(0.1, 0.02), alpha4=0.0, alpha5=0.0, tau_o=0.0, gamma_lgo=0.0,
                         gamma_support_within=0.0, gamma_support_between=0.0)
    sim = simulate_study(Design(), climate=truth, seed=12)
    comm = sim.truth.communities.set_index("community")
    cs = sim.truth.community_sessions.join(comm, on="community")
    s = cs["session"] - 1
    expected = np.exp(truth.alpha0 + truth.alpha1 * s + truth.alpha2 * cs["z"] + truth.alpha3 * cs["z"] * s
                      + cs["v0"] + cs["v1"] * s)
    assert cs["transient_sd"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-12)
    (t0, t1), rho = truth.tau_r, truth.rho_r
    participant = t0**2 + 2 * rho * t0 * t1 * s + t1**2 * s**2
    assert cs["consensus_sd"].to_numpy() == pytest.approx(np.sqrt(participant + expected**2).to_numpy(), rel=1e-12)
    strength = truth.beta0 + truth.beta1 * s + cs["u0"] + cs["u1"] * s
    assert cs["strength"].to_numpy() == pytest.approx(strength.to_numpy(), rel=1e-12)


def test_climate_moments_match_truth_in_a_large_study():
    """Grand mean and slope of climate, and the shrinking residual spread, in 400 communities."""
    truth = ClimateTruth(gamma_support_between=0.0, gamma_support_within=0.0, gamma_lgo=0.0,
                         tau_r=(0.5, 0.0), alpha2=0.0, alpha3=0.0, alpha4=0.0)
    sim = simulate_study(Design(communities=400, **COMPLETE), climate=truth, seed=13)
    t = sim.table
    means = t.groupby("session")["climate"].mean()
    expected = truth.beta0 + truth.beta1 * np.arange(6)
    assert means.to_numpy() == pytest.approx(expected, abs=0.05)
    # with no random slopes for participants, within-participant differences between
    # sessions 1 and 6 remove r0 and keep community slopes (tiny) and residuals
    wide = t.pivot(index="participant", columns="session", values="climate")
    residual_sd_first = np.exp(truth.alpha0)
    residual_sd_last = np.exp(truth.alpha0 + 5 * truth.alpha1)
    diff_var = (wide[6] - wide[1]).var()
    expected_var = residual_sd_first**2 + residual_sd_last**2 + 25 * truth.tau_u[1] ** 2
    assert diff_var == pytest.approx(expected_var, rel=0.08)


def test_learning_outcome_missing_for_dropouts_only():
    sim = simulate_study(Design(attrition=0.2, missed=0.0), seed=14)
    people = sim.truth.participants.set_index("participant")
    learning = sim.table.groupby("participant")["learning"].first()
    dropped = people["leave"].reindex(learning.index) <= 6
    assert learning[dropped].isna().all()
    assert learning[~dropped].notna().all()


def test_sharing_f_vector_is_validated_and_used():
    with pytest.raises(ValueError, match="must have 6 values starting with 0"):
        simulate_study(sharing=SharingTruth(f=(0.1, 0, 0, 0, 0, 0)), seed=1)
    sim = simulate_study(sharing=SharingTruth(f=(0, -0.1, -0.2, -0.3, -0.3, -0.3)), seed=1)
    assert sim.truth.to_dict()["sharing"]["f"] == [0, -0.1, -0.2, -0.3, -0.3, -0.3]


def test_sharing_within_person_support_effect():
    """With no lags, spiral, interaction or random slopes, K's within-person change regresses on
    support's within-person change with slope gamma0 (f = 0)."""
    truth = SharingTruth(phi=0, f_slope=0, gamma1=0, tau_beta=0, beta_se=0, beta_m=0, support_trend=0)
    t = simulate_study(Design(communities=200, **COMPLETE), sharing=truth, seed=15).table
    centred = t[["support", "sharing", "self_efficacy"]] - t.groupby("participant")[
        ["support", "sharing", "self_efficacy"]].transform("mean")
    X = np.column_stack([centred["support"], centred["self_efficacy"]])
    coef = np.linalg.lstsq(X, centred["sharing"], rcond=None)[0]
    assert coef == pytest.approx([truth.gamma0, truth.beta_e], abs=0.03)


def test_bad_design_is_rejected():
    with pytest.raises(ValueError, match="at least 2 participants"):
        Design(participants=1)
    with pytest.raises(ValueError, match="rates must lie in"):
        Design(missed=1.2)
