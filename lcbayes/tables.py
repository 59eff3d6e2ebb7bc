"""Tables and sentences from posterior draws: functions of a fit's DataTree (in memory, or loaded with
``Model.load``, which recomputes the grids a saved file leaves out), so that the same tables serve the report, the
notebooks and power analysis.

``HDI`` is the interval every table and sentence reports (90%, as in the report).
"""

from __future__ import annotations

import json

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from lcbayes.errors import ConfigError

HDI = 0.9


def outcome_of(idata: xr.DataTree) -> str:
    """The outcome a saved lcbayes fit models (from its provenance attributes)."""
    return str(json.loads(idata.attrs["spec"])["outcome"])


def mean_hdi(draws: xr.DataArray | np.ndarray, hdi_prob: float = HDI) -> tuple[float, float, float]:
    """The posterior mean and the ``hdi_prob`` HDI (lower, upper) of all of ``draws`` (every element pooled: pass one
    quantity, e.g. ``post["beta_time"].sel(time_term="time")``)."""
    x = np.asarray(draws, dtype=float).ravel()
    lo, hi = az.hdi(x, prob=hdi_prob)
    return float(x.mean()), float(lo), float(hi)


def describe(label: str, draws: xr.DataArray | np.ndarray, unit: str = "") -> str:
    """'label: mean (90% HDI lo to hi, excludes/includes 0; P(> 0) = p)' from draws."""
    x = np.asarray(draws).ravel()
    _, lo, hi = mean_hdi(x)
    verdict = "excludes 0" if lo > 0 or hi < 0 else "includes 0"
    return (f"{label}: {x.mean():.3f}{unit} (90% HDI {lo:.3f} to {hi:.3f}, {verdict}; "
            f"P(> 0) = {(x > 0).mean():.2f})")


def hdi_table(draws: xr.DataArray, hdi_prob: float = HDI) -> pd.DataFrame:
    """Posterior mean and HDI (``lower``, ``upper``) of every element of ``draws``, one row
    each, with the element's coordinates as columns."""
    hdi = az.hdi(draws, prob=hdi_prob)
    out = draws.mean(("chain", "draw")).to_dataframe(name="mean")
    out["lower"] = hdi.sel(ci_bound="lower", drop=True).to_series()
    out["upper"] = hdi.sel(ci_bound="upper", drop=True).to_series()
    return out.reset_index()


def emergence_evidence(idata: xr.DataTree) -> pd.DataFrame:
    """Posterior of alpha1 (mean, 5% and 95% quantiles) and the probability that it is
    negative (the within-community spread shrinks)."""
    if "alpha_time" not in idata["posterior"]:
        raise ConfigError("this fit has no alpha_time: it was fitted with emergence = false, which fixes "
                          "alpha1 = 0. Fix: fit with emergence = true, or compare both with compare_emergence().")
    a1 = idata["posterior"].to_dataset()["alpha_time"].values.ravel()
    lo, hi = np.quantile(a1, [0.05, 0.95])
    return pd.DataFrame({"mean": [a1.mean()], "q5": [lo], "q95": [hi], "p_emergence": [(a1 < 0).mean()]},
                        index=["alpha_time"])


def p_consensus_by(idata: xr.DataTree) -> pd.DataFrame:
    """P(consensus reached by session t), community x session (the posterior survival curve of the time to consensus,
    P(T_j <= t); censored at the last session: a community not at consensus by then has no reaching time), with the
    index and threshold that define consensus in ``attrs``."""
    post = idata["posterior"].to_dataset()
    table = post["consensus_reached_by"].mean(("chain", "draw")).to_pandas()
    table.attrs.update({k: post["consensus_index"].attrs[k] for k in ("label", "threshold")})
    return table


def consensus_time(idata: xr.DataTree) -> pd.DataFrame:
    """Continuous time to consensus per community (``consensus_time``, in session units): P(reached by the last
    session), P(reached within the extrapolation horizon), the posterior median and 5%/95% quantiles over *all* draws,
    not reached counting as +inf (a median of inf: not reached in at least half of the draws; no median conditional
    on reaching, which censoring would bias), and the share of draws whose crossing is an extrapolation past the last
    session."""
    draws = idata["posterior"].to_dataset()["consensus_time"]
    last = draws.attrs["last_session"]
    x = draws.stack(sample=("chain", "draw")).transpose("community", "sample").values
    # a draw's order statistic, not an interpolation: between two infinite draws that would be inf - inf = NaN
    q = np.quantile(x, [0.05, 0.5, 0.95], axis=1, method="inverted_cdf")
    return pd.DataFrame({"p_reached_by_last": (x <= last).mean(1), "p_reached": np.isfinite(x).mean(1),
                         "q5": q[0], "median": q[1], "q95": q[2],
                         "share_extrapolated": (np.isfinite(x) & (x > last)).mean(1)},
                        index=pd.Index(draws["community"].values, name="community"))


def support_effect_table(idata: xr.DataTree, hdi_prob: float = HDI) -> pd.DataFrame:
    """Support effect per session and self-efficacy level: mean and HDI ("when and for whom")."""
    return hdi_table(idata["posterior"].to_dataset()["support_effect"], hdi_prob)


def within_between_table(idata: xr.DataTree, hdi_prob: float = HDI) -> pd.DataFrame:
    """Within- and between-person effects of each predictor side by side: mean and HDI."""
    return hdi_table(idata["posterior"].to_dataset()["within_between"], hdi_prob)


def spiral(idata: xr.DataTree) -> pd.Series:
    """Posterior mean and 90% interval of the feedback gain delta betaM, the mean spectral
    radius and the probability that the K-M system is stable."""
    post = idata["posterior"].to_dataset()
    gain = post["spiral_gain"].values.ravel()
    return pd.Series({"gain_mean": gain.mean(), "gain_5%": np.quantile(gain, 0.05),
                      "gain_95%": np.quantile(gain, 0.95),
                      "spectral_radius_mean": float(post["spectral_radius"].mean()),
                      "p_stable": float(post["stable"].mean())})
