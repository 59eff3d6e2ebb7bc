"""Scoring of multi-item scales and their reliability (Cronbach's alpha, McDonald's omega, within- and between-person
omega).

Items are columns of a table with one row per respondent (or per rater and occasion); responses are numbers on the
items' own response scale (e.g. 1..5 Likert points). Reverse-keyed items must be recoded with :func:`reverse_key`
before scoring.

References
----------
Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests. *Psychometrika*, 16(3), 297-334.
McDonald, R. P. (1999). *Test theory: A unified treatment*. Mahwah, NJ: Erlbaum.
Jöreskog, K. G. (1967). Some contributions to maximum likelihood factor analysis. *Psychometrika*, 32(4), 443-482.
Geldhof, G. J., Preacher, K. J., & Zyphur, M. J. (2014). Reliability estimation in a multilevel confirmatory factor
analysis framework. *Psychological Methods*, 19(1), 72-91.
Muthén, B. O. (1994). Multilevel covariance structure analysis. *Sociological Methods & Research*, 22(3), 376-398.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

type Labels = pd.Series | np.ndarray   # cluster labels, one per row

#: Lower bound of the uniquenesses on the correlation scale, i.e. psi_i >= 1e-6 * var_i (keeps Heywood cases, where an
#: item is fitted as error free, numerically proper).
MIN_UNIQUENESS = 1e-6


def reverse_key[Values: (pd.Series, pd.DataFrame, np.ndarray)](values: Values,
                                                                scale_range: tuple[float, float]) -> Values:
    """Reverse-key responses: ``x' = low + high - x``.

    ``values`` is a Series, DataFrame or ndarray of any shape in the units of the response scale ``scale_range = (low,
    high)``, e.g. ``(1, 5)`` maps 5 -> 1 and 2 -> 4. Missing values (NaN) stay missing; the result has the type, shape
    and labels of ``values``.
    """
    low, high = scale_range
    if not low < high:
        raise ValueError(f"scale_range must be (low, high) with low < high, got {scale_range!r}")
    return low + high - values


def score_items(items: pd.DataFrame, min_share: float = 0.5) -> pd.Series:
    """Scale score per row: the prorated mean of the answered items.

    ``items`` has shape (n_rows, J), one column per item, already reverse-keyed. A row's score is the mean of its
    non-missing items (in response-scale units), provided the share of answered items is at least ``min_share``;
    otherwise the score is NaN. The mean of the answered items is the usual "prorated" convention: it equals the
    full-scale mean when the missing items would have been answered like the answered ones. Returns a Series of length
    n_rows with the index of ``items``.
    """
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must lie in [0, 1], got {min_share!r}")
    answered_share = items.notna().mean(axis=1)
    return items.mean(axis=1, skipna=True).where(answered_share >= min_share)


def _complete_rows(items: pd.DataFrame | np.ndarray) -> np.ndarray:
    """Rows of ``items`` (shape (n, J)) without missing values, as a float array (m, J)."""
    x = np.asarray(items, dtype=float)
    return x[~np.isnan(x).any(axis=1)]


def within_row_ss(items: pd.DataFrame | np.ndarray) -> tuple[float, int]:
    """(SS, df): the pooled within-row sum of squares of item-centred responses and its degrees of freedom.

    ``items`` has shape (n, J). Each item is centred at its mean (removing the item intercepts nu_k), then the squared
    deviations from each row's mean are summed over rows with at least two answered items; df = sum over those rows of
    (answered items - 1). For parallel items with unique variance theta, SS / theta ~ chi^2(df)."""
    x = np.asarray(items, dtype=float)
    x = x - np.nanmean(x, axis=0)
    answered = (~np.isnan(x)).sum(axis=1)
    rows = answered >= 2
    if not rows.any():
        return 0.0, 0
    sq = np.nansum((x[rows] - np.nanmean(x[rows], axis=1, keepdims=True)) ** 2, axis=1)
    return float(sq.sum()), int((answered[rows] - 1).sum())


def unique_variance(items: pd.DataFrame | np.ndarray) -> float:
    """theta: the unique (error) variance of one item, in squared response units, for parallel items
    x_ik = nu_k + eta_i + e_ik, e_ik ~ N(0, theta): SS / df of :func:`within_row_ss` (ddof = 1 within rows).

    ``items`` has shape (n, J). theta / J is the error variance of the mean of J items; the true-score variance of eta
    is untouched by it. NaN without rows of two or more answered items."""
    ss, df = within_row_ss(items)
    return ss / df if df else float("nan")


def cronbach_alpha(items: pd.DataFrame | np.ndarray) -> float:
    """Cronbach's (1951) alpha of the unit-weighted sum of the J item columns.

    ``items`` has shape (n, J); rows with any missing item are dropped (listwise).
    ``alpha = J/(J-1) * (1 - sum_j var_j / var(total))`` with sample variances (ddof=1). Returns NaN when J < 2, fewer
    than 2 complete rows remain, or var(total) = 0.
    """
    x = _complete_rows(items)
    n, n_items = x.shape
    if n_items < 2 or n < 2:
        return float("nan")
    total_var = x.sum(axis=1).var(ddof=1)
    if total_var == 0:
        return float("nan")
    return float(n_items / (n_items - 1) * (1 - x.var(axis=0, ddof=1).sum() / total_var))


def _one_factor_ml(corr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit the one-factor model ``R = l l' + diag(psi)`` to a (J, J) correlation matrix.

    Minimises the ML discrepancy ``F = log|Sigma| + tr(R Sigma^-1)`` (Jöreskog, 1967) with L-BFGS-B and the analytic
    gradient ``dF/dSigma = Sigma^-1 - Sigma^-1 R Sigma^-1``, psi >= :data:`MIN_UNIQUENESS`. Starts from l = sqrt(SMC),
    the squared multiple correlations. Returns loadings l (J,) with sum(l) >= 0 and uniquenesses psi (J,).
    """
    n_items = corr.shape[0]
    smc = np.clip(1 - 1 / np.diag(np.linalg.pinv(corr)), 0.01, 0.99)

    def discrepancy(theta: np.ndarray) -> tuple[float, np.ndarray]:
        loadings, psi = theta[:n_items], theta[n_items:]
        sigma = np.outer(loadings, loadings) + np.diag(psi)
        sigma_inv = np.linalg.inv(sigma)
        grad_sigma = sigma_inv - sigma_inv @ corr @ sigma_inv
        value = np.linalg.slogdet(sigma)[1] + np.trace(corr @ sigma_inv)
        return value, np.concatenate([2 * grad_sigma @ loadings, np.diag(grad_sigma)])

    fit = minimize(discrepancy, np.concatenate([np.sqrt(smc), 1 - smc]), jac=True, method="L-BFGS-B",
                   bounds=[(None, None)] * n_items + [(MIN_UNIQUENESS, None)] * n_items,
                   options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000})
    loadings, psi = fit.x[:n_items], fit.x[n_items:]
    return np.sign(loadings.sum() or 1.0) * loadings, psi


