"""Simulation-based calibration (Talts et al. 2018; Modrak et al. 2023) on the power runner.

Each replicate draws the parameters from the model's prior and the outcome from the model at them
(``BayesModel.prior_study``, in the layout of a simulated study of the plan's design), refits the compiled model, and
records the rank of each true population parameter and derived quantity (``calibration_targets``) among ``L`` thinned
posterior draws. If the model and sampler are calibrated, ranks are uniform on 0..L; ``sbc_check`` compares each
parameter's rank ECDF with simultaneous 95% bands
(Saeilynoja, Buerkner & Vehtari 2022, as computed by ArviZ)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lcbayes.compat import ecdf_confidence_band
from lcbayes.diagnostics import diagnose
from lcbayes.power.plan import Cell, Plan
from lcbayes.power.runner import FitterCache, replicate_seeds, worker_cache

THINNED = 99   # L: posterior draws each truth is ranked among


def scalar_elements(ds, names: list[str]) -> dict[str, np.ndarray]:
    """Population parameters split into scalar elements ``name`` or ``name[label]``; values
    keep the leading (chain, draw) dims when present."""
    out = {}
    for v in (ds[name] for name in names if name in ds):
        extra = [d for d in v.dims if d not in ("chain", "draw")]
        if not extra:
            out[v.name] = v.values
            continue
        stacked = v.stack(element=extra)
        for i, label in enumerate(stacked["element"].values):
            label = label if isinstance(label, tuple) else (label,)
            out[f"{v.name}[{','.join(map(str, label))}]"] = stacked.isel(element=i).values
    return out


def sbc_replicate(plan: Plan, cell: Cell, replicate: int, cores: int | None = None,
                  cache: FitterCache | None = None) -> pd.DataFrame:
    """One SBC replicate: prior draw, data, refit, ranks (runs in a worker).
    ``cores``: chains sampled at once; ``cache``: compiled cells (default: the worker's)."""
    fit = worker_cache(cache).fitter(plan, cell, cores)
    data_seed, sampler_seed = replicate_seeds(plan.seed, cell.key, replicate)
    study, truth = fit.model(fit.simulate(replicate)).prior_study(data_seed)
    model, idata, recompiled = fit.fit(study, sampler_seed)
    post = idata["posterior"].to_dataset()
    verdict = diagnose(idata, [v for v in model.population if v in post], min_ess=plan.min_ess)
    draws = scalar_elements(model.posterior_with(idata, model.calibration_targets), model.calibration_targets)
    rows: list[dict[str, Any]] = []
    for name, value in scalar_elements(truth, model.calibration_targets).items():
        flat = draws[name].reshape(-1)
        if np.ptp(flat) == 0:            # a constant (e.g. f(1) = 0): nothing to calibrate
            continue
        thinned = flat[np.linspace(0, len(flat) - 1, THINNED).astype(int)]
        rows.append({"cell": cell.key, **cell.design, "scenario": cell.scenario, "replicate": replicate,
                     "seed": sampler_seed, "target": name, "truth": float(value), "rank": int((thinned < value).sum()),
                     "n_draws": THINNED, "divergences": verdict.divergences,
                     "diagnostics_passed": verdict.passed, "recompiled": recompiled})
    return pd.DataFrame(rows)


def sbc_check(results: pd.DataFrame, prob: float = 0.95) -> pd.DataFrame:
    """Per parameter: replicates, the largest ECDF deviation of the ranks from uniform, and
    whether the rank ECDF stays inside the simultaneous ``prob`` band everywhere."""
    rows = []
    for name, group in results.groupby("target", sort=True):
        ecdf, cdf, lower, upper = _rank_ecdf(group, prob)
        rows.append({"parameter": name, "replicates": len(group), "max_deviation": float(np.abs(ecdf - cdf).max()),
                     "inside_band": bool(((ecdf >= lower) & (ecdf <= upper)).all()),
                     "failed_diagnostics": 1 - group["diagnostics_passed"].mean()})
    return pd.DataFrame(rows)


def _rank_ecdf(group: pd.DataFrame, prob: float):
    """Rank ECDF at 0..L-1, the uniform CDF there and the simultaneous band."""
    L = int(group["n_draws"].iloc[0])
    k = np.arange(L)
    ranks = group["rank"].to_numpy()
    ecdf = (ranks[None, :] <= k[:, None]).mean(axis=1)
    cdf = (k + 1) / (L + 1)
    return (ecdf, cdf, *ecdf_confidence_band(len(ranks), cdf, prob=prob))


def plot_sbc(results: pd.DataFrame, prob: float = 0.95, columns: int = 4):
    """ECDF-difference plot per parameter: rank ECDF minus uniform CDF with the simultaneous band."""
    import matplotlib.pyplot as plt

    names = sorted(results["target"].unique())
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.ravel(), names, strict=False):  # the grid may have spare axes
        ecdf, cdf, lower, upper = _rank_ecdf(results[results["target"] == name], prob)
        ax.fill_between(cdf, lower - cdf, upper - cdf, color="tab:blue", alpha=0.2, step="post", linewidth=0)
        ax.step(cdf, ecdf - cdf, where="post", color="tab:blue")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title(name, fontsize="small")
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"SBC: rank ECDF - uniform, {int(prob * 100)}% simultaneous bands")
    fig.tight_layout()
    return fig
