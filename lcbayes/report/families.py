"""What a report shows of each model family beyond the shared sections: its derived
quantities (as posterior draws, summarised with MCSE like the parameters), its plots and
tables, and the sentences of "what to conclude"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from lcbayes.models.base import BayesModel

HDI = 0.9


def describe(label: str, draws: xr.DataArray | np.ndarray, unit: str = "") -> str:
    """'label: mean (90% HDI lo to hi; P(> 0) = p)' from posterior draws."""
    x = np.asarray(draws).ravel()
    lo, hi = az.hdi(x, hdi_prob=HDI)
    verdict = "excludes 0" if lo > 0 or hi < 0 else "includes 0"
    return (f"{label}: {x.mean():.3f}{unit} (90% HDI {lo:.3f} to {hi:.3f}, {verdict}; "
            f"P(> 0) = {(x > 0).mean():.2f})")


@dataclass(frozen=True)
class Family:
    """Report content of one model family (functions of a fitted model)."""

    derived: Callable[[BayesModel], xr.Dataset]
    figures: Callable[[BayesModel], list[tuple[str, object]]]
    tables: Callable[[BayesModel], list[tuple[str, pd.DataFrame]]]
    conclusions: Callable[[BayesModel], list[str]]


# ---------------------------------------------------------------- model A: climate growth
def _growth_derived(model: BayesModel) -> xr.Dataset:
    return xr.Dataset({"variance_share": model.idata.posterior["variance_share"]})


def _growth_figures(model: BayesModel) -> list[tuple[str, object]]:
    return [("Community trajectories: posterior mean and 90% HDI; dots are observed community means.",
             model.plot_trajectories().figure)]


def _growth_conclusions(model: BayesModel) -> list[str]:
    post = model.idata.posterior
    out = [describe(f"Change in {model.spec.outcome} per unit of time ({term})", post["beta_time"].sel(time_term=term))
           for term in post["time_term"].values]
    share = post["variance_share"].sel(level="community")
    first, last = share.isel(session=0), share.isel(session=-1)
    out.append(f"Share of variance between communities: {float(first.mean()):.2f} at the first session, "
               f"{float(last.mean()):.2f} at the last (posterior means).")
    for name in ("gamma_trait", "gamma_within", "gamma_between"):
        if name in post:
            dim = [d for d in post[name].dims if d not in ("chain", "draw")][0]
            out += [describe(f"{name} ({v})", post[name].sel({dim: v})) for v in post[dim].values]
    return out


# ---------------------------------------------------------------- model B: consensus emergence
def _emergence_derived(model: BayesModel) -> xr.Dataset:
    post = model.idata.posterior
    out = {}
    if "alpha_time" in post:
        out["p_emergence"] = (post["alpha_time"] < 0).astype(float)
    if "eta_average" in post:
        out["eta_average"] = post["eta_average"]
    out["consensus_sd_mean"] = post["consensus"].mean("community")
    if "consensus_rwg" in post:
        out["consensus_rwg_mean"] = post["consensus_rwg"].mean("community")
        out["share_reaching_consensus"] = post["time_to_consensus"].notnull().mean("community").astype(float)
    return xr.Dataset(out)


def _emergence_figures(model: BayesModel) -> list[tuple[str, object]]:
    return [("Consensus (within-community SD) per community over sessions.", model.plot_consensus().figure),
            ("Strength and consensus at the last session.", model.plot_strength_consensus().figure)]


def _emergence_conclusions(model: BayesModel) -> list[str]:
    post = model.idata.posterior
    out = []
    if "alpha_time" in post:
        p = float((post["alpha_time"] < 0).mean())
        trend = "shrinks" if p >= 0.95 else "grows" if p <= 0.05 else "may or may not change"
        out.append(describe("Emergence, alpha1 (change in log within-community SD per unit of time)",
                            post["alpha_time"]) + f". P(alpha1 < 0) = {p:.2f}: the spread within communities {trend}.")
    if "alpha_composition_time" in post:
        out += [describe(f"Composition x time, alpha3 ({c}; negative = faster emergence)",
                         post["alpha_composition_time"].sel(composition=c)) for c in post["composition"].values]
    if "eta_average" in post:
        out += [describe(f"Learning outcome on {t} (at the communities' average latent strength and consensus)",
                         post["eta_average"].sel(outcome_term=t)) for t in post["outcome_term"].values[1:]]
    if "consensus_rwg" in post:
        reached = post["time_to_consensus"].notnull().mean("community")
        out.append(f"Communities reaching consensus (r_wg >= {model.options['consensus_rwg']}) by the last "
                   f"session: {float(reached.mean()):.0%} (posterior mean).")
    return out


# ---------------------------------------------------------------- model C: knowledge sharing
def _sharing_derived(model: BayesModel) -> xr.Dataset:
    post = model.idata.posterior
    names = [n for n in ("support_effect", "within_between", "spiral_gain", "spectral_radius") if n in post]
    out = post[names]
    if "stable" in post:
        out = out.assign(p_stable=post["stable"].astype(float))
    return out


def _sharing_figures(model: BayesModel) -> list[tuple[str, object]]:
    return [("Support effect over sessions at low (-1 SD), mean and high (+1 SD) self-efficacy, 90% HDI.",
             model.plot_support_effect().figure),
            ("Within- and between-person effects of each predictor, 90% HDI.", model.plot_within_between().figure)]


def _sharing_tables(model: BayesModel) -> list[tuple[str, pd.DataFrame]]:
    return [("Support effect per session and self-efficacy level", model.support_effect_table()),
            ("Within- and between-person effects", model.within_between_table()),
            ("Spiral (motivation <-> sharing) and stability", model.spiral().to_frame("value"))]


def _sharing_conclusions(model: BayesModel) -> list[str]:
    post = model.idata.posterior
    out = [describe("Support effect at session 1 and average self-efficacy, gamma0", post["gamma_support"])]
    if "support_effect" in post:
        eff = post["support_effect"].sel(efficacy_level=0)
        out.append(describe("Support effect at the last session (average self-efficacy)", eff.isel(session=-1)))
    if "gamma_efficacy" in post:
        out.append(describe("Cross-level moderation by mean self-efficacy, gamma1", post["gamma_efficacy"]))
    if "spiral_gain" in post:
        out.append(describe("Spiral gain delta x betaM (sharing -> motivation -> sharing)", post["spiral_gain"])
                   + f". P(the sharing-motivation system is stable) = {float(post['stable'].mean()):.2f}.")
    if "within_between" in post:
        wb = post["within_between"]
        for v in wb["predictor"].values:
            out.append(describe(f"{v}: within-person effect", wb.sel(predictor=v, effect="within")) + "; "
                       + describe("between-person effect", wb.sel(predictor=v, effect="between")))
    return out


FAMILIES: dict[str, Family] = {
    "climate_growth": Family(_growth_derived, _growth_figures, lambda m: [], _growth_conclusions),
    "consensus_emergence": Family(_emergence_derived, _emergence_figures, lambda m: [], _emergence_conclusions),
    "knowledge_sharing": Family(_sharing_derived, _sharing_figures, _sharing_tables, _sharing_conclusions),
}
