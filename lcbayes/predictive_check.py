"""The posterior predictive check for scale scores: statistics of the observed outcome against the same statistics of
data replicated from the posterior, each with its posterior predictive p-value.

The statistics are those that matter for Likert scale means in communities over sessions: the mean and SD, the mean
SD within community x session cells, each session's mean and mean within-community SD and, with a declared response
range, the shares of scores at its lowest and highest score (a floor or ceiling the model does not reproduce). The
p-value is the share of replicates above the observed value, ties counted half (mid-p), so that a share of 0 at a
bound that no replicate reaches either is not extreme; p outside :data:`PPC_TAILS` flags a misfit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

PPC_TAILS = (0.025, 0.975)   # posterior predictive p-values outside these bounds flag a misfit
PPC_DRAWS = 500              # posterior draws the statistics use (thinned evenly)


def predictive_statistics(model: Any, idata: xr.DataTree, draws: int = PPC_DRAWS) -> pd.DataFrame:
    """One row per statistic (see the module docstring): ``observed``, ``replicated_mean`` and ``p_value``, from the
    ``observed_data`` and ``posterior_predictive`` groups of ``idata`` (e.g. ``model.sample_posterior_predictive()``)
    for ``model``'s outcome, over at most ``draws`` replicates (thinned evenly). ``misfit`` is True where p lies
    outside :data:`PPC_TAILS`."""
    outcome = model.spec.outcome
    y = idata["observed_data"].to_dataset()[outcome]
    rep = idata["posterior_predictive"].to_dataset()[outcome]
    rep = rep.isel(draw=slice(None, None, max(1, rep.sizes["chain"] * rep.sizes["draw"] // draws)))
    obs = y["obs"].values
    community, session = model.study.idx["community"][obs], model.study.idx["session"][obs]
    cells = pd.Series(obs).groupby([community, session]).indices

    def within_sd(at: int | None) -> Callable[[np.ndarray], np.ndarray]:
        """The mean SD within community x session cells (of session ``at``; None: all)."""
        chosen = [i for (_, t), i in cells.items() if len(i) > 1 and at in (None, t)]
        return lambda v: np.mean([v[..., i].std(-1, ddof=1) for i in chosen], axis=0)

    def mean_of(rows: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return lambda v: v[..., rows].mean(-1)

    stats: dict[str, Callable[[np.ndarray], Any]] = {
        "mean": lambda v: v.mean(-1), "sd": lambda v: v.std(-1, ddof=1),
        "mean community x session SD": within_sd(None)}
    for t, label in enumerate(model.coords["session"]):
        if (session == t).any():
            stats[f"mean, session {label}"] = mean_of(session == t)
            stats[f"mean community SD, session {label}"] = within_sd(t)
    bounds = model.study.response_range(outcome)
    if bounds.declared:
        stats["share at the lowest score"] = lambda v: (v <= bounds.low + 1e-9).mean(-1)     # replicates: at or
        stats["share at the highest score"] = lambda v: (v >= bounds.high - 1e-9).mean(-1)   # beyond the bound
    rows = {}
    for name, stat in stats.items():
        observed, replicated = float(stat(y.values)), np.asarray(stat(rep.values)).ravel()
        rows[name] = {"observed": observed, "replicated_mean": float(replicated.mean()),
                      "p_value": float((replicated > observed).mean() + 0.5 * (replicated == observed).mean())}
    table = pd.DataFrame(rows).T
    table["misfit"] = ~table["p_value"].between(*PPC_TAILS)
    return table
