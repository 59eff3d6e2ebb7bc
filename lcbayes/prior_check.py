"""The two-sided prior predictive check: are the priors too wide for the response scale, or too narrow for the data?

For each measure the model simulates, from datasets drawn from the priors (``prior_predictive``, values at the observed
rows, dims (chain, draw, obs)):

- **too wide** when more than :data:`MAX_OUTSIDE` of the simulated scores fall outside the measure's range
  (:meth:`~lcbayes.data.study.Study.response_range`), or when the median simulated within-community SD (pooled over
  community x session cells) exceeds :data:`WITHIN_SD_BAND`\\[1\\] x the half range;
- **too narrow** when that median lies below :data:`WITHIN_SD_BAND`\\[0\\] x the half range, or when the observed mean
  lies in an outer :data:`TAIL` of its prior predictive distribution (either side), or the observed within-community SD
  above all but :data:`TAIL` of the simulated ones (the priors make the data implausible); an observed SD below all but
  :data:`TAIL` of them counts as too wide.

The thresholds are Gelman et al.'s (2020, Bayesian workflow, 2.4) "weakly informative" reading of a bounded scale: the
prior predictive should stay mostly on the scale and put its within-group spread where spreads of such scores can
lie (0.1 to 1 half range: 0.2 to 2 points on a 1-5 scale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lcbayes.data.study import Study

MAX_OUTSIDE = 0.10            # largest share of simulated scores outside the response range
WITHIN_SD_BAND = (0.1, 1.0)   # band of the median simulated within-community SD, in half ranges
TAIL = 0.01                   # prior predictive p-values below TAIL or above 1 - TAIL: the data are implausible


@dataclass(frozen=True)
class PriorCheck:
    """The check of one measure; SDs and means in the measure's units, shares in [0, 1]."""

    measure: str
    low: float                      # response range (declared, or the fallback of Study.response_range)
    high: float
    declared: bool
    draws: int                      # simulated datasets
    share_outside: float            # share of simulated scores outside [low, high]
    within_sd: tuple[float, float, float]   # 5%, 50%, 95% quantiles over datasets of the pooled within-community SD
    observed_within_sd: float
    p_within_sd: float              # share of datasets whose within-community SD is at least the observed one
    mean: tuple[float, float, float]        # 5%, 50%, 95% quantiles of the dataset mean
    observed_mean: float
    p_mean: float                   # share of datasets whose mean is at least the observed one
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        """``"ok"``, ``"too wide"``, ``"too narrow"`` or ``"too wide and too narrow"``."""
        kinds = [k for k in ("too wide", "too narrow") if any(p.startswith(k) for p in self.problems)]
        return " and ".join(kinds) or "ok"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def _cells(study: Study, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The community x session cell (0..C-1) of each of the rows ``obs`` that lies in a cell with at least two
    scores, those rows' positions in ``obs``, and the cells' sizes (C,)."""
    code = study.idx["community"][obs] * study.n("session") + study.idx["session"][obs]
    _, cell, size = np.unique(code, return_inverse=True, return_counts=True)
    rows = np.flatnonzero(size[cell] >= 2)
    kept, cell = np.unique(cell[rows], return_inverse=True)
    return cell, rows, size[kept].astype(float)


def within_sd(values: np.ndarray, cell: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Pooled within-cell SD of ``values`` (draws, rows) whose rows lie in cells ``cell`` (rows,) of sizes ``n``
    (cells,): the square root of the mean over cells of the cell variance (ddof 1), (draws,)."""
    total, squares = np.zeros((len(n), len(values))), np.zeros((len(n), len(values)))
    np.add.at(total, cell, values.T)
    np.add.at(squares, cell, (values**2).T)
    variance = (squares - total**2 / n[:, None]) / (n[:, None] - 1)
    return np.sqrt(np.maximum(variance, 0.0).mean(0))


def check_measure(study: Study, measure: str, simulated: np.ndarray, obs: np.ndarray) -> PriorCheck:
    """The check of ``measure`` from ``simulated`` (datasets, obs) values at the study's rows ``obs`` (row codes)."""
    scale = study.response_range(measure)
    observed = study.values(measure)[obs]
    seen = ~np.isnan(observed)             # rows where the study has the measure (a predictor may be missing)
    obs, observed, simulated = obs[seen], observed[seen], simulated[:, seen]
    cell, rows, n = _cells(study, obs)
    finite = np.isfinite(simulated).all(axis=1)
    sim = simulated[finite]
    sd_sim = within_sd(sim[:, rows], cell, n)
    sd_obs = float(within_sd(observed[None, rows], cell, n)[0])
    means = sim.mean(axis=1)
    outside = float(((sim < scale.low) | (sim > scale.high)).mean())
    q = [0.05, 0.5, 0.95]
    check = PriorCheck(measure, scale.low, scale.high, scale.declared, int(len(sim)), outside,
                       tuple(np.quantile(sd_sim, q).tolist()), sd_obs, float((sd_sim >= sd_obs).mean()),
                       tuple(np.quantile(means, q).tolist()), float(observed.mean()),
                       float((means >= observed.mean()).mean()))
    check.problems.extend(_problems(check, scale.half, len(simulated) - len(sim)))
    return check


def _problems(c: PriorCheck, half: float, non_finite: int) -> list[str]:
    out = []
    where = f"[{c.low:g}, {c.high:g}]" + ("" if c.declared else " (no declared range: observed mean -/+ 2.5 SD)")
    if c.share_outside > MAX_OUTSIDE:
        out.append(f"too wide: {c.share_outside:.0%} of simulated {c.measure} scores fall outside {where} "
                   f"(at most {MAX_OUTSIDE:.0%})")
    low, high = (b * half for b in WITHIN_SD_BAND)
    if c.within_sd[1] > high:
        out.append(f"too wide: the median simulated within-community SD of {c.measure} is {c.within_sd[1]:.2g}, "
                   f"above {high:.2g} ({WITHIN_SD_BAND[1]:g} half range)")
    if non_finite:
        out.append(f"too wide: {non_finite} simulated datasets of {c.measure} are not finite")
    if c.within_sd[1] < low:
        out.append(f"too narrow: the median simulated within-community SD of {c.measure} is {c.within_sd[1]:.2g}, "
                   f"below {low:.2g} ({WITHIN_SD_BAND[0]:g} half range)")
    if c.p_within_sd > 1 - TAIL:
        out.append(f"too wide: the observed within-community SD of {c.measure} ({c.observed_within_sd:.2g}) is smaller "
                   f"than in {c.p_within_sd:.1%} of the simulated datasets")
    if c.p_within_sd < TAIL:
        out.append(f"too narrow: the observed within-community SD of {c.measure} ({c.observed_within_sd:.2g}) is "
                   f"larger than in {1 - c.p_within_sd:.1%} of the simulated datasets")
    if not TAIL <= c.p_mean <= 1 - TAIL:
        side = "above" if c.p_mean < TAIL else "below"
        out.append(f"too narrow: the observed mean of {c.measure} ({c.observed_mean:.3g}) lies {side} "
                   f"{max(c.p_mean, 1 - c.p_mean):.1%} of the simulated dataset means")
    return out


def prior_check(study: Study, prior_predictive: Any, measures: Sequence[str] | None = None) -> list[PriorCheck]:
    """The check of each of ``measures`` (default: every variable) in ``prior_predictive`` (an xarray Dataset with
    (chain, draw, obs) values at the rows of the coordinate ``obs``)."""
    out = []
    for name in [str(v) for v in prior_predictive.data_vars] if measures is None else measures:
        x = prior_predictive[name]
        obs = np.asarray(x["obs"].values)
        out.append(check_measure(study, name, x.values.reshape(-1, x.sizes["obs"]), obs))
    return out


def table(checks: Sequence[PriorCheck]) -> pd.DataFrame:
    """One row per measure: range, share outside, simulated and observed within-community SD and mean, verdict."""
    rows = [{"measure": c.measure, "range": f"{c.low:g}-{c.high:g}" + ("" if c.declared else " (observed)"),
             "outside range": c.share_outside, "within SD 5%": c.within_sd[0], "within SD median": c.within_sd[1],
             "within SD 95%": c.within_sd[2], "observed within SD": c.observed_within_sd, "p(within SD)": c.p_within_sd,
             "observed mean": c.observed_mean, "p(mean)": c.p_mean, "verdict": c.verdict} for c in checks]
    return pd.DataFrame(rows).set_index("measure")
