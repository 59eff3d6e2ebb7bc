"""Slow: coverage of KnowledgeSharing's 90% intervals over 20 simulated studies (15% of
predictor values missing), and the bias of observed person-mean centring that latent
centring avoids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.simulate import Design, SharingTruth, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import KnowledgeSharing
from lcbayes.sampling import CompiledModel

from coverage_table import coverage_report

SEEDS = range(300, 320)


@pytest.mark.slow
def test_dynamics_and_effects_coverage_near_nominal():
    truth = SharingTruth(tau_org=0.0, f=(0.0, -0.05, -0.10, -0.10, -0.15, -0.20))
    checks = {"phi": truth.phi, "gamma_support": truth.gamma0, "gamma_efficacy": truth.gamma1,
              "beta_interaction": truth.beta_se, "delta": truth.delta, "beta_motivation": truth.beta_m,
              "beta_efficacy": truth.beta_e, "phi_motivation": truth.phi_m, "theta_support": truth.theta,
              **{f"support_walk[{t + 1}]": v for t, v in enumerate(truth.f_values(6)) if t},
              **{f"pi[{k}]": v for k, v in zip(("support", "self_efficacy", "motivation"), truth.pi, strict=True)}}
    compiled, priors, rows = None, None, []
    for seed in SEEDS:
        sim = simulate_study(Design(communities=20, participants=10, sessions=6, predictor_missing=0.15),
                             sharing=truth, seed=seed)
        model = KnowledgeSharing(Study.from_frame(sim.table, sim.roles),
                                 {"outcome": "sharing", "options": {"organization": False}, "priors": priors or {}})
        if compiled is None:   # compile once; later studies reuse the graph (and its priors)
            compiled = CompiledModel(model.model, model.spec.sampler.updated(chains=2, draws=600, tune=800),
                                     model.stored_vars())
            priors = {k: p.to_dict() for k, p in model.priors.items()}
        idata = compiled.sample(compiled.data_of(model.model), seed=seed)
        divergences = int(idata.sample_stats["diverging"].sum())
        for name, value in checks.items():
            var, _, label = name.partition("[")
            draws = idata.posterior[var]
            if label:
                dim = [d for d in draws.dims if d not in ("chain", "draw")][0]
                key = label.rstrip("]")
                draws = draws.sel({dim: int(key) if dim == "session" else key})
            draws = draws.values.ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            rows.append({"seed": seed, "parameter": name, "covered": lo <= value <= hi, "mean": draws.mean(),
                         "truth": value, "divergences": divergences})
    table, per_param, with_divergences = coverage_report(rows)
    # 20 parameters x 20 studies at nominal 0.90 (correlated within a study)
    assert 0.82 <= table["covered"].mean() <= 0.97
    assert per_param["coverage"].min() >= 0.70
    assert with_divergences <= 0.1


@pytest.mark.slow
def test_latent_centring_removes_the_bias_of_observed_person_means():
    """Four sessions, within SD 1 against a person-mean SD 0.6: an observed person mean has
    reliability ~0.6. The between effect of support (0.6) differs from its within effect
    (0.3), so observed centring pulls the between estimate towards the within one by about
    (1 - 0.6) x 0.3 (Luedtke et al. 2008). Eight studies, each fitted with both centrings; the
    biases are judged against their Monte Carlo standard errors."""
    truth = SharingTruth(sd_within=(1.0, 1.0), support_trend=0.0, pi=(0.6, 0.2, 0.25), tau_org=0.0)
    design = Design(communities=30, participants=12, sessions=4, attrition=0.0, late_join=0.0, missed=0.0)
    compiled: dict[str, CompiledModel] = {}
    priors: dict[str, dict] = {}
    rows = []
    for seed in range(500, 508):
        sim = simulate_study(design, sharing=truth, seed=seed)
        study = Study.from_frame(sim.table, sim.roles)
        for centring in ("latent", "observed"):
            options = {"centring": centring, "support_trend": False, "organization": False}
            spec = {"outcome": "sharing", "priors": priors.get(centring, {}), "options": options}
            model = KnowledgeSharing(study, spec)
            if centring not in compiled:
                sampler = model.spec.sampler.updated(chains=2, draws=600, tune=600)
                compiled[centring] = CompiledModel(model.model, sampler, model.stored_vars())
                priors[centring] = {k: p.to_dict() for k, p in model.priors.items()}
            c = compiled[centring]
            idata = c.sample(c.data_of(model.model), seed=seed)
            draws = idata.posterior["pi"].sel(predictor="support").values.ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            rows.append({"seed": seed, "centring": centring, "mean": draws.mean(), "covered": lo <= truth.pi[0] <= hi,
                         "divergences": int(idata.sample_stats["diverging"].sum())})
    table = pd.DataFrame(rows)
    by = table.groupby("centring").agg(mean=("mean", "mean"), sd=("mean", "std"), coverage=("covered", "mean"),
                                       divergences=("divergences", "sum"))
    by["bias"] = by["mean"] - truth.pi[0]
    by["mc_se"] = by["sd"] / np.sqrt(table["seed"].nunique())
    print(f"\nbetween effect of support (truth {truth.pi[0]}, within effect {truth.gamma0}), 8 studies:")
    print(by.to_string(float_format=lambda v: f"{v:.3f}"))
    latent, observed = by.loc["latent"], by.loc["observed"]
    assert abs(latent["bias"]) < 2.5 * latent["mc_se"] and latent["coverage"] >= 0.7
    assert observed["bias"] < -3 * observed["mc_se"] and observed["coverage"] <= 0.5
