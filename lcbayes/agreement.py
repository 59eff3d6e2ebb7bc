"""Within-group agreement and aggregation indices for organizational research.

Before individual ratings are aggregated to a group-level construct (a team climate, a learning community's shared
norms), one shows that members agree (r_wg, r*_wg(j), a_wg, AD) and that group membership explains rating variance
(ICC(1), ICC(2)). This module implements the published definitions, following the edge-case conventions of the R package
``multilevel`` (Bliese). References (JAP: *Journal of Applied Psychology*; ORM: *Organizational Research Methods*):

* James, Demaree & Wolf (1984). Estimating within-group interrater reliability with and without response bias.
  JAP 69, 85-98.
* Lindell & Brandt (1999). Assessing interrater agreement on the job relevance of a test. JAP 84, 640-647.
* Lindell, Brandt & Whitney (1999). A revised index of interrater agreement for multi-item ratings of a single
  target. *Applied Psychological Measurement 23*, 127-135.
* Brown & Hauenstein (2005). Interrater agreement reconsidered: An alternative to the r_wg indices. ORM 8, 165-184.
* Burke, Finkelstein & Dusig (1999). On average deviation indices for estimating interrater agreement. ORM 2, 49-68.
* Burke & Dunlap (2002). Estimating interrater agreement with the average deviation index: A user's guide.
  ORM 5, 159-172.
* Bliese (2000). Within-group agreement, non-independence, and reliability. In Klein & Kozlowski (Eds.),
  *Multilevel theory, research, and methods in organizations* (pp. 349-381). Jossey-Bass.
* LeBreton & Senter (2008). Answers to 20 questions about interrater reliability and interrater agreement.
  ORM 11, 815-852.

Array-level functions take the ratings of ONE group: a 1-D array ``(n_raters,)`` for a single item or a 2-D array
``(n_raters, J)`` for the J items of one scale; NaN marks a missing rating and every item uses its own non-missing
ratings. :func:`agreement_table` and :func:`icc_table` apply them to every group of a long-format DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from numbers import Integral, Real
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from lcbayes.errors import LcbayesError, reject_unknown

if TYPE_CHECKING:
    from lcbayes.data.study import Study

type ArrayLike = Sequence[float] | np.ndarray | pd.Series | pd.DataFrame
type NullSpec = str | Sequence[float] | float
type Labels = Sequence[object] | np.ndarray | pd.Series

#: Null (random-response) distributions for 5-point scales, LeBreton & Senter (2008, Table 2).
NAMED_NULLS: dict[str, tuple[float, ...]] = {
    "slight_skew": (0.05, 0.15, 0.20, 0.35, 0.25), "moderate_skew": (0.00, 0.10, 0.15, 0.40, 0.35),
    "heavy_skew": (0.00, 0.00, 0.10, 0.40, 0.50), "triangular": (0.11, 0.22, 0.34, 0.22, 0.11),
    "normal": (0.07, 0.24, 0.38, 0.24, 0.07)}
_PROBABILITY_TOLERANCE = 1e-6
_ICC_GROUP_SIZES = ("mean", "k0")
_AD_CENTERS: dict[str, Callable[..., np.ndarray]] = {"mean": np.nanmean, "median": np.nanmedian}


class AgreementInputError(LcbayesError, ValueError):
    """A bad argument to an agreement or ICC function (scale, null distribution, shape...)."""


def _check_n_options(n_options: int) -> int:
    if isinstance(n_options, bool) or not isinstance(n_options, Integral) or n_options < 2:
        raise AgreementInputError("n_options must be an integer >= 2 (the number A of response options), got "
                                  f"{n_options!r}")
    return int(n_options)


def _check_scale_range(scale_range: Sequence[float], integer: bool = False) -> tuple[float, float]:
    """Return ``(low, high)`` after checking it is a pair of finite numbers with low < high."""
    kind = Integral if integer else Real
    valid = (isinstance(v, kind) and not isinstance(v, bool) and np.isfinite(v) for v in scale_range)
    if len(scale_range) != 2 or not all(valid):
        what = "integers" if integer else "finite numbers"
        raise AgreementInputError(f"scale_range must be a pair (low, high) of {what}, got {scale_range!r}")
    low, high = scale_range
    if low >= high:
        raise AgreementInputError(f"scale_range must have low < high, got ({low}, {high})")
    return low, high


def _check_within_scale(values: np.ndarray, low: float, high: float) -> None:
    outside = values[(values < low) | (values > high)]
    if outside.size:
        raise AgreementInputError(f"ratings outside scale_range ({low}, {high}): {np.unique(outside)[:5].tolist()}; "
                                  "reverse-key or recode the item, or pass the correct scale_range")


_SHAPES = {(1,): "a 1-D array of ratings (n_raters,)", (2,): "a 2-D array of ratings (n_raters, J items)",
           (1, 2): "a 1-D or 2-D array of ratings"}


def _as_ratings(x: ArrayLike, ndims: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """``x`` as a float array, which must have one of the dimensions ``ndims`` (see ``_SHAPES``)."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim not in ndims:
        raise AgreementInputError(f"expected {_SHAPES[ndims]}, got shape {arr.shape}")
    return arr


