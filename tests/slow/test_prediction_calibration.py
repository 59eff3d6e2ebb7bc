"""Slow: formula covariates and predictions for held-out communities over 20 simulated studies.

Per study (16 communities x 8 participants x 5 sessions, model A with ``location = "tenure + C(sector) + noise"``):
- coverage of the 90% intervals of the formula coefficients (tenure, two sector contrasts) and the false-positive
  rate of a covariate without effect (``noise``: its 90% interval excludes 0);
- the model refitted without one community, whose rows are then predicted as a new community
  (``kind="predictive"``, ``new_groups="sample"``): the share of its observed scores inside their central 90%
  predictive interval. Too low: new communities' effects (or the residual) too narrow; too high: too wide.
"""

from __future__ import annotations

import numpy as np
import pytest

from lcbayes.data.study import Study
from lcbayes.models import ClimateGrowth

from coverage_table import coverage_report

SEEDS = range(300, 320)
FIT = {"chains": 2, "draws": 800, "tune": 600}


@pytest.mark.slow
def test_formula_coverage_false_positives_and_held_out_prediction_calibration():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_prediction import SECTOR, TENURE, with_covariates

    truth = {"beta_location[tenure]": TENURE, "beta_location[C(sector)[2.0]]": SECTOR[2],
             "beta_location[C(sector)[3.0]]": SECTOR[3], "beta_location[noise]": 0.0}
    rows, inside, false_positive = [], [], []
    for seed in SEEDS:
        table, roles = with_covariates(seed)
        table["noise"] = np.random.default_rng(seed + 1).normal(size=len(table))    # no effect on climate
        roles["variables"]["noise"] = {"column": "noise", "level": "session"}
        spec = {"outcome": "climate", "options": {"organization": False,
                                                  "location": "tenure + C(sector) + noise"}}
        model = ClimateGrowth(Study.from_frame(table, roles), spec)
        model.fit(**FIT, seed=seed)
        summary = model.summary()
        divergences = model.diagnostics().divergences
        for name, value in truth.items():
            draws = model.fitted().posterior["beta_location"].sel(location_term=name[14:-1]).values.ravel()
            lo, hi = np.quantile(draws, [0.05, 0.95])
            rows.append({"seed": seed, "parameter": name, "covered": lo <= value <= hi, "mean": draws.mean(),
                         "truth": value, "divergences": divergences})
        false_positive.append(not (summary.loc["beta_location[noise]", "hdi90_lb"] <= 0.0
                                   <= summary.loc["beta_location[noise]", "hdi90_ub"]))
        held = table[table["community"] != "C01"]
        refit = ClimateGrowth(Study.from_frame(held, roles), spec)
        refit.fit(**FIT, seed=seed + 1)
        rows_out = table[table["community"] == "C01"]
        predicted = refit.predict(rows_out, kind="predictive", seed=seed)["predictions"]["climate"]
        lo, hi = np.quantile(predicted.values.reshape(-1, predicted.sizes["row"]), [0.05, 0.95], axis=0)
        observed = rows_out["climate"].to_numpy()
        inside.extend(((lo <= observed) & (observed <= hi)).tolist())
    table_, per_param, _ = coverage_report(rows)
    print(f"false-positive rate of the null covariate (90% HDI excludes 0): {np.mean(false_positive):.2f} "
          f"over {len(false_positive)} studies")
    print(f"held-out community: {np.mean(inside):.3f} of {len(inside)} observed scores inside their 90% "
          "predictive interval")
    # 80 intervals at nominal 0.90 (binomial SD 0.034); 20 null tests at nominal 0.10
    assert 0.80 <= table_["covered"].mean() <= 0.98
    assert (per_param["coverage"] >= 0.7).all()
    assert np.mean(false_positive) <= 0.3
    # about 740 scores in 20 held-out communities, correlated within community: wide bounds
    assert 0.82 <= np.mean(inside) <= 0.97
