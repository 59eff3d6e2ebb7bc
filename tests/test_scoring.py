"""Tests of lcbayes.data.scoring: reverse keying, scale scores, alpha and omega."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.scoring import (
    cronbach_alpha,
    mcdonald_omega,
    multilevel_omega,
    omega_from_covariance,
    reliability_table,
    reverse_key,
    score_items,
    unique_variance,
)


def _omega(loadings: np.ndarray, psi: np.ndarray) -> float:
    return loadings.sum() ** 2 / (loadings.sum() ** 2 + psi.sum())


def _alpha_from_cov(cov: np.ndarray) -> float:
    n_items = cov.shape[0]
    return n_items / (n_items - 1) * (1 - np.trace(cov) / cov.sum())


def _simulate_one_factor(rng, n, loadings, psi) -> np.ndarray:
    factor = rng.normal(size=(n, 1))
    return factor * loadings + rng.normal(size=(n, len(loadings))) * np.sqrt(psi)


def test_reverse_key_on_1_to_5_scale_keeps_type_and_nan():
    s = pd.Series([5.0, 2.0, np.nan, 1.0], index=list("abcd"))
    out = reverse_key(s, (1, 5))
    pd.testing.assert_series_equal(out, pd.Series([1.0, 4.0, np.nan, 5.0], index=list("abcd")))
    np.testing.assert_array_equal(reverse_key(np.array([5.0, 2.0, np.nan]), (1, 5)), [1.0, 4.0, np.nan])
    frame = reverse_key(pd.DataFrame({"q1": [5, 3], "q2": [2, 1]}), (1, 5))
    assert frame.to_dict("list") == {"q1": [1, 3], "q2": [4, 5]}


def test_reverse_key_rejects_empty_range():
    with pytest.raises(ValueError, match="low < high"):
        reverse_key(np.array([1.0]), (5, 1))


def test_score_items_prorates_when_enough_items_answered():
    items = pd.DataFrame(
        {
            "q1": [1.0, 2.0, 4.0, np.nan],
            "q2": [np.nan, 4.0, 2.0, np.nan],
            "q3": [np.nan, np.nan, 3.0, np.nan],
            "q4": [np.nan, np.nan, 5.0, np.nan],
        },
        index=[10, 11, 12, 13],
    )
    scores = score_items(items, min_share=0.5)
    # row 10: 1 of 4 answered -> NaN; row 11: 2 of 4 -> (2 + 4) / 2; row 12: all -> 14 / 4
    pd.testing.assert_series_equal(scores, pd.Series([np.nan, 3.0, 3.5, np.nan], index=[10, 11, 12, 13]))
    assert score_items(items, min_share=0.25).loc[10] == 1.0
    assert np.isnan(score_items(items, min_share=0.75).loc[11])


def test_cronbach_alpha_matches_hand_computation():
    # rows (raters) x items:      totals
    #   1 2 2                      5
    #   2 2 3                      7
    #   3 4 3                     10
    #   4 4 5                     13
    # item variances (ddof=1): 5/3, 4/3, 4.75/3  -> sum = 13.75/3
    # total: mean 8.75, SS = 14.0625 + 3.0625 + 1.5625 + 18.0625 = 36.75 -> var 12.25
    # alpha = 3/2 * (1 - (13.75/3) / 12.25) = 3/2 * (1 - 55/147) = 3/2 * 92/147 = 46/49
    items = np.array([[1, 2, 2], [2, 2, 3], [3, 4, 3], [4, 4, 5]], dtype=float)
    assert cronbach_alpha(items) == pytest.approx(46 / 49, abs=1e-6)
    with_missing = np.vstack([items, [5.0, np.nan, 1.0]])  # dropped listwise
    assert cronbach_alpha(pd.DataFrame(with_missing)) == pytest.approx(46 / 49, abs=1e-6)


def test_cronbach_alpha_degenerate_cases_are_nan():
    assert np.isnan(cronbach_alpha(np.array([[1.0, 2.0, 3.0]])))  # one complete row
    assert np.isnan(cronbach_alpha(np.array([[1.0], [2.0], [4.0]])))  # one item
    assert np.isnan(cronbach_alpha(np.array([[1.0, -1.0], [2.0, -2.0]])))  # var(total) = 0


def test_omega_from_exact_one_factor_covariance():
    sd = np.array([1.0, 2.0, 0.5, 1.5])
    loadings = np.array([0.8, 0.6, 0.7, 0.5]) * sd
    psi = np.array([0.36, 0.64, 0.51, 0.75]) * sd**2
    cov = np.outer(loadings, loadings) + np.diag(psi)
    assert omega_from_covariance(cov) == pytest.approx(_omega(loadings, psi), abs=1e-6)


def test_omega_equals_alpha_for_tau_equivalent_covariance():
    loadings = np.full(5, 0.9)
    psi = np.array([0.3, 0.5, 0.8, 1.2, 0.4])
    cov = np.outer(loadings, loadings) + np.diag(psi)
    assert omega_from_covariance(cov) == pytest.approx(_alpha_from_cov(cov), abs=1e-6)
    assert omega_from_covariance(cov) == pytest.approx(_omega(loadings, psi), abs=1e-6)


def test_omega_heywood_case_stays_finite():
    loadings = np.array([1.0, 0.6, 0.7, 0.5])  # item 1 without error: psi_1 = 0
    psi = np.array([0.0, 0.64, 0.51, 0.75])
    cov = np.outer(loadings, loadings) + np.diag(psi)
    assert omega_from_covariance(cov) == pytest.approx(_omega(loadings, psi), abs=1e-6)


def test_omega_is_nan_for_two_items_or_too_few_rows():
    assert np.isnan(omega_from_covariance(np.array([[1.0, 0.5], [0.5, 1.0]])))
    assert np.isnan(mcdonald_omega(np.random.default_rng(0).normal(size=(3, 3))))


def test_mcdonald_omega_recovers_population_value():
    rng = np.random.default_rng(20240601)
    loadings = np.array([0.8, 1.2, 0.7, 0.5, 0.9])
    psi = np.array([0.36, 0.8, 0.5, 0.75, 0.4])
    items = pd.DataFrame(_simulate_one_factor(rng, 5000, loadings, psi))
    items.iloc[:50, 2] = np.nan  # listwise deletion of 50 rows
    assert abs(mcdonald_omega(items) - _omega(loadings, psi)) < 0.01


def test_mcdonald_omega_matches_statsmodels_ml_factor():
    factor = pytest.importorskip("statsmodels.multivariate.factor")
    rng = np.random.default_rng(7)
    x = _simulate_one_factor(rng, 400, np.array([0.8, 0.6, 0.7, 0.5, 0.4]), np.full(5, 0.6))
    fit = factor.Factor(corr=np.corrcoef(x, rowvar=False), n_factor=1, method="ml", nobs=400).fit()
    sd = x.std(axis=0, ddof=1)
    reference = _omega(fit.loadings[:, 0] * sd, fit.uniqueness * sd**2)
    assert mcdonald_omega(x) == pytest.approx(reference, abs=1e-5)


def test_reliability_table_by_group():
    rng = np.random.default_rng(3)
    loadings = np.array([0.8, 0.6, 0.7, 0.5])
    items = pd.DataFrame(_simulate_one_factor(rng, 300, loadings, 1 - loadings**2), columns=list("abcd"))
    items.iloc[0, 1] = np.nan  # row 0 belongs to group "x"
    by = pd.Series(np.repeat(["x", "y", "z"], 100), name="site")
    table = reliability_table(items, by)
    assert list(table.index) == ["x", "y", "z"]
    assert table.index.name == "site"
    assert table["n"].tolist() == [99, 100, 100]
    assert table.loc["y", "alpha"] == pytest.approx(cronbach_alpha(items.iloc[100:200]), abs=1e-12)
    assert table.loc["z", "omega"] == pytest.approx(mcdonald_omega(items.iloc[200:]), abs=1e-12)

    overall = reliability_table(items)
    assert list(overall.index) == ["all"]
    assert overall.loc["all", "n"] == 299
    assert list(overall.columns) == ["n", "alpha", "omega"]


def test_unique_variance_recovers_theta_of_parallel_items_with_different_means():
    rng = np.random.default_rng(4)
    eta = rng.normal(0, 0.7, size=(4000, 1))
    items = eta + np.array([0.0, 0.4, -0.3, 0.2]) + rng.normal(0, 0.5, size=(4000, 4))
    items[rng.random(items.shape) < 0.1] = np.nan          # missing items: rows keep their answered ones
    assert abs(unique_variance(items) - 0.25) < 0.01
    assert np.isnan(unique_variance(np.array([[1.0, np.nan], [np.nan, 2.0]])))


def test_study_measurement_error_of_simulated_likert_scales():
    from lcbayes.data.simulate import Design, simulate_study
    from lcbayes.data.study import Study

    sim = simulate_study(Design(communities=6, participants=8, sessions=4, likert=5), seed=1)
    study = Study.from_frame(sim.table, sim.roles)
    theta, n_items = study.measurement_error("climate")
    assert n_items == 4 and 0.25 < theta < 0.5      # item SD 0.6 (0.36) shrunk by rounding and the bounds
    sim = simulate_study(Design(communities=6, participants=8, sessions=4), seed=1)      # continuous scores
    assert Study.from_frame(sim.table, sim.roles).measurement_error("climate") is None


def _omega_just_identified(cov: np.ndarray) -> float:
    """Omega of a 3-item one-factor model by hand: lambda_i^2 = s_ij s_ik / s_jk (just identified, exact fit)."""
    lam = np.array([np.sqrt(cov[i, j] * cov[i, k] / cov[j, k]) for i, j, k in ((0, 1, 2), (1, 0, 2), (2, 0, 1))])
    assert (lam**2 < np.diag(cov)).all()        # a proper solution (no Heywood case), which ML reproduces exactly
    return lam.sum() ** 2 / (lam.sum() ** 2 + (np.diag(cov) - lam**2).sum())


def test_multilevel_omega_equals_a_hand_computation():
    rng = np.random.default_rng(5)
    sizes = [3, 4, 2, 5, 3, 4]                                  # unequal clusters
    cluster = np.repeat(np.arange(len(sizes)), sizes)
    person = rng.normal(0, 1.0, len(sizes))[cluster]            # between-cluster factor
    state = rng.normal(0, 0.8, len(cluster))                    # within-cluster factor
    x = (np.outer(person, [1.0, 0.8, 0.9]) + np.outer(state, [0.7, 0.9, 0.6])
         + rng.normal(0, 0.5, (len(cluster), 3)) + rng.normal(0, 0.6, (len(sizes), 3))[cluster])
    # by hand: pooled within covariance, between covariance of cluster means, MUML adjustment
    n, j = len(x), len(sizes)
    means = np.array([x[cluster == g].mean(0) for g in range(j)])
    pooled = sum(np.outer(r - means[g], r - means[g]) for r, g in zip(x, cluster, strict=True)) / (n - j)
    between = sum(s * np.outer(m - x.mean(0), m - x.mean(0)) for s, m in zip(sizes, means, strict=True)) / (j - 1)
    c = (n**2 - sum(s**2 for s in sizes)) / (n * (j - 1))
    sigma_b = (between - pooled) / c
    within, between_omega = multilevel_omega(x, cluster)
    assert within == pytest.approx(_omega_just_identified(pooled), rel=1e-6)
    assert between_omega == pytest.approx(_omega_just_identified(sigma_b), rel=1e-6)
    assert 0 < within < 1 and 0 < between_omega < 1


def test_multilevel_omega_is_nan_where_a_level_is_not_estimable():
    x = np.random.default_rng(0).normal(size=(6, 3))
    assert all(np.isnan(multilevel_omega(x, np.arange(6))))     # one row per cluster: no within level
    assert all(np.isnan(multilevel_omega(x[:, :2], np.repeat([0, 1, 2], 2))))   # two items


def test_reliability_reports_within_and_between_person_omega():
    from lcbayes.data.simulate import Design, simulate_study
    from lcbayes.data.study import Study

    sim = simulate_study(Design(communities=6, participants=6, sessions=5, likert=5), seed=4)
    rel = Study.from_frame(sim.table, sim.roles).reliability().set_index(["scale", "session"])
    climate = rel.loc[("climate", "all")]
    # item noise is fresh at every session: within-person deviations carry it all, person means average it out
    assert 0.3 < climate["omega_within"] < climate["omega"] < climate["omega_between"] <= 1.0
    assert rel.loc[("climate", 1), ["omega_within", "omega_between"]].isna().all()
    assert rel.loc[("lgo", "all"), ["omega_within", "omega_between"]].isna().all()   # participant-level scale
