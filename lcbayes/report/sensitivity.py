"""Prior sensitivity by power-scaling (Kallioinen, Paananen, Bürkner & Vehtari 2023).

The posterior is re-weighted (Pareto-smoothed importance sampling) as if the prior, or the
likelihood, were raised to a power near 1; the cumulative Jensen–Shannon distance between
the scaled and the actual posterior, per unit of log-power, is the sensitivity (ArviZ
``psens``). As in the R package priorsense, the scaled prior is the joint density of the
model's top-level priors (the ones listed in the spec's ``[priors]``; hierarchical
effects count as likelihood), and a sensitivity of at least 0.05 is flagged:

- prior and likelihood sensitive: prior-data conflict;
- prior sensitive, likelihood not: the prior dominates a weak likelihood.

No refits are needed.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from lcbayes.models.base import BayesModel

THRESHOLD = 0.05


def log_prior(model: BayesModel) -> xr.Dataset:
    """Log density of each top-level prior at every posterior draw, (chain, draw) per
    parameter. LKJ priors of a single correlation r are Beta(eta, eta) on (r + 1) / 2;
    correlations taken from an LKJ matrix of more than 2 variables have no such scalar
    density and are left out (their scale parameters stay in)."""
    post = model.idata.posterior
    out = {}
    for name, prior in model.priors.items():
        if name not in post:
            continue
        value = post[name].values
        if prior.dist == "LKJ":
            if value.ndim > 2:
                continue
            eta = float(prior.params.get("eta", 1.0))
            dist, value = pm.Beta.dist(eta, eta), (value + 1) / 2
        else:
            dist = prior.distribution()
        lp = pm.logp(dist, value).eval()
        out[name] = (("chain", "draw"), np.broadcast_to(lp, value.shape).reshape(value.shape[:2] + (-1,)).sum(-1))
    return xr.Dataset(out, coords={"chain": post["chain"], "draw": post["draw"]})


def prior_sensitivity(model: BayesModel) -> pd.DataFrame:
    """Power-scaling sensitivity of each population parameter (one row per element) to the
    prior and to the likelihood, with priorsense's diagnosis."""
    idata = model.idata
    lp = log_prior(model)
    scaled = az.InferenceData(posterior=idata.posterior[model.population], log_prior=lp,
                              log_likelihood=model.log_likelihood_terms())
    rows = {}
    for component in ("prior", "likelihood"):
        sens = az.psens(scaled, component=component, var_names=model.population)
        rows[component] = _flatten(sens)
    table = pd.DataFrame(rows)
    table["diagnosis"] = [
        "prior-data conflict" if p >= THRESHOLD and lik >= THRESHOLD
        else "strong prior / weak likelihood" if p >= THRESHOLD
        else "" for p, lik in zip(table["prior"], table["likelihood"])]
    table.attrs["priors_scaled"] = list(lp.data_vars)
    return table


def _flatten(ds: xr.Dataset) -> pd.Series:
    """One value per parameter element, labelled like ``az.summary``'s index."""
    values = {}
    for name, da in ds.data_vars.items():
        if da.ndim == 0:
            values[name] = float(da)
            continue
        stacked = da.stack(element=da.dims)
        for index, v in zip(stacked["element"].values, stacked.values):
            labels = index if isinstance(index, tuple) else (index,)
            values[f"{name}[{', '.join(map(str, labels))}]"] = float(v)
    return pd.Series(values)
