"""Convergence verdicts on draws with known behaviour."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import xarray as xr

from lcbayes.diagnostics import diagnose


def idata_from(posterior: dict, diverging=None, energy=None) -> xr.DataTree:
    stats = {}
    if diverging is not None:
        stats["diverging"] = diverging
    if energy is not None:
        stats["energy"] = energy
    return az.from_dict({"posterior": posterior, **({"sample_stats": stats} if stats else {})})


def test_independent_draws_pass():
    rng = np.random.default_rng(0)
    idata = idata_from({"a": rng.normal(size=(4, 1000)), "b": rng.normal(size=(4, 1000, 3))},
                       diverging=np.zeros((4, 1000), bool), energy=rng.normal(size=(4, 1000)))
    d = diagnose(idata, ["a", "b"])
    assert d.passed, str(d)
    assert d.table.set_index("group").loc["b", "size"] == 3
    assert d.hints() == []


def test_disagreeing_chains_fail_rhat_with_hint():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=(4, 500))
    draws[0] += 1.0                                    # one chain elsewhere
    d = diagnose(idata_from({"a": draws}, diverging=np.zeros((4, 500), bool)), ["a"])
    row = d.table.iloc[0]
    assert row.max_r_hat > 1.01 and not row.ok
    assert "chains disagree" in row.hint
    assert not d.passed


def test_autocorrelated_draws_fail_ess_with_factor():
    rng = np.random.default_rng(0)
    phi, n = 0.5, 200                                  # AR(1): ESS ~ 4 n (1 - phi) / (1 + phi) ~ 270
    x = np.zeros((4, n))
    x[:, 0] = rng.normal(size=4) / np.sqrt(1 - phi**2)  # stationary start: chains agree (R-hat ok)
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + rng.normal(size=4)
    d = diagnose(idata_from({"a": x}, diverging=np.zeros((4, n), bool)), ["a"])
    row = d.table.iloc[0]
    assert row.max_r_hat <= 1.01 and row.min_ess_bulk < 400
    assert "increase draws" in row.hint


def test_divergences_and_low_ebfmi_are_reported():
    rng = np.random.default_rng(3)
    diverging = np.zeros((2, 500), bool)
    diverging[0, :3] = True
    energy = np.cumsum(rng.normal(size=(2, 500)), axis=1)   # random walk energy: E-BFMI near 0
    d = diagnose(idata_from({"a": rng.normal(size=(2, 500))}, diverging, energy), ["a"])
    assert d.divergences == 3
    assert d.min_ebfmi < 0.3
    hints = " ".join(d.hints())
    assert "raise target_accept" in hints and "E-BFMI" in hints
    assert str(d).startswith("NOT converged: 3 divergences")


def test_missing_energy_is_not_checked_rather_than_failed():
    """Without an energy sample stat E-BFMI is unknown: the other checks decide, and the
    verdict says E-BFMI was not checked."""
    rng = np.random.default_rng(4)
    d = diagnose(idata_from({"a": rng.normal(size=(4, 1000))}, diverging=np.zeros((4, 1000), bool)), ["a"])
    assert np.isnan(d.min_ebfmi) and not d.ebfmi_checked
    assert d.passed, str(d)
    assert str(d).startswith("converged: 0 divergences, E-BFMI not checked")
    assert any("no energy statistic" in h for h in d.hints())
    diverging = np.zeros((4, 1000), bool)
    diverging[0, 0] = True                           # the other checks still fail a fit
    failed = diagnose(idata_from({"a": rng.normal(size=(4, 1000))}, diverging=diverging), ["a"])
    assert not failed.passed and str(failed).startswith("NOT converged: 1 divergences, E-BFMI not checked")


@pytest.mark.review_case(71)
def test_one_chain_is_not_called_disagreeing():
    """R-hat needs two chains: with one, the verdict says so instead of 'chains disagree' for every parameter."""
    rng = np.random.default_rng(2)
    d = diagnose(idata_from({"a": rng.normal(size=(1, 2000))}, diverging=np.zeros((1, 2000), bool)), ["a"])
    row = d.table.iloc[0]
    assert np.isnan(row.max_r_hat) and not row.ok and not d.passed
    assert "needs at least two chains" in row.hint and "disagree" not in row.hint
