"""Model A's marginal likelihood as a ``pm.Potential`` (lcbayes) or as an observed
``pm.CustomDist`` (what would let PyMC draw predictive samples and pointwise log
likelihoods from the graph): same log density, measured side by side in one run.

Run from the repository root (a few minutes on 2 cores):

    .venv/bin/python benchmarks/bench_likelihood_form.py [--runs 2]

Both forms are fitted at lcbayes' default settings (nutpie, 4 chains x (1000 + 2000)) on the
reference design, alternating which goes first; printed and written to
``benchmarks/results_likelihood_form.json``: wall time with compilation, sampling time and
min bulk ESS per second over the population parameters.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import arviz as az
import pymc as pm
import pytensor.tensor as pt
from bench_models import machine, reference_study

from lcbayes.models import ClimateGrowth
from lcbayes.models.climate import Participants
from lcbayes.models.marginal import marginal_loglik
from lcbayes.sampling import CompiledModel


@dataclass(frozen=True)
class ObservedParticipants(Participants):
    """The same marginal likelihood, written as an observed CustomDist over sessions."""

    def likelihood(self, priors: Any, y: Any, mask: Any, s: Any, mu: Any, log_sigma: Any) -> None:
        tau_r, rows = self.effects.scale(priors)
        rho_r = rows[1][0] if rows else pt.constant(0.0)
        slopes = self.slopes

        def logp(value: Any, mu: Any, log_sigma: Any, s: Any, mask: Any, tau: Any, rho: Any) -> Any:
            return marginal_loglik(value - mu, mask, log_sigma, s, tau[..., 0], tau[..., 1] if slopes else None, rho,
                                   xp=pt)

        log_sigma_cells = pt.broadcast_to(log_sigma, mu.shape)
        pm.CustomDist("y_observed", mu, log_sigma_cells, s, mask, tau_r, rho_r, logp=logp,
                      signature="(t),(t),(t),(t),(e),()->(t)", observed=y, dims=("participant", "session"))
        pm.Deterministic("mu", mu, dims=("participant", "session"))
        pm.Deterministic("log_sigma", log_sigma)


def fit(form: str) -> dict[str, float]:
    model = ClimateGrowth(reference_study(), {"outcome": "climate"})
    if form == "CustomDist":
        model.participants = ObservedParticipants(model.participants.slopes, model.participants.lkj_eta)
    t0 = time.perf_counter()
    compiled = CompiledModel(model.model, model.spec.sampler, model.stored_vars())
    idata = compiled.sample()
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    compiled.sample(seed=model.spec.sampler.seed + 1)
    sampling = time.perf_counter() - t1
    ess = min(float(az.ess(idata, var_names=[v])[v].min()) for v in model.population)
    return {"wall_with_compile_s": wall, "sampling_s": sampling, "min_ess_bulk": ess,
            "ess_per_s_with_compile": ess / wall, "ess_per_s_sampling": ess / sampling}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"Potential": [], "CustomDist": []}
    for run in range(args.runs):
        for form in ("Potential", "CustomDist") if run % 2 == 0 else ("CustomDist", "Potential"):
            rows[form].append(fit(form))
            print(form, run, {k: round(v, 1) for k, v in rows[form][-1].items()}, flush=True)
    medians = {form: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for form, rs in rows.items()}
    print(json.dumps(medians, indent=1))
    out = Path(__file__).with_name("results_likelihood_form.json")
    out.write_text(json.dumps({"machine": machine(), "runs": rows, "medians": medians}, indent=1))


if __name__ == "__main__":
    main()