def _as_list(names: str | Sequence[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def uniform_null_variance(n_options: int) -> float:
    """Variance of the uniform (rectangular) null distribution of an A-point scale.

    ``sigma_EU^2 = (A^2 - 1) / 12`` (James, Demaree & Wolf, 1984): the expected variance of ratings when every one of
    the ``A`` options is equally likely, e.g. 2.0 for A = 5. Units: squared scale points. Raises
    :class:`AgreementInputError` unless A >= 2.
    """
    a = _check_n_options(n_options)
    return (a * a - 1) / 12


def _probability_variance(probabilities: Sequence[float], n_options: int) -> float:
    p = np.asarray(probabilities, dtype=float)
    if p.shape != (n_options,):
        raise AgreementInputError(f"a null probability vector needs one probability per option ({n_options}), got "
                                  f"shape {p.shape}")
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise AgreementInputError(f"null probabilities must be finite and >= 0, got {p.tolist()}")
    if abs(p.sum() - 1) > _PROBABILITY_TOLERANCE:
        raise AgreementInputError(f"null probabilities must sum to 1, got sum {p.sum():.6g}")
    options = np.arange(1, n_options + 1)
    return float(p @ (options - p @ options) ** 2)


def null_variance(n_options: int, null: NullSpec = "uniform") -> float:
    """Expected error variance sigma_E^2 of ratings under a null ("no agreement") distribution.

    ``null`` is one of

    * ``"uniform"``: ``(A^2 - 1) / 12`` (James, Demaree & Wolf, 1984);
    * a named 5-point null of LeBreton & Senter (2008), given as probabilities of options 1..5, whose variance
      ``sum_a p_a (a - mu)^2`` is computed here: ``"slight_skew"`` (.05,.15,.20,.35,.25) -> 1.34, ``"moderate_skew"``
      (0,.10,.15,.40,.35) -> 0.90, ``"heavy_skew"`` (0,0,.10,.40,.50) -> 0.44, ``"triangular"`` (.11,.22,.34,.22,.11)
      -> 1.32, ``"normal"`` (.07,.24,.38,.24,.07) -> 1.04;
    * a probability vector of length ``A`` (non-negative, summing to 1 within 1e-6) for options 1..A -> its variance;
    * a positive number -> used as the variance as is.

    Units: squared scale points. Raises :class:`AgreementInputError` for an unknown name, a named null with ``A != 5``,
    a bad probability vector, or a non-positive variance.
    """
    a = _check_n_options(n_options)
    if isinstance(null, str):
        if null == "uniform":
            return uniform_null_variance(a)
        if null not in NAMED_NULLS:
            raise AgreementInputError(f"unknown null {null!r}; use 'uniform' or one of {sorted(NAMED_NULLS)}")
        if a != 5:
            raise AgreementInputError(f"the named null {null!r} (LeBreton & Senter 2008) is defined only for 5-point "
                                      f"scales, got n_options={a}; pass a probability vector of length {a} instead")
        return _probability_variance(NAMED_NULLS[null], a)
    if isinstance(null, (int, float)) or np.ndim(null) == 0:
        if isinstance(null, bool) or not isinstance(null, Real) or not np.isfinite(null) or null <= 0:
            raise AgreementInputError(f"a null variance given as a number must be positive and finite, got {null!r}")
        return float(null)
    return _probability_variance(null, a)


def _usable_items(x: ArrayLike, ndims: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """The items (columns; a 1-D ``x`` is one item) of ``x`` that have at least two non-missing ratings."""
    items = _as_ratings(x, ndims)
    items = items[:, None] if items.ndim == 1 else items
    return items[:, np.sum(~np.isnan(items), axis=0) >= 2]


def _variance_ratio(x: ArrayLike, ndims: tuple[int, ...], n_options: int, null: NullSpec) -> tuple[float, int]:
    """``s̄² / σ²_E`` and the number J of usable items of ``x``; (NaN, 0) when no item is usable. ``s̄²``: mean over
    the usable items of each item's sample variance (ddof=1, own non-missing values); ``σ²_E = null_variance(n_options,
    null)``."""
    sigma2 = null_variance(n_options, null)
    items = _usable_items(x, ndims)
    if items.shape[1] == 0:
        return np.nan, 0
    return float(np.mean(np.nanvar(items, axis=0, ddof=1))) / sigma2, items.shape[1]


def rwg(x: ArrayLike, n_options: int, null: NullSpec = "uniform") -> float:
    """Single-item within-group agreement r_wg (James, Demaree & Wolf, 1984).

    ``r_wg = 1 - s^2 / sigma_E^2`` with ``s^2`` the sample variance (ddof=1) of the non-missing ratings ``x`` (shape
    ``(n_raters,)``) and ``sigma_E^2 = null_variance(n_options, null)``. As in ``multilevel::rwg``, ``s^2 > sigma_E^2``
    is truncated to ``sigma_E^2`` so that r_wg lies in [0, 1]. NaN when fewer than two ratings. Dimensionless.
    """
    ratio, _ = _variance_ratio(x, (1,), n_options, null)
    return 1 - min(ratio, 1.0)


def rwg_j(X: ArrayLike, n_options: int, null: NullSpec = "uniform") -> float:
    """Multi-item within-group agreement r_wg(J) (James, Demaree & Wolf, 1984).

    ``r_wg(J) = J (1 - s̄²/σ²) / (J (1 - s̄²/σ²) + s̄²/σ²)`` where ``X`` has shape ``(n_raters, J)``, ``s̄²`` is the
    mean over items of each item's sample variance (ddof=1, each item using its own non-missing ratings), ``σ² =
    null_variance(n_options, null)``, and ``s̄² > σ²`` is truncated to ``σ²`` (``multilevel::rwg.j``), so the index
    lies in [0, 1]. Items with fewer than two ratings are left out and J counts the items used. NaN when no item has
    two ratings (in particular with fewer than two raters).
    """
    ratio, n_items = _variance_ratio(X, (2,), n_options, null)
    ratio = min(ratio, 1.0)
    return n_items * (1 - ratio) / (n_items * (1 - ratio) + ratio)


def rwg_star_j(X: ArrayLike, n_options: int, null: NullSpec = "uniform") -> float:
    """Lindell & Brandt's (1999) multi-item agreement r*_wg(j) (Lindell, Brandt & Whitney, 1999).

    ``r*_wg(j) = 1 - s̄² / σ²_E`` with ``X`` of shape ``(n_raters, J)``, ``s̄²`` the mean item variance (ddof=1,
    per-item non-missing ratings) and ``σ²_E = null_variance(n_options, null)``. Not truncated: negative when the
    ratings vary more than under the null (``multilevel::rwg.j.lindell``). Items with fewer than two ratings are left
    out; NaN when none is left (in particular with fewer than two raters).
    """
    return 1 - _variance_ratio(X, (2,), n_options, null)[0]


def _item_awg(items: np.ndarray, low: float, high: float) -> np.ndarray:
    """a_wg of every column of ``items`` (each with >= 2 non-missing ratings); NaN where undefined."""
    k = np.sum(~np.isnan(items), axis=0)
    total = np.nansum(items, axis=0)
    mean = total / k
    max_variance = ((high + low) * mean - mean**2 - high * low) * k / (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 1 - 2 * np.nanvar(items, axis=0, ddof=1) / max_variance
    # Mean-range conditions compared on sums so that integer ratings compare exactly.
    too_extreme = (total < low * (k - 1) + high) | (total > high * (k - 1) + low)
    at_endpoint = (total == k * high) | (total == k * low)
    return np.where(at_endpoint, 1.0, np.where(too_extreme, np.nan, value))


def awg(x: ArrayLike, scale_range: tuple[float, float]) -> float:
    """Brown & Hauenstein's (2005) a_wg: agreement relative to the maximum possible variance.

    For one item with ``k`` non-missing ratings, mean ``M`` and sample variance ``s^2``
    (ddof=1) on a scale from ``L`` to ``H`` (``scale_range = (L, H)``)::

        a_wg = 1 - 2 s^2 / ( ((H + L) M - M^2 - H L) * k / (k - 1) )

    ``x`` of shape ``(n_raters,)`` gives the item's a_wg; ``x`` of shape ``(n_raters, J)`` gives the mean over items of
    the item a_wg(j), ignoring items where it is undefined (NaN when it is undefined for all). Edge cases as
    ``multilevel::awg``: NaN when ``k < 2``; NaN when ``M < (L(k-1) + H)/k`` or ``M > (H(k-1) + L)/k`` (the mean is too
    close to an endpoint for the maximum variance to be attainable); 1 when ``M == H`` or ``M == L`` (complete agreement
    at an endpoint). Range [-1, 1]. Raises :class:`AgreementInputError` for a bad scale_range or ratings outside it.
    """
    low, high = _check_scale_range(scale_range)
    items = _as_ratings(x)
    _check_within_scale(items, low, high)
    item_values = _item_awg(_usable_items(items), low, high)
    defined = item_values[~np.isnan(item_values)]
    return float(defined.mean()) if defined.size else np.nan


def ad_index(x: ArrayLike, center: str = "mean") -> float:
    """Average deviation index AD_M / AD_Md (Burke, Finkelstein & Dusig, 1999).

    For one item with ``k`` non-missing ratings: ``AD = sum_i |x_i - c| / k`` where ``c`` is the item mean
    (``center="mean"``, AD_M) or median (``center="median"``, AD_Md). ``x`` of shape ``(n_raters,)`` gives the item
    AD; shape ``(n_raters, J)`` gives the mean over items of the item AD (AD_M(J)), items with fewer than two ratings
    left out. NaN when no item has two ratings (fewer than two raters), as ``multilevel::ad.m``. Units: scale points;
    0 is perfect agreement. Compare with :func:`ad_cutoff`.
    """
    if center not in _AD_CENTERS:
        raise AgreementInputError(f"center must be one of {list(_AD_CENTERS)}, got {center!r}")
    items = _usable_items(x)
    if items.shape[1] == 0:
        return np.nan
    deviations = np.abs(items - _AD_CENTERS[center](items, axis=0))
    return float(np.mean(np.nanmean(deviations, axis=0)))


def ad_cutoff(n_options: int) -> float:
    """Practical upper limit ``A / 6`` for AD indicating agreement (Burke & Dunlap, 2002).

    E.g. 0.83 for a 5-point and 1.17 for a 7-point scale; units: scale points.
    """
    return _check_n_options(n_options) / 6


@dataclass(frozen=True)
class AgreementIndex:
    """One agreement index of the tables: its column ``name``, the array-level ``function`` computing it from one
    group's ratings, and what that function needs.

    ``items``: ``"single"`` (one item; ``function`` gets the ``(n_raters,)`` ratings), ``"multi"`` (J >= 2 items) or
    ``"any"`` (both; ``function`` gets ``(n_raters, J)``). ``null``: ``function(ratings, n_options, null_variance)``
    (the r_wg family); ``scale_range``: ``function(ratings, (low, high))``; neither: ``function(ratings)``. ``summary``:
    reported as a per-session median in ``lcbayes report``'s data section; ``label``: its name in help texts.
    """

    name: str
    function: Callable[..., float]
    items: Literal["single", "multi", "any"] = "any"
    null: bool = False
    scale_range: bool = False
    summary: bool = True
    label: str = ""

    def applies_to(self, n_items: int) -> bool:
        """Whether the index is defined for a measure of ``n_items`` items."""
        return self.items == "any" or (self.items == "single") == (n_items == 1)

    def __call__(self, ratings: np.ndarray, n_options: int, sigma2: float, scale_range: tuple[float, float]) -> float:
        """The index of one group's ``(n_raters, J)`` ratings; ``sigma2`` is the null variance."""
        x = ratings[:, 0] if self.items == "single" else ratings
        if self.null:
            return self.function(x, n_options, sigma2)
        if self.scale_range:
            return self.function(x, scale_range)
        return self.function(x)


#: The agreement indices of :func:`agreement_table`, in column order: a new index is one
#: array-level function plus one entry here.
INDICES: dict[str, AgreementIndex] = {index.name: index for index in (
    AgreementIndex("rwg", rwg, "single", null=True, label="r_wg"),
    AgreementIndex("rwg_j", rwg_j, "multi", null=True, label="r_wg(J)"),
    AgreementIndex("rwg_star_j", rwg_star_j, "multi", null=True, label="r*_wg(J)"),
    AgreementIndex("awg", awg, scale_range=True, label="a_wg"),
    AgreementIndex("ad_mean", partial(ad_index, center="mean"), label="AD_M"),
    AgreementIndex("ad_median", partial(ad_index, center="median"), summary=False, label="AD_Md"))}


def indices_for(n_items: int) -> list[AgreementIndex]:
    """The registered indices defined for a measure of ``n_items`` items, in column order."""
    return [index for index in INDICES.values() if index.applies_to(n_items)]


def index_labels(n_items: int | None = None) -> str:
    """The labels of the indices (for ``n_items`` items, or all), comma-separated, for help texts."""
    chosen = INDICES.values() if n_items is None else indices_for(n_items)
    return ", ".join(index.label or index.name for index in chosen)


@dataclass(frozen=True)
class ICCResult:
    """One-way random-effects ANOVA summary with ICC(1) and ICC(2) (see :func:`icc`)."""

    icc1: float
    icc2: float
    msb: float
    msw: float
    f: float
    df_between: int
    df_within: int
    p_value: float
    k: float
    n_groups: int
    n: int


def icc(values: ArrayLike, groups: Labels, group_size: str = "mean") -> ICCResult:
    """ICC(1) and ICC(2) from a one-way ANOVA of ``values`` by ``groups`` (Bliese, 2000).

    ``values`` and ``groups`` are 1-D of equal length ``(n,)``; pairs with a missing value
    or group are dropped. With ``G`` groups of sizes ``n_g`` and ``N = sum n_g``::

        MSB = sum_g n_g (ybar_g - ybar)^2 / (G - 1)
        MSW = sum_g sum_i (y_gi - ybar_g)^2 / (N - G)
        ICC(1) = (MSB - MSW) / (MSB + (k - 1) MSW)
        ICC(2) = (MSB - MSW) / MSB
        F = MSB / MSW  on (G - 1, N - G) df,  p = P(F_{G-1, N-G} > F)

    ``k`` is the group size: ``group_size="mean"`` uses ``N / G`` exactly as ``multilevel::ICC1``; ``group_size="k0"``
    uses ``k0 = (N - sum n_g^2 / N) / (G - 1)`` (Searle; Snijders & Bosker), the usual choice for unequal groups.
    Groups of any size are allowed, but at least two groups and one group with two members (N - G >= 1) are needed,
    else :class:`AgreementInputError`. ICC(1) can be negative; when MSW or MSB is 0 the ratios follow IEEE arithmetic
    (inf or NaN).
    """
    # imported here, not at import time: the CLI reads this module's registry for its help
    from scipy import stats

    if group_size not in _ICC_GROUP_SIZES:
        raise AgreementInputError(f"group_size must be one of {_ICC_GROUP_SIZES}, got {group_size!r}")
    y = _as_ratings(values, (1,))
    codes = pd.factorize(np.asarray(groups, dtype=object))[0]
    if codes.shape != y.shape:
        raise AgreementInputError(f"values and groups differ in length: {y.size} vs {codes.size}")
    keep = ~np.isnan(y) & (codes >= 0)
    y = y[keep]
    codes = np.unique(codes[keep], return_inverse=True)[1]
    sizes = np.bincount(codes)
    n, n_groups = y.size, sizes.size
    if n_groups < 2 or n - n_groups < 1:
        raise AgreementInputError("ICC needs at least 2 groups and at least one group with 2 or more members; got "
                                  f"{n_groups} group(s) and {n} non-missing value(s)")
    group_means = np.bincount(codes, weights=y) / sizes
    df_between, df_within = n_groups - 1, n - n_groups
    msb = np.float64(sizes @ (group_means - y.mean()) ** 2) / df_between
    msw = np.sum((y - group_means[codes]) ** 2) / df_within
    k = float(n / n_groups if group_size == "mean" else (n - np.sum(sizes**2) / n) / (n_groups - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        f = msb / msw
        icc1 = (msb - msw) / (msb + (k - 1) * msw)
        icc2 = (msb - msw) / msb
    return ICCResult(icc1=float(icc1), icc2=float(icc2), msb=float(msb), msw=float(msw), f=float(f),
                     df_between=df_between, df_within=df_within, p_value=float(stats.f.sf(f, df_between, df_within)),
                     k=k, n_groups=n_groups, n=n)


def _require_columns(df: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise AgreementInputError(f"columns not in the data frame: {missing}")


def _group_agreement(ratings: np.ndarray, n_options: int, sigma2: float, low: int, high: int) -> dict[str, float]:
    """Descriptives and the registered agreement indices (:data:`INDICES`) of one group's ``(n_raters, J)`` ratings."""
    answered = ratings[~np.all(np.isnan(ratings), axis=1)]
    rater_means = np.nanmean(answered, axis=1)
    n = rater_means.size
    row = {"n": n, "mean": float(rater_means.mean()) if n else np.nan,
           "sd": float(rater_means.std(ddof=1)) if n >= 2 else np.nan}
    for index in indices_for(ratings.shape[1]):
        row[index.name] = index(ratings, n_options, sigma2, (low, high))
    return row


def agreement_table(df: pd.DataFrame, columns: str | Sequence[str], by: str | Sequence[str],
                    scale_range: tuple[int, int], null: NullSpec = "uniform") -> pd.DataFrame:
    """Agreement indices for every group of a long-format (one row per rater) table.

    ``columns`` names one item (single-item indices) or the J items of one scale, already reverse-keyed; ``by`` names
    the grouping columns (e.g. ``["community", "session"]``); ``scale_range = (low, high)`` are integers and the scale
    has ``A = high - low + 1`` options; ``null`` is as in :func:`null_variance`.

    Returns one row per group, sorted by the group keys (rows with a missing key are dropped, as in
    ``DataFrame.groupby``), with the key columns and

    * ``n``: raters with at least one non-missing item; ``mean``: mean of the per-rater means of the available items;
      ``sd``: their SD (ddof=1, NaN when n < 2);
    * the registered indices (:data:`INDICES`) defined for the number of items; as registered, one item: ``rwg``,
      ``awg``, ``ad_mean``, ``ad_median``; several items: ``rwg_j``, ``rwg_star_j``, ``awg``, ``ad_mean``, ``ad_median``

    computed by :func:`rwg`, :func:`rwg_j`, :func:`rwg_star_j`, :func:`awg` and :func:`ad_index` on each group's
    ``(n_raters, J)`` rating matrix.
    """
    columns, by = _as_list(columns), _as_list(by)
    if not columns or not by:
        raise AgreementInputError("agreement_table needs at least one item column and one grouping column")
    _require_columns(df, columns + by)
    low, high = map(int, _check_scale_range(scale_range, integer=True))
    n_options = high - low + 1
    sigma2 = null_variance(n_options, null)
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise AgreementInputError(f"item columns must be numeric, got non-numeric {non_numeric}")
    _check_within_scale(df[columns].to_numpy(dtype=float), low, high)
    indices = [index.name for index in indices_for(len(columns))]
    rows = [dict(zip(by, keys, strict=True)) | _group_agreement(g.to_numpy(dtype=float), n_options, sigma2, low, high)
            for keys, g in df.groupby(by, sort=True)[columns]]
    return pd.DataFrame(rows, columns=[*by, "n", "mean", "sd", *indices])


def icc_table(df: pd.DataFrame, column: str, group: str, by: str | Sequence[str] | None = None,
              group_size: str = "mean") -> pd.DataFrame:
    """ICC(1), ICC(2) and their ANOVA (see :func:`icc`) of ``column`` by ``group``.

    One row per level of ``by`` (e.g. per session; sorted, missing keys dropped), with the ``by`` columns followed by
    the :class:`ICCResult` fields; a single row when ``by`` is None. A level without two groups and one group of two
    raises :class:`AgreementInputError` naming that level.
    """
    by = None if by is None else _as_list(by)
    _require_columns(df, [column, group] + (by or []))
    if by is None:
        return pd.DataFrame([asdict(icc(df[column], df[group], group_size))])
    rows = []
    for keys, sub in df.groupby(by, sort=True):
        level = dict(zip(by, keys, strict=True))
        try:
            rows.append(level | asdict(icc(sub[column], sub[group], group_size)))
        except AgreementInputError as err:
            raise AgreementInputError(f"at {level}: {err}") from err
    return pd.DataFrame(rows)


def climate_table(study: Study, measure: str, by: str | Sequence[str] = ("community", "session"),
                  null: NullSpec = "uniform") -> pd.DataFrame:
    """Climate table of a study: per group (default community x session) the level (mean, the climate *strength*), SD,
    n and the agreement indices of :func:`agreement_table`.

    Participant-level measures (traits) count each person once and are grouped by community only. A multi-item scale
    uses its reverse-keyed items (r_wg(J), r*_wg(J), a_wg, AD over items); a single-item variable needs a declared
    response ``range`` in the roles.
    """
    scale_range: tuple[int, int] | None
    if measure in study.roles.scales:
        items, scale_range = study.items[measure], study.roles.scales[measure].range
    elif measure in study.roles.variables:
        scale_range = study.roles.variables[measure].range
        if scale_range is None:
            raise AgreementInputError(f"variable '{measure}' has no response range, so agreement against a null "
                                      "distribution is undefined. Fix: declare range = [low, high] in the roles.")
        items = study.table[[measure]]
    else:
        raise AgreementInputError(
            f"'{measure}' is not a variable or scale of this study; known: {', '.join(study.roles.measures)}")
    by = _as_list(by)
    allowed = [c for c in ("community", "organization", "session") if c in study.table]
    reject_unknown(by, allowed, "grouping column (--by)",
                   "; group by the ids of the raters' groups, not by participant (agreement is among participants)")
    frame = pd.concat([study.table[by + ["participant"]], items], axis=1)
    if study.roles.level_of(measure) == "participant":
        if "session" in by:
            raise AgreementInputError(
                f"'{measure}' is participant-level (one value per person); group it by community only.")
        frame = frame.groupby("participant", sort=False).first()  # one rating per person, not per row
    return agreement_table(frame, list(items.columns), by, scale_range, null)


def study_icc(study: Study, measure: str, by: str | Sequence[str] | None = "session",
              group_size: str = "mean") -> pd.DataFrame:
    """ICC(1) and ICC(2) of a measure's scores with communities as groups, per session by default."""
    study.roles.level_of(measure)  # an unknown name: UnknownMeasureError listing the known ones
    return icc_table(study.table, measure, "community", by, group_size)


def per_session(table: pd.DataFrame) -> pd.DataFrame:
    """The median over communities, per session, of the mean, SD and each registered index that summarises a group
    (:data:`INDICES` with ``summary``) in a :func:`climate_table`: session x statistic."""
    summarised = ["mean", "sd"] + [i.name for i in INDICES.values() if i.summary and i.name in table]
    return table.groupby("session")[summarised].median()
