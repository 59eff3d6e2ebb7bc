"""Slow: model B on Likert data with a learning outcome. False-positive rate of the learning effects over 200 studies
with no effect (and a community residual in learning), and 90% coverage of alpha1, alpha3, alpha5 and the learning
effects over those and 20 studies with effects (about 45 minutes on 2 cores)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pytest

from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import ConsensusEmergence
from lcbayes.sampling import CompiledModel

from coverage_table import coverage_report

# 30 communities and community-specific spread that varies: learning effects informed by the data (with 20 communities
# and little variation in consensus, the posteriors of the learning effects are their priors and cover the truth in
# 99-100% of studies, which checks nothing)
DESIGN = Design(communities=30, participants=8, sessions=5, likert=5)
OPTIONS = {"organization": False, "composition": ["lgo_sd"], "scale_traits": ["psych_safety"],
           "community_scale": True, "learning": "learning"}
BASE = dict(gamma_lgo=0.0, gamma_support_within=0.0, gamma_support_between=0.0, tau_r=(0.3, 0.0), tau_o=0.0,
            alpha1=-0.08, alpha3=0.03, alpha5=-0.03, tau_v=(0.3, 0.03), tau_learning=0.2, sigma_learning=0.35,
            eta_interaction=0.0)
# 200 null studies: at 50, a share of 10% has a binomial SD of 4.2%, and seeds 500-549 alone give 0.14 and 0.16 by
# chance (0.06-0.10 in each later block of 50; benchmarks/RESULTS.md)
TRUTHS = {"no_learning_effects": (ClimateTruth(**BASE, eta_strength=0.0, eta_consensus=0.0), range(500, 700)),
          "learning_effects": (ClimateTruth(**BASE, eta_strength=0.6, eta_consensus=-0.5), range(600, 620))}
TERMS = ("strength", "consensus", "strength_x_consensus")
SAMPLER = {"chains": 2, "draws": 500, "tune": 500, "target_accept": 0.95}


def fit_studies(truth: ClimateTruth, seeds: Iterable[int], cut: bool = False, prior_seed: int | None = None,
                on_study: Callable[[int, list[dict]], None] | None = None) -> list[dict]:
    """One row per seed and checked quantity (interval, coverage, exclusion of 0); ``cut`` fits the two-stage model.
    Every study uses the default priors of the study of ``prior_seed`` (default: the first seed), so that the graph
    compiles once; ``on_study(seed, rows)`` is called after each study (the benchmark script stores them there)."""
    seeds = list(seeds)

    def model_of(seed: int, priors: dict) -> ConsensusEmergence:
        sim = simulate_study(DESIGN, climate=truth, seed=seed)
        return ConsensusEmergence(Study.from_frame(sim.table, sim.roles),
                                  {"outcome": "climate", "options": {**OPTIONS, "cut": cut}, "priors": priors})

    first = model_of(seeds[0] if prior_seed is None else prior_seed, {})
    priors = {k: p.to_dict() for k, p in first.priors.items()}
    compiled, rows = CompiledModel(first.model, first.spec.sampler.updated(**SAMPLER), first.stored_vars()), []
    checks = {"alpha_time": truth.alpha1, "alpha_composition_time": truth.alpha3, "alpha_trait_time": truth.alpha5}
    checks.update({f"eta_average[{t}]": v for t, v in zip(TERMS, (truth.eta_strength, truth.eta_consensus,
                                                                    truth.eta_interaction), strict=True)})
    for seed in seeds:
        model = model_of(seed, priors)
        idata = model.complete(compiled.sample(compiled.data_of(model.model), seed=seed), model.spec.sampler)
        post = idata.posterior
        divergences = int(idata.sample_stats["diverging"].sum())
        study = []
        for name, value in checks.items():
            draws = (post["eta_average"].sel(outcome_term=name[12:-1]) if name.startswith("eta_average")
                     else post[name]).values.ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            study.append({"seed": seed, "parameter": name, "covered": bool(lo <= value <= hi),
                          "mean": float(draws.mean()), "sd": float(draws.std()), "lo": float(lo), "hi": float(hi),
                          "truth": value, "excludes_0": bool(not lo <= 0 <= hi), "divergences": divergences})
        if on_study is not None:
            on_study(seed, study)
        rows += study
    return rows


@pytest.mark.slow
def test_learning_effects_false_positives_and_coverage():
    """200 studies without learning effects: at most 12% of the 90% intervals of each learning effect exclude 0. All
    220 studies: the 90% coverage of alpha1, alpha3, alpha5 and of each learning effect lies in [0.82, 0.97] (binomial
    SD at 220 studies: 0.020)."""
    rows = []
    for case, (truth, seeds) in TRUTHS.items():
        rows += [{**row, "case": case} for row in fit_studies(truth, seeds)]
    table, per_param, with_divergences = coverage_report(rows)
    null = table[table["case"] == "no_learning_effects"]
    excluding = null.groupby("parameter")["excludes_0"].mean()
    print(f"no learning effects, share of 90% intervals excluding 0:\n{excluding.to_string()}")
    for t in TERMS:
        assert excluding[f"eta_average[{t}]"] <= 0.12, (t, excluding)
    for name in per_param.index:
        assert 0.82 <= per_param.loc[name, "coverage"] <= 0.97, (name, per_param)
    assert with_divergences <= 0.1
