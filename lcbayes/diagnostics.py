"""Convergence verdicts with plain-language hints.

Thresholds follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021, rank-normalised R-hat and ESS) and Betancourt
(2016, E-BFMI): R-hat <= 1.01, bulk and tail ESS >= 400, no divergent transitions, E-BFMI >= 0.3 in every chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

MAX_RHAT = 1.01
MIN_ESS = 400
MIN_EBFMI = 0.3

HINTS = {
    "r_hat": "chains disagree: run more tuning and draws; if it persists, look for multimodality "
             "or a weakly identified parameter (tighter prior).",
    "ess": "too few effective draws: increase draws (about {factor:.1f}x) or reparameterise.",
    "divergences": "divergent transitions bias the posterior: raise target_accept (e.g. 0.95-0.99); "
                   "if they remain, reparameterise (non-centred effects) or tighten priors on scales.",
    "ebfmi": "low E-BFMI: the sampler explores the energy distribution poorly; reparameterise "
             "scale parameters (non-centred) or use more informative priors on them.",
    "one_chain": "R-hat not checked: it needs at least two chains (one was run), so convergence cannot be shown; "
                 "run chains >= 2 (4 recommended).",
    "no_energy": "not checked: the sampler stored no energy statistic; the other checks decide "
                 "(use a back end that reports energy to check it)."}


@dataclass(frozen=True)
class Diagnostics:
    """Per parameter group: size, max R-hat, min bulk/tail ESS, verdict and hint; plus the
    sampler-wide divergences and minimum E-BFMI over chains (NaN when the sampler stored no
    ``energy`` statistic: E-BFMI is then not checked and the other checks decide)."""

    table: pd.DataFrame
    divergences: int
    min_ebfmi: float

    @property
    def ebfmi_checked(self) -> bool:
        """Whether E-BFMI was computed (the sampler stored its energy statistic)."""
        return not np.isnan(self.min_ebfmi)

    @property
    def passed(self) -> bool:   # an unchecked E-BFMI (NaN) passes
        return bool(self.table["ok"].all()) and self.divergences == 0 and not self.min_ebfmi < MIN_EBFMI

    def hints(self) -> list[str]:
        out = [f"{row.group}: {row.hint}" for row in self.table.itertuples() if not row.ok]
        if self.divergences:
            out.append(f"{self.divergences} divergences: {HINTS['divergences']}")
        if not self.ebfmi_checked:
            out.append(f"E-BFMI: {HINTS['no_energy']}")
        elif self.min_ebfmi < MIN_EBFMI:
            out.append(f"E-BFMI {self.min_ebfmi:.2f}: {HINTS['ebfmi']}")
        return out

    def __str__(self) -> str:
        head = "converged" if self.passed else "NOT converged"
        ebfmi = f"min E-BFMI {self.min_ebfmi:.2f}" if self.ebfmi_checked else "E-BFMI not checked"
        lines = [f"{head}: {self.divergences} divergences, {ebfmi}",
                 self.table.drop(columns="hint").to_string(index=False, float_format=lambda v: f"{v:.3f}")]
        return "\n".join(lines + [f"  hint: {h}" for h in self.hints()])


def summarize(draws: xr.DataTree | xr.Dataset, var_names: Sequence[str] | None = None,
               hdi_prob: float = 0.9) -> pd.DataFrame:
    """ArviZ's summary of the posterior variables ``var_names`` (all when None) of a fit, or of a Dataset of draws over
    (chain, draw, ...): one row per element (``name[label, ...]``), columns mean, sd, the ``hdi_prob`` HDI as
    ``hdi90_lb``/``hdi90_ub`` (for 0.9), ess_bulk, ess_tail, r_hat, mcse_mean, mcse_sd, unrounded."""
    return az.summary(draws, var_names=None if var_names is None else list(var_names), ci_kind="hdi",
                      ci_prob=hdi_prob, round_to="none")


def elements(da: xr.DataArray, keep: Sequence[str] = ()) -> tuple[list[str], np.ndarray]:
    """Every element of ``da`` over its dimensions other than ``keep`` (e.g. ``("chain", "draw")``), labelled like
    :func:`summarize`'s index (``name[label, ...]``; the bare name for a variable with no such dimension), and its
    values, shape (elements, *sizes of ``keep``)."""
    other = [d for d in da.dims if d not in keep]
    if not other:
        return [str(da.name)], da.transpose(*keep).values[None]
    stacked = da.stack(element=other).transpose("element", *keep)
    labels = [index if isinstance(index, tuple) else (index,) for index in stacked["element"].values]
    return [f"{da.name}[{', '.join(map(str, label))}]" for label in labels], stacked.values


def hdi_columns(hdi_prob: float = 0.9) -> list[str]:
    """The names :func:`summarize` gives the bounds of a ``hdi_prob`` HDI: ``["hdi90_lb", "hdi90_ub"]`` for 0.9."""
    label = f"hdi{100 * hdi_prob:g}"
    return [f"{label}_lb", f"{label}_ub"]


def failing_elements(summary: pd.DataFrame, min_ess: float = MIN_ESS) -> pd.Series:
    """Per row of an ``az.summary`` table: whether R-hat exceeds 1.01 or bulk or tail ESS
    falls below ``min_ess`` (rows without a defined R-hat or ESS, e.g. constants, pass)."""
    return (summary["r_hat"] > MAX_RHAT) | (summary[["ess_bulk", "ess_tail"]].min(axis=1) < min_ess)


def diagnose(idata: xr.DataTree, var_names: Sequence[str], min_ess: float = MIN_ESS) -> Diagnostics:
    """Verdicts for the posterior variables ``var_names`` of ``idata`` (bulk and tail ESS must reach ``min_ess``)."""
    post = idata["posterior"].to_dataset()[list(var_names)]
    rhat, bulk, tail = az.rhat(post), az.ess(post, method="bulk"), az.ess(post, method="tail")
    rows, one_chain = [], post.sizes["chain"] < 2
    for name in var_names:
        r = float(np.nanmax(rhat[name].values)) if rhat[name].size else np.nan
        b, t = float(np.nanmin(bulk[name].values)), float(np.nanmin(tail[name].values))
        ess_hint = HINTS["ess"].format(factor=min_ess / max(min(b, t), 1.0)) if not min(b, t) >= min_ess else ""
        if one_chain:                       # R-hat compares chains: with one it is undefined, not a disagreement
            r, hint = float("nan"), ess_hint or HINTS["one_chain"]
        else:
            hint = HINTS["r_hat"] if not r <= MAX_RHAT else ess_hint
        rows.append({"group": name, "size": int(post[name].isel(chain=0, draw=0).size), "max_r_hat": r,
                     "min_ess_bulk": b, "min_ess_tail": t, "ok": not hint, "hint": hint})
    stats = idata["sample_stats"]
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    ebfmi = float(np.min(az.bfmi(idata)["energy"])) if "energy" in stats else float("nan")
    return Diagnostics(pd.DataFrame(rows), divergences, ebfmi)
