"""Slow: coverage of ConsensusEmergence's 90% intervals over 20 simulated studies."""

from __future__ import annotations

import numpy as np
import pytest

from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import ConsensusEmergence
from lcbayes.sampling import CompiledModel

from coverage_table import coverage_report

SEEDS = range(200, 220)
OPTIONS = {"organization": False, "composition": ["lgo_sd"], "scale_traits": ["psych_safety"]}


@pytest.mark.slow
def test_emergence_and_composition_coverage_near_nominal():
    truth = ClimateTruth(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0,
                         tau_r=(0.5, 0.0), tau_o=0.0, alpha1=-0.08, alpha3=0.03)
    checks = {"alpha_time": truth.alpha1, "alpha_composition_time": truth.alpha3,
              "alpha_composition": truth.alpha2, "alpha_trait": truth.alpha4, "alpha_intercept": truth.alpha0,
              "beta_time": truth.beta1}
    compiled, priors, rows = None, None, []
    for seed in SEEDS:
        sim = simulate_study(Design(communities=20, participants=10, sessions=6), climate=truth, seed=seed)
        model = ConsensusEmergence(Study.from_frame(sim.table, sim.roles),
                                   {"outcome": "climate", "options": OPTIONS, "priors": priors or {}})
        if compiled is None:   # compile once; later studies reuse the graph (and its priors)
            compiled = CompiledModel(model.model, model.spec.sampler.updated(chains=2, draws=1000, tune=700),
                                     model.stored_vars())
            priors = {k: p.to_dict() for k, p in model.priors.items()}
        idata = compiled.sample(compiled.data_of(model.model), seed=seed)
        divergences = int(idata.sample_stats["diverging"].sum())
        for name, value in checks.items():
            draws = idata.posterior[name].values.ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            rows.append({"seed": seed, "parameter": name, "covered": lo <= value <= hi, "mean": draws.mean(),
                         "truth": value, "divergences": divergences})
    table, per_param, with_divergences = coverage_report(rows)
    # 120 intervals at nominal 0.90: binomial SD 0.027
    assert 0.80 <= table["covered"].mean() <= 0.98
    assert per_param.loc["alpha_time", "coverage"] >= 0.75
    assert per_param.loc["alpha_composition_time", "coverage"] >= 0.75
    assert with_divergences <= 0.1
