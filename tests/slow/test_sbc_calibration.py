"""Slow: simulation-based calibration of each model at a small design. Ranks of the
prior-drawn true values must stay inside the simultaneous bands; with k parameters the
band level is 1 - 0.05 / k (Bonferroni), so the family of checks errs 5% of the time.

Set LCBAYES_SBC_OUT to a folder to keep the replicates there: a killed run then resumes
where it stopped (the power store skips finished replicates)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lcbayes.power import Plan, run
from lcbayes.power.sbc import sbc_check, sbc_replicate

CASES = {
    "climate_growth": ({"outcome": "climate", "options": {"organization": False}}, 100),
    "consensus_emergence": ({"outcome": "climate", "options": {"organization": False, "composition": ["lgo_sd"]}},
                            100),
    "knowledge_sharing": ({"outcome": "sharing", "options": {"organization": False}}, 60),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(CASES))
def test_ranks_are_uniform(model, tmp_path):
    spec, replicates = CASES[model]
    spec = {**spec, "sampler": {"backend": "nutpie", "chains": 2, "draws": 500, "tune": 500, "target_accept": 0.95}}
    plan = Plan.parse({"model": model, "spec": spec, "replicates": replicates, "seed": 11, "min_ess": 100,
                       "design": {"communities": 8, "participants": 6, "sessions": 5, "predictor_missing": 0.1}},
                      require_targets=False)
    out = Path(os.environ["LCBAYES_SBC_OUT"]) / model if "LCBAYES_SBC_OUT" in os.environ else tmp_path
    results = run(plan, str(out), progress=False, task=sbc_replicate, kind="sbc").load()
    k = results["target"].nunique()
    check = sbc_check(results, prob=1 - 0.05 / k)
    nominal = sbc_check(results, prob=0.95)
    check["inside_95"] = nominal["inside_band"].to_numpy()
    print(f"\n{model}: {replicates} replicates, {k} parameters, band level {1 - 0.05 / k:.4f}")
    print(check.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    assert len(results) == replicates * k
    assert check["inside_band"].all(), check[~check["inside_band"]]
