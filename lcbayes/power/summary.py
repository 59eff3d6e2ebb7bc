"""Summaries of power results, the power curve, the smallest design reaching a target power.

Every replicate counts: a fit that fails its diagnostics stays in the power estimate and
the share of such fits is reported next to it (``failed_diagnostics``), never dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

ID = ["cell", "scenario", "target"]


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for a proportion."""
    a = 1 - level
    lo = stats.beta.ppf(a / 2, successes, n - successes + 1) if successes > 0 else 0.0
    hi = stats.beta.ppf(1 - a / 2, successes + 1, n - successes) if successes < n else 1.0
    return float(lo), float(hi)


def design_columns(results: pd.DataFrame) -> list[str]:
    """The design fields that vary or were set in the plan (columns between ``cell`` and ``scenario``)."""
    cols = list(results.columns)
    return cols[cols.index("cell") + 1: cols.index("scenario")]


def summarize(results: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per cell x target x rule: replicates, power and its Clopper-Pearson interval,
    bias and RMSE of the posterior mean, interval coverage and mean width, share of fits
    failing diagnostics, recompiled fits and mean fit time."""
    rules = [c for c in results.columns if c.startswith("rule_")]
    keys = ID[:1] + design_columns(results) + ID[1:]
    rows = []
    for key, group in results.groupby(keys, sort=False):
        err = group["mean"] - group["truth"]
        base = dict(zip(keys, key, strict=True)) | {
            "replicates": len(group), "truth": group["truth"].iloc[0], "bias": err.mean(),
            "rmse": float(np.sqrt((err**2).mean())), "coverage": group["covered"].mean(),
            "mean_width": group["width"].mean(), "failed_diagnostics": 1 - group["diagnostics_passed"].mean(),
            "recompiled": int(group["recompiled"].sum()), "mean_fit_seconds": group["fit_seconds"].mean()}
        for rule in rules:
            decisions = group[rule].dropna().astype(bool)
            k, n = int(decisions.sum()), len(decisions)
            if n == 0:   # a rule of another target
                continue
            lo, hi = clopper_pearson(k, n, level)
            rows.append({**base, "rule": rule.removeprefix("rule_"), "power": k / n, "power_lower": lo,
                         "power_upper": hi})
    cols = keys + ["rule", "replicates", "power", "power_lower", "power_upper", "truth", "bias", "rmse",
                   "coverage", "mean_width", "failed_diagnostics", "recompiled", "mean_fit_seconds"]
    return pd.DataFrame(rows, columns=cols).sort_values(keys[1:] + ["rule"], kind="stable").reset_index(drop=True)


def smallest_design(summary: pd.DataFrame, target: str, rule: str, power: float = 0.8,
                    scenario: str | None = None) -> pd.Series | None:
    """The design with the fewest planned observations (communities x participants x
    sessions) whose estimated power for ``target`` under ``rule`` reaches ``power``; ties go
    to fewer sessions, then fewer communities. None if no design reaches it."""
    rows = summary[(summary["target"] == target) & (summary["rule"] == rule) & (summary["power"] >= power)]
    if scenario is not None:
        rows = rows[rows["scenario"] == scenario]
    if rows.empty:
        return None
    size = rows[[c for c in ("communities", "participants", "sessions") if c in rows]].astype(float).prod(axis=1)
    order = rows.assign(_size=size).sort_values(
        ["_size"] + [c for c in ("sessions", "communities") if c in rows], kind="stable")
    return order.iloc[0].drop("_size")


def plot_power_curve(summary: pd.DataFrame, target: str, rule: str, x: str = "communities",
                     target_power: float | None = 0.8, ax=None):
    """Power (with exact 95% intervals) against design axis ``x``; one line per combination
    of the other design axes and scenario."""
    import matplotlib.pyplot as plt

    rows = summary[(summary["target"] == target) & (summary["rule"] == rule)]
    design = [c for c in design_columns(summary) if c != x]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for key, line in rows.groupby(design + ["scenario"], sort=False):
        line = line.sort_values(x)
        label = ", ".join(f"{k}={v}" for k, v in zip(design + ["scenario"], key, strict=True))
        err = [line["power"] - line["power_lower"], line["power_upper"] - line["power"]]
        ax.errorbar(line[x], line["power"], yerr=err, marker="o", capsize=3, label=label)
    if target_power is not None:
        ax.axhline(target_power, color="gray", linestyle="--", linewidth=1)
    ax.set(ylim=(-0.02, 1.02), xlabel=x, ylabel="power", title=f"{target}: {rule}")
    ax.legend(fontsize="small")
    return ax
