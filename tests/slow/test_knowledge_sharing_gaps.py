"""Slow: model C on studies whose sessions are unequally spaced (1 to 8 weeks apart, the typical gap 4 weeks) and whose
sharing and motivation evolve over the weeks between sessions. The model with ``time = "time"`` (the dynamics over
each gap, A^gap) against the session model (one step per session) on the same data: the autoregression's coverage,
and which one leave-one-participant-out prefers.

Its figures are in ``benchmarks/RESULTS.md`` (model C, unequal gaps)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.simulate import Design, SharingTruth, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import KnowledgeSharing

TRUTH = SharingTruth(gap_dynamics=True, phi=0.6, phi_m=0.5)
DESIGN = Design(communities=12, participants=10, sessions=6, gap_spread=3.5, attrition=0.0, late_join=0.0)
SAMPLER = {"chains": 2, "draws": 500, "tune": 600}
STUDIES = range(500, 504)
CHECKED = ("phi", "phi_motivation", "delta", "beta_motivation")


def fit_gap_studies(seeds: Iterable[int]) -> pd.DataFrame:
    """One row per study and timing (``session``, ``time``): the posterior mean, 90% interval and its coverage of
    each checked dynamic coefficient, divergences, and the participant-level elpd_loo."""
    import arviz as az

    truth = {"phi": TRUTH.phi, "phi_motivation": TRUTH.phi_m, "delta": TRUTH.delta, "beta_motivation": TRUTH.beta_m}
    rows = []
    for seed in seeds:
        sim = simulate_study(DESIGN, sharing=TRUTH, seed=seed)
        study = Study.from_frame(sim.table, sim.roles)
        for timing in ("session", "time"):
            model = KnowledgeSharing(study, {"outcome": "sharing",
                                             "options": {"time": timing, "gap_unit": DESIGN.weeks_between_sessions}})
            idata = model.fit(**SAMPLER, seed=seed)
            elpd = float(az.loo(idata).elpd)
            for name in CHECKED:
                draws = idata.posterior[name].values.ravel()
                low, high = np.quantile(draws, [0.05, 0.95])
                rows.append({"seed": seed, "timing": timing, "quantity": name, "truth": truth[name],
                             "mean": draws.mean(), "low": low, "high": high, "covered": low <= truth[name] <= high,
                             "divergences": int(idata.sample_stats["diverging"].sum()), "elpd_loo": elpd})
            print(pd.DataFrame(rows[-len(CHECKED):]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_dynamics_over_unequal_gaps_are_recovered_and_preferred():
    table = fit_gap_studies(STUDIES)
    print(table.groupby(["timing", "quantity"])[["mean", "covered", "divergences"]].mean().to_string())
    time, session = (table[table["timing"] == t] for t in ("time", "session"))
    assert time["covered"].mean() >= 0.75                             # 16 intervals
    assert (time["divergences"] == 0).mean() >= 0.8
    phi = time[time["quantity"] == "phi"]
    assert abs(phi["mean"].mean() - TRUTH.phi) < 0.1
    elpd = time.groupby("seed")["elpd_loo"].first() - session.groupby("seed")["elpd_loo"].first()
    print("elpd_loo, time minus session model, per study:", elpd.round(1).tolist())
    assert (elpd > 0).mean() >= 0.75                                  # LOO prefers the dynamics over the gaps
