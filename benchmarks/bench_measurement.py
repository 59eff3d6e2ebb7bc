"""Same-run cost and estimates of model A's measurement variants: the scale mean (Gaussian), the items as ordinal
indicators of a latent score with thresholds invariant across sessions, and with thresholds free per session.

Run from the repository root (about 15 minutes on 2 cores):

    .venv/bin/python benchmarks/bench_measurement.py [--seed 1] [--out benchmarks/results_measurement.json]

Data: the reference design (20 communities x 12 participants x 6 sessions, complete panel, 1,440 rows) with 4 five-point
climate items per cell (latent climate + N(0, 0.6^2) item noise, rounded and clipped, so the true thresholds are 1.5,
2.5, 3.5, 4.5 and the true item SD 0.6). Each variant is fitted once at the model's default sampler settings (4 chains
x 1000 tuning + 1000 draws, nutpie) on the same data; reported: compile and sampling time, minimum bulk ESS over the
growth parameters the variants share and over all population parameters, min-ESS/s (with compilation), the time of
the participant-level log likelihood, PSIS-LOO on the same observations (the scale scores), and the growth estimates
against the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import arviz as az
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import ess_stats, machine

from lcbayes.cv import compare_loo
from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.sampling import CompiledModel

VARIANTS = {"scale mean (Gaussian)": {},
            "items, invariant thresholds": {"measurement": "items"},
            "items, thresholds per session": {"measurement": "items", "thresholds": "session"}}
SHARED = ["beta_intercept", "beta_time", "tau_community", "tau_participant", "sigma"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results_measurement.json"))
    args = parser.parse_args()
    truth = ClimateTruth(alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0)
    design = Design(communities=20, participants=12, sessions=6, attrition=0, late_join=0, missed=0, likert=5)
    sim = simulate_study(design, climate=truth, seed=args.seed)
    study = Study.from_frame(sim.table, sim.roles)
    rows, fits = [], {}
    for label, options in VARIANTS.items():
        model = ClimateGrowth(study, {"outcome": "climate", "options": {"traits": [], "time_varying": [], **options}})
        s = model.spec.sampler.updated(seed=args.seed)
        t0 = time.perf_counter()
        compiled = CompiledModel(model.model, s, model.stored_vars())
        t1 = time.perf_counter()
        idata = compiled.sample()
        t2 = time.perf_counter()
        idata = model.complete(idata, s)
        t3 = time.perf_counter()
        shared, _, div = ess_stats(idata, SHARED)
        bulk, tail, _ = ess_stats(idata, model.population)
        loo = az.loo(idata)
        fits[label] = idata
        post = idata.posterior
        rows.append({"variant": label, "chains": s.chains, "tune": s.tune, "draws": s.draws,
                     "compile_s": t1 - t0, "sampling_s": t2 - t1, "loglik_s": t3 - t2,
                     "min_ess_bulk_shared": shared, "min_ess_bulk_all": bulk, "min_ess_tail_all": tail,
                     "divergences": div, "ess_per_s_shared": shared / (t2 - t0), "ess_per_s_all": bulk / (t2 - t0),
                     "elpd_loo": float(loo.elpd), "elpd_se": float(loo.se), "p_loo": float(loo.p),
                     "pareto_k_above_0.7": int((np.asarray(loo.pareto_k) > 0.7).sum()),
                     "estimates": {v: np.round(post[v].mean(("chain", "draw")).values, 4).tolist()
                                   for v in SHARED + (["thresholds", "item_sd"] if "items" in label else [])}})
        print(json.dumps(rows[-1]), flush=True)
    table = compare_loo(fits)
    result = {"machine": machine(), "seed": args.seed,
              "truth": {"beta_intercept": truth.beta0, "beta_time": truth.beta1, "thresholds": [1.5, 2.5, 3.5, 4.5],
                        "item_sd": design.item_sd},
              "rows": rows,
              "loo_compare": {str(k): {c: float(v[c]) for c in ("elpd", "elpd_diff", "dse")}
                              for k, v in table.iterrows()}}
    args.out.write_text(json.dumps(result, indent=1))
    print(table)


if __name__ == "__main__":
    main()