def omega_from_covariance(cov: np.ndarray) -> float:
    """McDonald's (1999) omega total of the unit-weighted sum of J items.

    ``cov`` is the (J, J) item covariance matrix (squared response-scale units). A one-factor model is fitted by maximum
    likelihood to the correlation matrix and rescaled to the covariance metric (ML is scale invariant):
    ``lambda_i = l_i * sd_i``, ``psi_i = psi*_i * sd_i**2``; then ``omega = (sum lambda)^2 / ((sum lambda)^2 + sum
    psi)``. Uniquenesses are bounded below by ``1e-6 * var_i`` (Heywood cases).

    Returns NaN when J < 3: with two items the one-factor model is not identified (use :func:`cronbach_alpha`, the
    tau-equivalent value, instead). Also NaN when an item has zero or non-finite variance.
    """
    cov = np.asarray(cov, dtype=float)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square (J, J) matrix, got shape {cov.shape}")
    sd = np.sqrt(np.diag(cov))
    if cov.shape[0] < 3 or not np.all(np.isfinite(cov)) or np.any(sd == 0):
        return float("nan")
    loadings, psi = _one_factor_ml(cov / np.outer(sd, sd))
    common = (loadings * sd).sum() ** 2
    return float(common / (common + (psi * sd**2).sum()))


