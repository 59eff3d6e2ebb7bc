"""Slow: coverage of 90% intervals of ClimateGrowth over 20 simulated studies."""

from __future__ import annotations

import numpy as np
import pytest

from lcbayes.data.simulate import ClimateTruth, Design, SharingTruth, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import ClimateGrowth

from coverage_table import coverage_report

SEEDS = range(100, 120)


@pytest.mark.slow
def test_interval_coverage_near_nominal():
    truth = ClimateTruth(alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0,
                         gamma_lgo=0.2, gamma_support_within=0.15, gamma_support_between=0.25)
    checks = {
        "beta_intercept": truth.beta0, "beta_time": [truth.beta1], "gamma_trait": [truth.gamma_lgo],
        "gamma_within": [truth.gamma_support_within], "gamma_between": [truth.gamma_support_between],
        "tau_community": truth.tau_u, "tau_participant": truth.tau_r, "tau_organization": [truth.tau_o],
        "sigma": [np.exp(truth.alpha0)],
    }
    rows = []
    for seed in SEEDS:
        sim = simulate_study(Design(communities=20, participants=10, sessions=5, predictor_missing=0.1),
                             climate=truth, sharing=SharingTruth(support_trend=0.0), seed=seed)
        model = ClimateGrowth(Study.from_frame(sim.table, sim.roles),
                              {"outcome": "climate", "options": {"traits": ["lgo"], "time_varying": ["support"]}})
        idata = model.fit(chains=2, draws=1000, tune=600, seed=seed)
        divergences = model.diagnostics().divergences
        for name, value in checks.items():
            draws = idata.posterior[name].stack(sample=("chain", "draw")).values.reshape(len(np.atleast_1d(value)), -1)
            for k, v in enumerate(np.atleast_1d(value)):
                lo, hi = np.quantile(draws[k], [0.05, 0.95])
                rows.append({"seed": seed, "parameter": f"{name}[{k}]", "covered": lo <= v <= hi,
                             "mean": draws[k].mean(), "truth": v, "divergences": divergences})
    table, per_param, _ = coverage_report(rows)
    # 220 intervals at nominal 0.90: binomial SD 0.02
    assert 0.82 <= table["covered"].mean() <= 0.97
    assert (per_param["coverage"] >= 0.65).all()
