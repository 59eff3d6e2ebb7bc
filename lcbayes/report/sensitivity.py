"""Prior sensitivity by power-scaling (Kallioinen, Paananen, Bürkner & Vehtari 2023).

The posterior is re-weighted (Pareto-smoothed importance sampling) as if the prior, or the likelihood, were raised to a
power near 1; the cumulative Jensen–Shannon distance between the scaled and the actual posterior, per unit of log-power,
is the sensitivity (ArviZ ``psense``). As in the R package priorsense, the scaled prior is the joint density of the
model's top-level priors (the ones listed in the spec's ``[priors]``, evaluated by PyMC; hierarchical effects count as
likelihood), and a sensitivity of at least 0.05 is flagged:

- prior and likelihood sensitive: prior-data conflict;
- prior sensitive, likelihood not: the prior dominates a weak likelihood.

No refits are needed.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import vectorize_graph

from lcbayes.diagnostics import elements
from lcbayes.models.base import BayesModel

THRESHOLD = 0.05


def prior_variables(model: BayesModel) -> list[str]:
    """The free variables that carry the model's top-level priors (``model.priors``): the
    parameter itself, the canonical partial correlations ``cpc_<group>`` that carry the LKJ
    prior of ``corr_<group>``, or the packed Cholesky factor ``chol_<group>`` that carries the
    priors of ``tau_<group>`` and ``corr_<group>`` together
    (:class:`~lcbayes.models.components.GroupEffects`)."""
    def carried(name: str) -> str | None:
        prefix, _, group = name.partition("_")
        return {"cpc": f"corr_{group}", "chol": f"tau_{group}"}.get(prefix)

    names = set(model.priors)
    return [rv.name for rv in model.model.free_RVs if rv.name in names or carried(rv.name) in names]


def log_prior(model: BayesModel) -> xr.Dataset:
    """Log density of each top-level prior at every posterior draw, (chain, draw) per
    variable of :func:`prior_variables`, from PyMC's own densities (``pm.logp`` of each
    variable; LKJ correlation matrices of any size included).

    ``pm.compute_log_prior`` would do the same but needs every free variable in the posterior, and model C does not keep
    its latent grid; top-level priors have constant parameters, so their densities need no other variable."""
    post = model.fitted()["posterior"].to_dataset()
    names = prior_variables(model)
    values = [model.model[name].type() for name in names]
    logps = [pm.logp(model.model[name], v, warn_rvs=False).sum() for name, v in zip(names, values, strict=True)]
    batched = [pt.tensor(dtype=v.dtype, shape=(None, *v.type.shape)) for v in values]   # one row per draw
    fn = pytensor.function(batched, vectorize_graph(logps, replace=dict(zip(values, batched, strict=True))))
    shape = (post.sizes["chain"], post.sizes["draw"])
    draws = [post[name].values.reshape(-1, *post[name].shape[2:]) for name in names]
    densities = zip(names, fn(*draws), strict=True)
    return xr.Dataset({name: (("chain", "draw"), np.asarray(lp).reshape(shape)) for name, lp in densities},
                      coords={"chain": post["chain"], "draw": post["draw"]})


def prior_sensitivity(model: BayesModel) -> pd.DataFrame:
    """Power-scaling sensitivity of each population parameter (one row per element) to the
    prior and to the likelihood, with priorsense's diagnosis."""
    idata = model.fitted()
    lp = log_prior(model)
    scaled = xr.DataTree.from_dict({"posterior": idata["posterior"].to_dataset()[model.population], "log_prior": lp,
                                    "log_likelihood": model.log_likelihood_terms()})
    rows = {}
    for component in ("prior", "likelihood"):
        sens = az.psense(scaled, group=component, var_names=model.population)
        rows[component] = element_series(sens)
    table = pd.DataFrame(rows)
    table["diagnosis"] = ["prior-data conflict" if p >= THRESHOLD and lik >= THRESHOLD
                          else "strong prior / weak likelihood" if p >= THRESHOLD else ""
                          for p, lik in zip(table["prior"], table["likelihood"], strict=True)]
    table.attrs["priors_scaled"] = list(lp.data_vars)
    return table


def element_series(ds: xr.Dataset) -> pd.Series:
    """One value per element of each variable of ``ds`` (no chain or draw dimension), labelled like ``az.summary``'s
    index (``name[label, ...]``)."""
    values: dict[str, float] = {}
    for da in ds.data_vars.values():
        labels, v = elements(da)
        values.update(zip(labels, v.astype(float).tolist(), strict=True))
    return pd.Series(values)
