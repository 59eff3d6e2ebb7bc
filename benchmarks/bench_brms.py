"""Model B against brms, side by side in one run: min-ESS per second including compilation.

Run from the repository root with R, brms and rstan installed (Debian: ``apt-get install r-cran-brms``):

    .venv/bin/python benchmarks/bench_brms.py [--runs 2] [--out benchmarks/results_brms_consensus_emergence.json]

Data: the reference design of ``bench_models.py`` (20 communities x 12 participants x 6 sessions, 1,440 rows, model
B's truth). brms fits the classic consensus emergence model (location-scale; Lang, Bliese & de Voogt 2018) that
lcbayes' model B specialises,

    bf(climate ~ s + (s | community) + (1 | participant) + (1 | organization),
       sigma ~ s + z_lgo_sd + z_lgo_sd:s + w_psych_safety + w_psych_safety:s)

with brms' default priors, 4 chains x (1000 warm-up + 1000 draws), rstan. lcbayes fits model B with the same terms
(composition ``lgo_sd``, scale trait ``psych_safety`` with its time interaction, community slopes, participant
intercepts, organization intercepts) at its default sampler settings, as a user would; its time covers building,
compiling and sampling (as brms' does), and the post-processing of ``fit`` (log likelihood, derived quantities) is
timed apart and reported as a second ratio. Runs are interleaved
(brms, lcbayes, lcbayes, brms, ...); the medians per tool are reported. Min-ESS: the smallest bulk ESS over the
population parameters (brms: ``b_``, ``sd_``, ``cor_``; lcbayes: ``model.population``). brms' compile time is its
wall time less the sampling time rstan reports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_models import ess_stats, machine, reference_study

from lcbayes.models import MODELS
from lcbayes.sampling import CompiledModel

SPEC = {"outcome": "climate", "options": {"composition": ["lgo_sd"], "scale_traits": ["psych_safety"]}}

R_SCRIPT = r"""
suppressPackageStartupMessages({library(brms); library(posterior); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
f <- bf(climate ~ s + (s | community) + (1 | participant) + (1 | organization),
        sigma ~ s + z_lgo_sd + z_lgo_sd:s + w_psych_safety + w_psych_safety:s)
t0 <- Sys.time()
fit <- brm(f, data = d, chains = 4, iter = 2000, warmup = 1000, cores = 2, seed = as.integer(args[3]),
           backend = "rstan", refresh = 0, silent = 2)
wall <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
sampling <- max(rowSums(rstan::get_elapsed_time(fit$fit))) * 4 / 2   # 4 chains on 2 cores
s <- summarise_draws(as_draws_df(fit), "ess_bulk")
s <- s[grepl("^(b_|sd_|cor_)", s$variable), ]
div <- sum(rstan::get_divergent_iterations(fit$fit))
write_json(list(wall = wall, sampling = sampling, min_ess_bulk = min(s$ess_bulk),
                min_variable = s$variable[which.min(s$ess_bulk)], divergences = div), args[2], auto_unbox = TRUE)
"""


def brms_row(csv: Path, tmp: Path, seed: int) -> dict:
    script, out = tmp / "fit.R", tmp / f"brms_{seed}.json"
    script.write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(script), str(csv), str(out), str(seed)], check=True)
    r = json.loads(out.read_text())
    return {"tool": "brms 2.18 / rstan", "wall_with_compile_s": r["wall"], "compile_s": r["wall"] - r["sampling"],
            "min_ess_bulk": r["min_ess_bulk"], "min_variable": r["min_variable"], "divergences": r["divergences"],
            "ess_per_s_with_compile": r["min_ess_bulk"] / r["wall"]}


def lcbayes_row(study, seed: int) -> dict:
    """Build, compile and sample (what brms' wall time covers), then the post-processing ``fit`` adds (log
    likelihood, derived quantities such as the consensus draws), timed apart; min-ESS/s both without and with it."""
    t0 = time.perf_counter()
    model = MODELS["consensus_emergence"](study, {**SPEC, "sampler": {"seed": seed}})
    s = model.spec.sampler
    raw = CompiledModel(model.model, s, model.stored_vars()).sample()
    t1 = time.perf_counter()
    idata = model.complete(raw, s)
    t2 = time.perf_counter()
    bulk, _, div = ess_stats(idata, model.population)
    return {"tool": f"lcbayes ({s.backend}, {s.chains} x ({s.tune} + {s.draws}))", "wall_with_compile_s": t1 - t0,
            "postprocessing_s": t2 - t1, "min_ess_bulk": bulk, "divergences": div,
            "ess_per_s_with_compile": bulk / (t1 - t0), "ess_per_s_with_postprocessing": bulk / (t2 - t0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_brms_consensus_emergence.json"))
    args = parser.parse_args()
    study = reference_study(model="consensus_emergence")
    model = MODELS["consensus_emergence"](study, SPEC)
    table = study.table.assign(
        s=model.panel.time[study.idx["participant"], study.idx["session"]],
        z_lgo_sd=model.z[study.idx["community"], 0],
        w_psych_safety=model.w[study.idx["participant"], 0])
    rows: dict[str, list[dict]] = {"brms": [], "lcbayes": []}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        table.to_csv(csv, index=False)
        for run in range(args.runs):
            order = ["brms", "lcbayes"] if run % 2 == 0 else ["lcbayes", "brms"]
            for tool in order:
                row = brms_row(csv, Path(tmp), run + 1) if tool == "brms" else lcbayes_row(study, run + 1)
                rows[tool].append(row)
                print(tool, run, {k: v for k, v in row.items() if k != "tool"}, flush=True)
    medians = {tool: {k: statistics.median(r[k] for r in rs) for k in ("wall_with_compile_s", "min_ess_bulk",
                                                                          "ess_per_s_with_compile")}
               for tool, rs in rows.items()}
    ratio = medians["lcbayes"]["ess_per_s_with_compile"] / medians["brms"]["ess_per_s_with_compile"]
    print(f"min-ESS/s with compilation: brms {medians['brms']['ess_per_s_with_compile']:.2f}, lcbayes "
          f"{medians['lcbayes']['ess_per_s_with_compile']:.2f}: {ratio:.1f}x")
    args.out.write_text(json.dumps({"machine": machine(), "runs": rows, "medians": medians, "ratio": ratio},
                                   indent=1))


if __name__ == "__main__":
    main()
