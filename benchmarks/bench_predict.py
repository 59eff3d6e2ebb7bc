"""Cost of the analyst calls on a fitted model: prediction in sample, on the fitted table through the path of new
data, for two new communities, a conditional and a marginal effect (seconds, one call each after one warm-up call of
``predict()``).

    .venv/bin/python benchmarks/bench_predict.py

Fits models A and B from their spec files on the bundled example study (4 chains x (1000 + 1000)); the new
communities are copies of C01 and C02 under new community and participant ids. Writes results_predict.json.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pandas as pd

from lcbayes import effects
from lcbayes.data.io import read_toml
from lcbayes.data.study import Study
from lcbayes.models import create

ROOT = Path(__file__).resolve().parents[1]


def seconds(call) -> float:
    start = time.perf_counter()
    call()
    return round(time.perf_counter() - start, 1)


def main() -> None:
    warnings.simplefilter("ignore")
    study = Study.from_path(ROOT / "data" / "example_study.csv", ROOT / "data" / "example_roles.toml")
    raw = pd.read_csv(ROOT / "data" / "example_study.csv")
    new = raw[raw["community"].isin(["C01", "C02"])].assign(community=lambda t: t["community"] + "n",
                                                             participant=lambda t: t["participant"] + "n")
    results = {}
    for name in ("climate_growth", "consensus_emergence"):
        model = create(read_toml(ROOT / "models" / f"{name}.toml", "spec"), study)
        model.fit(chains=4, draws=1000, tune=1000, seed=1, progress=False)
        model.predict(seed=1)   # warm-up: the per-cell deterministics compile once
        results[name] = {
            "predict in sample": seconds(lambda m=model: m.predict(seed=1)),
            "predict the fitted table as new data": seconds(lambda m=model: m.predict(raw, seed=1)),
            "predict 2 new communities": seconds(lambda m=model: m.predict(new, seed=1)),
            "conditional over session by lgo": seconds(lambda m=model: effects.conditional(m, over="session",
                                                                                         by="lgo")),
            "marginal over lgo, 5 points": seconds(lambda m=model: effects.marginal(m, over="lgo", points=5)),
        }
        print(name, results[name], flush=True)
    (Path(__file__).parent / "results_predict.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
