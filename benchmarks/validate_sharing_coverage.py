"""Calibration of model C on Likert data with trends, shocks and item error (the slow test's studies), and the same
data fitted without trends.

    .venv/bin/python benchmarks/validate_sharing_coverage.py --seeds 300 340 [--summary]
    .venv/bin/python benchmarks/validate_sharing_coverage.py --decline --seeds 400 410 [--no-trends] [--summary]

Each seed is one simulated study of ``tests/slow/test_knowledge_sharing_coverage.py``, fitted as that test fits it:
by default the calibration studies, with ``--decline`` the trend contrast's studies (support and sharing declining
steeply), fitted with session effects or, with ``--no-trends``, without. Rows are appended after each study to
``benchmarks/results_sharing_coverage[_decline][_no_trends].json`` (written to a
temporary file and renamed), so an interrupted run loses at most the study in progress and a rerun skips the seeds
already stored. All studies take the default priors of the study of the first seed of ``--seeds`` (as the slow test
does), so keep FIRST when resuming. The summary prints per checked quantity the 90% coverage with a 95% Wilson
interval, the mean estimate against the truth and its relative bias, and the share of fits with divergences.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slow"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from test_knowledge_sharing_coverage import DECLINE, TRUTH, fit_studies, summarise  # noqa: E402
from validate_learning_false_positives import append, store, wilson  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=(300, 340), metavar=("FIRST", "STOP"))
    parser.add_argument("--decline", action="store_true", help="the trend contrast's studies (steep declines)")
    parser.add_argument("--no-trends", action="store_true", help="fit the model without session effects")
    parser.add_argument("--summary", action="store_true", help="only print the summary of the stored rows")
    args = parser.parse_args()
    path = ROOT / "benchmarks" / (f"results_sharing_coverage{'_decline' if args.decline else ''}"
                                  f"{'_no_trends' if args.no_trends else ''}.json")
    if not args.summary:
        done = {row["seed"] for row in store(path)["rows"]}
        seeds = [s for s in range(*args.seeds) if s not in done]
        if seeds:
            fit_studies(seeds, trends=not args.no_trends, prior_seed=args.seeds[0],
                        on_study=lambda seed, rows: append(path, rows), truth=DECLINE if args.decline else TRUTH)
    rows = store(path)["rows"]
    if not rows:
        sys.exit(f"no studies stored in {path.name} yet")
    table = summarise(rows)
    covered = (table["coverage"] * table["studies"]).round().astype(int)
    intervals = (wilson(k, n) for k, n in zip(covered, table["studies"], strict=True))
    table["wilson_95"] = [f"{lo:.2f}-{hi:.2f}" for lo, hi in intervals]
    with pd.option_context("display.width", 200):
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
