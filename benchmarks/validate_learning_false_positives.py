"""False positives and coverage of model B's learning effects over many studies (the slow test's studies).

    .venv/bin/python benchmarks/validate_learning_false_positives.py --seeds 500 700 [--cut] [--summary]
    .venv/bin/python benchmarks/validate_learning_false_positives.py --effects --seeds 1000 1100 [--summary]

Each seed is one simulated study of ``tests/slow/test_consensus_emergence_learning.py``, fitted as that test fits it
(joint, or with ``--cut`` the two-stage fit): by default a study with no learning effect (a community residual in
learning), with ``--effects`` one with all three effects non-zero. Rows are appended after each study to
``benchmarks/results_learning_false_positives[_cut].json`` (null studies) or
``benchmarks/results_learning_coverage[_cut].json`` (``--effects``), so an interrupted run loses at most the study in
progress and a rerun skips the seeds already stored. The summary prints, for the null studies and per learning effect,
the share of 90% intervals that exclude 0 with its binomial SD and a 95% Wilson interval, and the SD of the
standardised posterior means (1 for intervals of the right width); for ``--effects``, the coverage per quantity. All
studies take the default priors of the study of the first seed of ``--seeds`` (as the slow test does), so keep FIRST
when resuming.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slow"))

from test_consensus_emergence_learning import TERMS, TRUTHS, fit_studies  # noqa: E402


def store(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {"rows": []}


def append(path: Path, rows: list[dict]) -> None:
    """Add one study's rows, written to a temporary file and renamed (a kill leaves the old file whole)."""
    data = store(path)
    data["rows"] += rows
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p, d = k / n, 1 + z**2 / n
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / d
    return (p + z**2 / (2 * n)) / d - half, (p + z**2 / (2 * n)) / d + half


def summary(path: Path) -> pd.DataFrame:
    table = pd.DataFrame(store(path)["rows"])
    out = []
    for t in TERMS:
        sub = table[table["parameter"] == f"eta_average[{t}]"]
        k, n = int(sub["excludes_0"].sum()), len(sub)
        lo, hi = wilson(k, n)
        out.append({"effect": t, "studies": n, "excluding_0": k, "share": k / n,
                    "binomial_sd": np.sqrt(0.1 * 0.9 / n), "wilson_95": f"{lo:.3f}-{hi:.3f}",
                    "sd_of_mean_over_sd": float((sub["mean"] / sub["sd"]).std()),
                    "fits_with_divergences": float((sub["divergences"] > 0).mean())})
    return pd.DataFrame(out).set_index("effect")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=(500, 700), metavar=("FIRST", "STOP"))
    parser.add_argument("--cut", action="store_true", help="the two-stage (cut) fit instead of the joint fit")
    parser.add_argument("--effects", action="store_true", help="the slow test's studies with learning effects "
                        "(coverage) instead of the null studies")
    parser.add_argument("--summary", action="store_true", help="only print the summary of the stored rows")
    args = parser.parse_args()
    case = "learning_effects" if args.effects else "no_learning_effects"
    path = ROOT / "benchmarks" / (f"results_learning_{'coverage' if args.effects else 'false_positives'}"
                                  f"{'_cut' if args.cut else ''}.json")
    if not args.summary:
        done = {row["seed"] for row in store(path)["rows"]}
        truth, _ = TRUTHS[case]
        seeds = [s for s in range(*args.seeds) if s not in done]
        fit_studies(truth, seeds, cut=args.cut, prior_seed=args.seeds[0],
                    on_study=lambda seed, rows: append(path, rows))
    if args.effects:
        table = pd.DataFrame(store(path)["rows"])
        print(table.groupby("parameter")["covered"].agg(["mean", "count"]).to_string(float_format=lambda v: f"{v:.3f}"))
    else:
        print(summary(path).to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
