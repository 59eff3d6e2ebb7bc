"""Speed of the lcbayes models per sampler back end, against a naive PyMC baseline.

Run from the repository root (takes ~10 minutes on 2 cores):

    .venv/bin/python benchmarks/bench_models.py [--model climate_growth] [--scaling] \
        [--out benchmarks/results_climate_growth.json]

For the reference design (20 communities x 12 participants x 6 sessions, complete panel,
1,440 rows) it fits the model with every back end at the same settings (2 chains x 1000
tuning + 1000 draws) and at lcbayes' default settings, and a naive baseline: the same model
written plainly (centred random effects, participant effects sampled, LKJCholeskyCov) and
sampled with ``pm.sample``. Reported per row: wall time with compilation, sampling time
alone (second call on the compiled model, or warm cache), minimum bulk and tail ESS over the
population parameters, min bulk ESS per second (with and without compilation), divergences.
All rows are measured in one run, on one machine, so their ratios are comparable.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import arviz as az
import numpy as np
import pymc as pm

from lcbayes.data.simulate import ClimateTruth, Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import MODELS
from lcbayes.sampling import CompiledModel

SAME = {"chains": 2, "tune": 1000, "draws": 1000}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    import os

    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, pymc {pm.__version__}"


SPECS = {
    "climate_growth": {"outcome": "climate"},
    "consensus_emergence": {"outcome": "climate", "options": {
        "composition": ["lgo_sd"], "scale_traits": ["psych_safety"], "learning": "learning",
        "composition_implied_spread": True}},   # the same parts as before the consensus rework (no v_j)
    "knowledge_sharing": {"outcome": "sharing"},
}


def reference_simulation(scale: int = 1, seed: int = 1, model: str = "climate_growth"):
    """The simulated reference study (table, roles, truth) of :func:`reference_study`."""
    emergence = model == "consensus_emergence"
    truth = ClimateTruth() if emergence else ClimateTruth(alpha1=0.0, alpha2=0.0, alpha3=0.0, alpha4=0.0)
    design = Design(communities=20 * scale, participants=12, sessions=6, attrition=0, late_join=0, missed=0,
                    predictor_missing=0.1 if model == "knowledge_sharing" else 0.0)
    return simulate_study(design, climate=truth, seed=seed)


def reference_study(scale: int = 1, seed: int = 1, model: str = "climate_growth") -> Study:
    """The reference design, complete panel. Model B's study has emergence; model C's has 10%
    of predictor values missing (not observed: the filter skips them)."""
    sim = reference_simulation(scale, seed, model)
    return Study.from_frame(sim.table, sim.roles)


def ess_stats(idata, var_names) -> tuple[float, float, int]:
    bulk = az.ess(idata, var_names=var_names, method="bulk")
    tail = az.ess(idata, var_names=var_names, method="tail")
    return (min(float(bulk[v].min()) for v in var_names), min(float(tail[v].min()) for v in var_names),
            int(idata.sample_stats["diverging"].sum()))


def lcbayes_row(study: Study, name: str, spec: dict, backend: str, settings: dict, label: str) -> dict:
    model = MODELS[name](study, spec)
    s = model.spec.sampler.updated(backend=backend, **settings)
    t0 = time.perf_counter()
    compiled = CompiledModel(model.model, s, model.stored_vars())
    t1 = time.perf_counter()
    idata = compiled.sample()
    t2 = time.perf_counter()
    again = compiled.sample(seed=s.seed + 1)          # compiled once: a second fit
    t3 = time.perf_counter()
    bulk, tail, div = ess_stats(idata, model.population)
    bulk2, _, _ = ess_stats(again, model.population)
    return {"row": label, "backend": backend, **{k: getattr(s, k) for k in ("chains", "tune", "draws")},
            "wall_with_compile_s": t2 - t0, "compile_s": t1 - t0, "sampling_s": t3 - t2,
            "min_ess_bulk": bulk, "min_ess_tail": tail, "divergences": div,
            "ess_per_s_with_compile": bulk / (t2 - t0), "ess_per_s_sampling": bulk2 / (t3 - t2)}


def naive_model(study: Study, outcome: str) -> pm.Model:
    """Model A written plainly: centred effects, participant effects sampled, LKJCholeskyCov."""
    y = study.values(outcome)
    ok = ~np.isnan(y)
    s = (study.table["session"].to_numpy() - 1.0)[ok]
    c, p, o = (study.idx[k][ok] for k in ("community", "participant", "organization"))
    sd_y = y[ok].std()
    with pm.Model(coords={"organization": study.coords["organization"]}) as model:
        b0 = pm.Normal("beta_intercept", y[ok].mean(), 2.5 * sd_y)
        b1 = pm.Normal("beta_time", 0, 2.5 * sd_y)
        chol_u, _, _ = pm.LKJCholeskyCov("chol_u", n=2, eta=2, sd_dist=pm.HalfNormal.dist(sd_y, shape=2))
        u = pm.MvNormal("u", mu=np.zeros(2), chol=chol_u, shape=(study.n("community"), 2))
        chol_r, _, _ = pm.LKJCholeskyCov("chol_r", n=2, eta=2, sd_dist=pm.HalfNormal.dist(sd_y, shape=2))
        r = pm.MvNormal("r", mu=np.zeros(2), chol=chol_r, shape=(study.n("participant"), 2))
        tau_o = pm.HalfNormal("tau_organization", sd_y / 2)
        org = pm.Normal("organization_effect", 0, tau_o, dims="organization")
        sigma = pm.Exponential("sigma", 1 / sd_y)
        mu = b0 + b1 * s + u[c, 0] + u[c, 1] * s + r[p, 0] + r[p, 1] * s + org[o]
        pm.Normal("y", mu, sigma, observed=y[ok])
    return model


def naive_row(study: Study, outcome: str) -> dict:
    model = naive_model(study, outcome)
    names = ["beta_intercept", "beta_time", "chol_u_stds", "chol_r_stds", "tau_organization", "sigma"]
    timings, results = [], []
    for seed in (1, 2):                                # second call: PyTensor's compile cache is warm
        t0 = time.perf_counter()
        with model:
            idata = pm.sample(**SAME, cores=2, random_seed=seed, progressbar=False, compute_convergence_checks=False)
        timings.append(time.perf_counter() - t0)
        results.append(ess_stats(idata, names))
    (bulk, tail, div), (bulk2, _, _) = results
    return {"row": "naive baseline (centred, pm.sample)", "backend": "pymc", **SAME,
            "wall_with_compile_s": timings[0], "compile_s": float("nan"), "sampling_s": timings[1],
            "min_ess_bulk": bulk, "min_ess_tail": tail, "divergences": div,
            "ess_per_s_with_compile": bulk / timings[0], "ess_per_s_sampling": bulk2 / timings[1]}


def scaling_rows(name: str, spec: dict) -> list[dict]:
    rows = []
    for scale in (1, 4, 16):
        study = reference_study(scale, model=name)
        row = lcbayes_row(study, name, spec, "nutpie", {}, f"default, x{scale} observations")
        rows.append({**row, "observations": int(np.isfinite(study.values(spec["outcome"])).sum())})
        print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    cols = ["row", "backend", "chains", "draws", "wall_with_compile_s", "compile_s", "sampling_s",
            "min_ess_bulk", "min_ess_tail", "divergences", "ess_per_s_with_compile", "ess_per_s_sampling"]
    if any("observations" in r for r in rows):
        cols.insert(2, "observations")

    def fmt(v: object) -> str:
        return f"{v:.1f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="climate_growth", choices=sorted(MODELS))
    parser.add_argument("--scaling", action="store_true", help="time x1, x4, x16 observations instead")
    parser.add_argument("--default-only", action="store_true", help="only the row at the model's default settings")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated data and of the sampler")
    parser.add_argument("--data", type=Path, nargs=2, default=None, metavar=("CSV", "ROLES"),
                        help="a study table and its roles instead of the simulated reference study (so that two "
                             "revisions with different simulators fit the same data)")
    args = parser.parse_args()
    spec = {**SPECS[args.model], "sampler": {"seed": args.seed}}
    study = Study.from_path(*args.data) if args.data else reference_study(seed=args.seed, model=args.model)
    if args.scaling:
        rows = scaling_rows(args.model, spec)
    else:
        rows = []
        for backend in () if args.default_only else ("nutpie", "nutpie-jax", "numpyro", "pymc"):
            rows.append(lcbayes_row(study, args.model, spec, backend, SAME, "same settings"))
            print(rows[-1], flush=True)
        default = MODELS[args.model](study, spec).spec.sampler.backend
        rows.append(lcbayes_row(study, args.model, spec, default, {}, "lcbayes default settings"))
        if args.model == "climate_growth" and not args.default_only:
            rows.append(naive_row(study, "climate"))
    print(f"machine: {machine()}\n")
    print(markdown(rows))
    out = args.out or Path(__file__).with_name(
        f"results_{args.model}{'_scaling' if args.scaling else ''}{'_default' if args.default_only else ''}.json")
    out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
