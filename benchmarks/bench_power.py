"""Power-analysis throughput: replicate fits per minute, lcbayes runner against a naive loop.

Run from the repository root (about 15 minutes on 2 cores):

    .venv/bin/python benchmarks/bench_power.py [--replicates 12] [--naive 2] [--naive-lcbayes 3]

Consensus emergence on the reference design (20 communities x 12 participants x 6
sessions, the simulator's attrition, late joining and missed sessions). Both rows fit the
same replicate studies (seeds from the same plan):

- **lcbayes runner**: ``lcbayes.power.run`` with ``benchmarks/power_plan.toml`` (compile
  once with nutpie, swap each replicate's data, 2 chains x 700 tuning + 1500 draws), one
  worker process; the wall time includes compilation and the results store.
- **naive loop**: for every replicate, build the PyMC model again and ``pm.sample`` it with
  PyMC's defaults (2 chains x 1000 tuning + 1000 draws, PyMC's NUTS), the model written
  plainly (centred community effects with ``LKJCholeskyCov``, participant intercepts sampled,
  the same location-scale equations and composition/trait predictors);
- **lcbayes model, naive loop**: the same loop with lcbayes' parameterisation (participant
  effects integrated out, non-centred community effects): what the runner adds on top.

A fit counts when it passes the diagnostics (R-hat <= 1.01, bulk and tail ESS >= the plan's
``min_ess``, no divergences, E-BFMI >= 0.3). Fits per minute = counted fits / wall minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from lcbayes.data.composition import community_composition
from lcbayes.diagnostics import diagnose
from lcbayes.models import MODELS
from lcbayes.power import Plan, run
from lcbayes.power.runner import simulate_replicate

PLAN = Path(__file__).with_name("power_plan.toml")


def lcbayes_row(plan: Plan) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench_power_"))
    t0 = time.perf_counter()
    results = run(plan, str(out), workers=1, progress=False).load()
    wall = time.perf_counter() - t0
    shutil.rmtree(out)
    fits = results.drop_duplicates(["cell", "replicate"])
    passed = int(fits["diagnostics_passed"].sum())
    return {"row": "lcbayes runner (compile once, nutpie)", "fits": len(fits), "passed": passed,
            "wall_s": wall, "fits_per_min": passed / wall * 60, "divergences": int(fits["divergences"].sum())}


def naive_model(study) -> pm.Model:
    """Model B written plainly: centred effects, participant intercepts sampled."""
    y = study.values("climate")
    ok = ~np.isnan(y)
    s = (study.table["session"].to_numpy() - 1.0)[ok]
    c, p = study.idx["community"][ok], study.idx["participant"][ok]
    comp = community_composition(study, ["lgo"])["lgo_sd"].to_numpy()
    z = (comp - comp.mean()) / comp.std()
    w_all = study.participant_values("psych_safety").to_numpy()
    w = (w_all - w_all.mean()) / w_all.std()
    sd_y = y[ok].std()
    with pm.Model() as model:
        b = pm.Normal("beta", [y[ok].mean(), 0.0], [2.5 * sd_y, 2.5 * sd_y])
        chol, _, _ = pm.LKJCholeskyCov("chol_u", n=2, eta=2, sd_dist=pm.HalfNormal.dist(sd_y, shape=2))
        u = pm.MvNormal("u", mu=np.zeros(2), chol=chol, shape=(study.n("community"), 2))
        tau_r = pm.HalfNormal("tau_participant", sd_y)
        r = pm.Normal("r", 0, tau_r, shape=study.n("participant"))
        a = pm.Normal("alpha", 0, 1, shape=5)
        mu = b[0] + b[1] * s + u[c, 0] + u[c, 1] * s + r[p]
        log_sigma = pt.log(sd_y) + a[0] + a[1] * s + a[2] * z[c] + a[3] * z[c] * s + a[4] * w[p]
        pm.Normal("y", mu, pt.exp(log_sigma), observed=y[ok])
    return model


NAIVE_POPULATION = ["beta", "chol_u_stds", "tau_participant", "alpha"]


def naive_row(plan: Plan, replicates: int, plain: bool = True) -> dict:
    cell = plan.cells()[0]
    passed = divergences = 0
    t0 = time.perf_counter()
    for r in range(replicates):
        study = simulate_replicate(plan, cell, r)                  # the runner's studies
        model = naive_model(study) if plain else MODELS[plan.model](study, plan.spec).model
        names = NAIVE_POPULATION if plain else MODELS[plan.model](study, plan.spec).population
        with model:
            idata = pm.sample(chains=2, cores=2, random_seed=r, progressbar=False, compute_convergence_checks=False)
        verdict = diagnose(idata, names, min_ess=plan.min_ess)
        passed += verdict.passed
        divergences += verdict.divergences
    wall = time.perf_counter() - t0
    label = "naive loop, plain model" if plain else "naive loop, lcbayes model"
    return {"row": f"{label} (rebuild + pm.sample defaults)", "fits": replicates, "passed": passed,
            "wall_s": wall, "fits_per_min": passed / wall * 60, "divergences": divergences,
            "all_fits_per_min": replicates / wall * 60}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=12)
    parser.add_argument("--naive", type=int, default=2, help="replicates of the plain-model naive loop")
    parser.add_argument("--naive-lcbayes", type=int, default=3, help="replicates of the lcbayes-model naive loop")
    args = parser.parse_args()
    raw = Plan.from_path(PLAN).raw
    plan = Plan.parse({**raw, "replicates": args.replicates})
    rows = [lcbayes_row(plan), naive_row(plan, args.naive), naive_row(plan, args.naive_lcbayes, plain=False)]
    for row in rows:
        row.setdefault("all_fits_per_min", row["fits"] / row["wall_s"] * 60)
        print(json.dumps(row))
    ratios = [rows[0]["fits_per_min"] / max(r["all_fits_per_min"], 1e-9) for r in rows[1:]]
    print("\n| row | fits | passed | wall_s | counted fits/min | all fits/min | divergences |"
          "\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['fits']} | {r['passed']} | {r['wall_s']:.1f} | {r['fits_per_min']:.2f} | "
              f"{r['all_fits_per_min']:.2f} | {r['divergences']} |")
    print(f"\nlcbayes counted fits/min over each naive loop's fits/min (every naive fit counted, passing or not): "
          f"{ratios[0]:.1f}x (plain model), {ratios[1]:.1f}x (lcbayes model)")


if __name__ == "__main__":
    main()
