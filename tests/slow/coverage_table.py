"""Shared by the slow coverage tests: tabulate and print interval coverage over studies."""

from __future__ import annotations

import pandas as pd


def coverage_report(rows: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """Rows (seed, parameter, covered, mean, truth, divergences) -> (all rows, per parameter
    coverage / mean estimate / truth, share of fits with divergences); prints the summary."""
    table = pd.DataFrame(rows)
    per_param = table.groupby("parameter").agg(coverage=("covered", "mean"), mean=("mean", "mean"),
                                               truth=("truth", "first"))
    with_divergences = float((table.groupby("seed")["divergences"].first() > 0).mean())
    print("\n" + per_param.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"overall coverage {table['covered'].mean():.3f} over {len(table)} intervals; "
          f"share of fits with divergences: {with_divergences:.2f}")
    return table, per_param, with_divergences
