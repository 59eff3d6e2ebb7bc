"""Model B on published data against the classical consensus emergence model fitted by maximum likelihood.

Run from the repository root with R and the ``multilevel`` and ``nlme`` packages installed (Debian:
``apt-get install r-cran-multilevel``):

    .venv/bin/python benchmarks/validate_published_cem.py [--out benchmarks/results_published_cem.json]

Data: ``univbct`` of the R package ``multilevel`` (Bliese & Ployhart 2002): job satisfaction (``JSAT``, a single
score) of 495 soldiers in companies (group = battalion x company; the 6 companies with a single soldier left out, as
lcbayes requires two members per community), measured three times. The classical fit is
nlme's ``lme(JSAT ~ TIME, random = list(GRP = ~ TIME, SUBNUM = ~ 1), weights = varExp(form = ~ TIME))``, whose
varExp coefficient is alpha1, the change of the log residual SD per time unit (Lang, Bliese & de Voogt 2018). lcbayes
fits model B with the same terms (community slopes, participant intercepts, no organizations, no composition; a
single score, so no measurement layer) and default priors and sampler settings. Reported: the ML estimate, the
posterior mean and SD of alpha1, and their difference in posterior SDs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from lcbayes.data.study import Study
from lcbayes.models import ConsensusEmergence

R_SCRIPT = r"""
suppressPackageStartupMessages({library(multilevel); library(nlme); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
data(univbct)
d <- univbct[!is.na(univbct$JSAT), c("BTN", "COMPANY", "SUBNUM", "TIME", "JSAT")]
d$GRP <- paste(d$BTN, d$COMPANY, sep = "_")
d <- d[d$GRP %in% names(which(tapply(d$SUBNUM, d$GRP, function(x) length(unique(x))) >= 2)), ]   # lcbayes needs 2+
d$GRP <- factor(d$GRP)
write.csv(d, args[1], row.names = FALSE)
fit <- lme(JSAT ~ TIME, random = list(GRP = ~ TIME, SUBNUM = ~ 1), data = d, weights = varExp(form = ~ TIME),
           method = "ML", control = lmeControl(opt = "optim"))
alpha1 <- as.numeric(coef(fit$modelStruct$varStruct, unconstrained = FALSE))
write_json(list(alpha1 = alpha1, rows = nrow(d), groups = nlevels(d$GRP)), args[2], auto_unbox = TRUE)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results_published_cem.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script, csv, out = Path(tmp) / "cem.R", Path(tmp) / "univbct.csv", Path(tmp) / "nlme.json"
        script.write_text(R_SCRIPT)
        subprocess.run(["Rscript", str(script), str(csv), str(out)], check=True)
        ml = json.loads(out.read_text())
        table = pd.read_csv(csv)
    table["session"] = table["TIME"] + 1
    roles = {"community": "GRP", "participant": "SUBNUM", "session": "session",
             "variables": {"JSAT": {"column": "JSAT", "level": "session"}}}
    model = ConsensusEmergence(Study.from_frame(table, roles), {"outcome": "JSAT", "options": {"organization": False}})
    model.fit()
    draws = model.idata.posterior["alpha_time"].values.ravel()
    result = {"data": "multilevel::univbct (Bliese & Ployhart 2002), JSAT", "rows": ml["rows"], "groups": ml["groups"],
              "alpha1_nlme_ml": ml["alpha1"], "alpha1_posterior_mean": float(draws.mean()),
              "alpha1_posterior_sd": float(draws.std()), "converged": model.diagnostics().passed}
    result["difference_in_posterior_sd"] = (result["alpha1_posterior_mean"] - ml["alpha1"]) / result[
        "alpha1_posterior_sd"]
    print(json.dumps(result, indent=1))
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