def mcdonald_omega(items: pd.DataFrame | np.ndarray) -> float:
    """McDonald's (1999) omega total of the unit-weighted sum of the J item columns.

    ``items`` has shape (n, J); rows with any missing item are dropped (listwise) and the sample covariance matrix of
    the complete rows is passed to :func:`omega_from_covariance`. NaN when J < 3 or fewer than J + 1 complete rows.
    """
    x = _complete_rows(items)
    n, n_items = x.shape
    if n_items < 3 or n < n_items + 1:
        return float("nan")
    return omega_from_covariance(np.cov(x, rowvar=False))


def multilevel_covariances(items: pd.DataFrame | np.ndarray, cluster: Labels) -> tuple[np.ndarray, np.ndarray]:
    """The pooled within-cluster covariance S_PW and the estimated between-cluster covariance Sigma_B of the item
    columns (Muthén 1994): on the complete rows (N rows in J clusters of sizes n_j, cluster means m_j, grand mean m),
    S_PW = sum_j sum_i (x_ij - m_j)(x_ij - m_j)' / (N - J), S_B = sum_j n_j (m_j - m)(m_j - m)' / (J - 1) and
    Sigma_B = (S_B - S_PW) / c with c = (N^2 - sum n_j^2) / (N (J - 1)), the average cluster size adjusted for
    unequal sizes (the MUML estimator: exact for equal sizes)."""
    x = np.asarray(items, dtype=float)
    keep = ~np.isnan(x).any(axis=1)
    x, codes = x[keep], pd.factorize(pd.Series(np.asarray(cluster))[keep])[0]
    sizes = np.bincount(codes).astype(float)
    n, j = len(x), len(sizes)
    means = np.stack([np.bincount(codes, weights=x[:, k]) for k in range(x.shape[1])], axis=1) / sizes[:, None]
    dev = x - means[codes]
    pooled = dev.T @ dev / (n - j)
    between = (means - x.mean(axis=0)).T * sizes @ (means - x.mean(axis=0)) / (j - 1)
    c = (n**2 - (sizes**2).sum()) / (n * (j - 1))
    return pooled, (between - pooled) / c


def multilevel_omega(items: pd.DataFrame | np.ndarray, cluster: Labels) -> tuple[float, float]:
    """Within- and between-cluster omega of the unit-weighted sum of the item columns (Geldhof, Preacher & Zyphur
    2014): :func:`omega_from_covariance` of S_PW and of Sigma_B (:func:`multilevel_covariances`), a one-factor model
    at each level. For repeated measures (clusters = participants) within omega is the reliability of a score's
    change from one session to the next within a person, between omega that of the person means. NaN where a level
    cannot be estimated: fewer than 3 items, fewer than 2 rows per cluster on average, or a between-cluster item
    variance that is not positive."""
    x = np.asarray(items, dtype=float)
    codes = np.asarray(cluster)[~np.isnan(x).any(axis=1)]
    n, j = len(codes), len(np.unique(codes))
    if x.shape[1] < 3 or j < 3 or n < 2 * j:
        return float("nan"), float("nan")
    pooled, between = multilevel_covariances(x, cluster)
    return omega_from_covariance(pooled), (omega_from_covariance(between) if (np.diag(between) > 0).all()
                                           else float("nan"))


def reliability_table(items: pd.DataFrame, by: pd.Series | None = None) -> pd.DataFrame:
    """Reliability of the scale formed by the columns of ``items`` (shape (n, J)).

    Returns one row per level of ``by`` (a Series aligned with ``items``' index; rows whose level is missing are left
    out), or a single row labelled ``"all"`` when ``by`` is None. Columns: ``n`` (number of complete rows, int),
    ``alpha`` (:func:`cronbach_alpha`) and ``omega`` (:func:`mcdonald_omega`).
    """
    groups = [("all", items)] if by is None else list(items.groupby(by, sort=True))
    rows = [{"n": len(_complete_rows(g)), "alpha": cronbach_alpha(g), "omega": mcdonald_omega(g)} for _, g in groups]
    index = pd.Index([level for level, _ in groups], name=None if by is None else by.name)
    return pd.DataFrame(rows, index=index).astype({"n": int})
