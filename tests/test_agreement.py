"""Agreement / aggregation indices checked against hand arithmetic on tiny data sets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lcbayes.agreement import (
    AgreementInputError,
    ICCResult,
    ad_cutoff,
    ad_index,
    agreement_table,
    awg,
    icc,
    icc_table,
    null_variance,
    rwg,
    rwg_j,
    rwg_star_j,
    uniform_null_variance,
)
from lcbayes.errors import LcbayesError

approx = lambda value: pytest.approx(value, abs=1e-6)  # noqa: E731
nan = np.nan

# Five raters on a 5-point item: mean 4, deviations -1,0,0,1,0, SS = 2, var = 2/4 = 0.5.
FIVE_RATERS = [3, 4, 4, 5, 4]

# Four raters x three items with different item variances:
#   item 1: 3,3,4,4  mean 3.5  SS = 4 * 0.25 = 1  var = 1/3
#   item 2: 2,4,3,3  mean 3    SS = 1+1+0+0 = 2   var = 2/3
#   item 3: 1,3,5,3  mean 3    SS = 4+0+4+0 = 8   var = 8/3
#   s-bar^2 = (1/3 + 2/3 + 8/3) / 3 = 11/9;  s-bar^2 / 2 = 11/18
THREE_ITEMS = np.array([[3, 2, 1], [3, 4, 3], [4, 3, 5], [4, 3, 3]], dtype=float)


# --------------------------------------------------------------------------- null variances


def test_uniform_null_variance():
    assert uniform_null_variance(5) == approx(2.0)  # (25 - 1) / 12 = 2
    assert uniform_null_variance(7) == approx(4.0)  # (49 - 1) / 12 = 4
    assert uniform_null_variance(2) == approx(0.25)  # (4 - 1) / 12 = 0.25
    assert null_variance(7) == approx(4.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # mean = .05+.30+.60+1.40+1.25 = 3.6; E[x^2] = .05+.60+1.80+5.60+6.25 = 14.3; 14.3 - 12.96 = 1.34
        ("slight_skew", 1.34),
        # mean = .20+.45+1.60+1.75 = 4.0; E[x^2] = .40+1.35+6.40+8.75 = 16.9; 16.9 - 16 = 0.90
        ("moderate_skew", 0.90),
        # mean = .30+1.60+2.50 = 4.4; E[x^2] = .90+6.40+12.50 = 19.8; 19.8 - 19.36 = 0.44
        ("heavy_skew", 0.44),
        # mean = .11+.44+1.02+.88+.55 = 3; E[x^2] = .11+.88+3.06+3.52+2.75 = 10.32; 10.32 - 9 = 1.32
        ("triangular", 1.32),
        # mean = .07+.48+1.14+.96+.35 = 3; E[x^2] = .07+.96+3.42+3.84+1.75 = 10.04; 10.04 - 9 = 1.04
        ("normal", 1.04),
    ],
)
def test_named_null_variances(name, expected):
    assert null_variance(5, name) == approx(expected)


def test_user_null_probabilities_and_variance():
    # options 1..3 with p = (.25, .5, .25): mean 2, var = .25*1 + 0 + .25*1 = 0.5
    assert null_variance(3, [0.25, 0.5, 0.25]) == approx(0.5)
    assert null_variance(3, np.array([0.25, 0.5, 0.25])) == approx(0.5)
    assert null_variance(5, 1.7) == approx(1.7)  # a positive number is used as is
    # a uniform probability vector reproduces (A^2 - 1)/12 = 2 for A = 5
    assert null_variance(5, [0.2] * 5) == approx(2.0)


@pytest.mark.parametrize(
    ("n_options", "null", "message"),
    [
        (7, "slight_skew", "only for 5-point"),
        (5, "lumpy", "unknown null"),
        (5, [0.2, 0.2, 0.2, 0.2, 0.1], "sum to 1"),
        (5, [0.5, 0.5], "one probability per option"),
        (3, [1.2, -0.1, -0.1], ">= 0"),
        (5, 0.0, "positive"),
        (5, -1.0, "positive"),
        (1, "uniform", "integer >= 2"),
        (5.0, "uniform", "integer >= 2"),
    ],
)
def test_null_variance_rejects_bad_arguments(n_options, null, message):
    with pytest.raises(ValueError, match=message):
        null_variance(n_options, null)


def test_errors_are_lcbayes_value_errors():
    assert issubclass(AgreementInputError, LcbayesError) and issubclass(AgreementInputError, ValueError)
    with pytest.raises(AgreementInputError):
        null_variance(7, "normal")


# --------------------------------------------------------------------------- r_wg family


def test_rwg_five_raters():
    assert rwg(FIVE_RATERS, 5) == approx(0.75)  # var = 0.5; 1 - 0.5/2 = 0.75
    # slight-skew null: 1 - 0.5/1.34 = 0.626865672
    assert rwg(FIVE_RATERS, 5, "slight_skew") == approx(1 - 0.5 / 1.34)
    assert rwg(FIVE_RATERS, 5, 1.0) == approx(0.5)  # 1 - 0.5/1 = 0.5


def test_rwg_truncates_variance_above_null():
    # 1,5,1,5: mean 3, SS = 4*4 = 16, var = 16/3 = 5.33 > 2 -> capped at 2 -> 1 - 2/2 = 0
    assert rwg([1, 5, 1, 5], 5) == approx(0.0)


def test_rwg_ignores_missing_and_needs_two_raters():
    assert math.isnan(rwg([4], 5))
    assert math.isnan(rwg([4, nan, nan], 5))
    assert math.isnan(rwg([], 5))
    assert rwg([3, nan, 4, 4, 5, 4], 5) == approx(0.75)  # NaN dropped -> same as FIVE_RATERS
    assert rwg([4, 4, 4], 5) == approx(1.0)  # var 0 -> 1


def test_rwg_j_three_items_with_different_variances():
    # ratio = 11/18; J(1 - ratio) = 3 * 7/18 = 21/18; rwg(J) = (21/18) / (21/18 + 11/18) = 21/32 = 0.65625
    assert rwg_j(THREE_ITEMS, 5) == approx(21 / 32)


def test_rwg_star_j_three_items():
    assert rwg_star_j(THREE_ITEMS, 5) == approx(7 / 18)  # 1 - 11/18 = 7/18 = 0.388889


def test_rwg_star_j_negative_and_rwg_j_truncated():
    X = [[1, 5], [5, 1], [1, 5], [5, 1]]
    # both items 1,5,1,5: var 16/3; s-bar^2 = 16/3; 1 - (16/3)/2 = -5/3
    assert rwg_star_j(X, 5) == approx(-5 / 3)
    # r_wg(J) caps s-bar^2 at 2: ratio 1 -> J*0 / (J*0 + 1) = 0
    assert rwg_j(X, 5) == approx(0.0)


def test_rwg_j_missing_item_value_handled_per_item():
    X = THREE_ITEMS.copy()
    X[1, 2] = nan
    # item 3 now 1,5,3: mean 3, SS = 4+4+0 = 8, var = 8/2 = 4 (items 1, 2 keep 1/3, 2/3)
    # s-bar^2 = (1/3 + 2/3 + 4)/3 = 5/3; ratio = 5/6
    # rwg(J) = 3*(1/6) / (3*(1/6) + 5/6) = 0.5 / (4/3) = 0.375 (listwise deletion would give 0.5625)
    assert rwg_j(X, 5) == approx(0.375)
    assert rwg_star_j(X, 5) == approx(1 / 6)  # 1 - 5/6


def test_rwg_j_edge_cases():
    assert math.isnan(rwg_j([[3, 4]], 5))  # one rater
    assert math.isnan(rwg_star_j([[3, 4], [nan, nan]], 5))  # one rater with any rating
    # an item with a single rating is left out: only item 1 (3, 5: var 2) counts, J = 1
    # rwg(J) = 1*(1 - 1) / (0 + 1) = 0;  r* = 1 - 2/2 = 0
    assert rwg_j([[3, nan], [5, 4]], 5) == approx(0.0)
    # J = 1 reduces r_wg(J) to r_wg
    assert rwg_j(np.array(FIVE_RATERS, dtype=float)[:, None], 5) == approx(0.75)


def test_rwg_shape_checks():
    with pytest.raises(ValueError, match="1-D"):
        rwg(THREE_ITEMS, 5)
    with pytest.raises(ValueError, match="2-D"):
        rwg_j(FIVE_RATERS, 5)
    with pytest.raises(ValueError, match="only for 5-point"):
        rwg_j(THREE_ITEMS, 7, "normal")


# --------------------------------------------------------------------------- a_wg


def test_awg_normal_case():
    # k = 5, M = 4, s^2 = 0.5; bounds (1*4 + 5)/5 = 1.8 <= M <= (5*4 + 1)/5 = 4.2
    # max var = ((5+1)*4 - 16 - 5) * 5/4 = 3 * 1.25 = 3.75; a_wg = 1 - 2*0.5/3.75 = 0.733333
    assert awg(FIVE_RATERS, (1, 5)) == approx(1 - 1 / 3.75)


def test_awg_mean_out_of_range_is_nan():
    # k = 4, M = 4.75 > (5*3 + 1)/4 = 4 -> NaN
    assert math.isnan(awg([5, 5, 5, 4], (1, 5)))
    # k = 4, M = 1.25 < (1*3 + 5)/4 = 2 -> NaN
    assert math.isnan(awg([1, 1, 1, 2], (1, 5)))


def test_awg_mean_at_bound_is_defined():
    # k = 3, M = 11/3 = (5*2 + 1)/3 exactly (not above it); s^2 = 1/3 (3,4,4)
    # max var = (6*11/3 - 121/9 - 5) * 3/2 = (32/9) * 3/2 = 16/3; 1 - 2*(1/3)/(16/3) = 0.875
    assert awg([3, 4, 4], (1, 5)) == approx(0.875)


def test_awg_endpoints_and_small_groups():
    assert awg([5, 5, 5], (1, 5)) == approx(1.0)  # M == H -> 1
    assert awg([1, 1], (1, 5)) == approx(1.0)  # M == L -> 1
    assert math.isnan(awg([3], (1, 5)))  # k < 2
    assert math.isnan(awg([3, nan], (1, 5)))


def test_awg_multi_item_mean_of_defined_items():
    X = np.column_stack([FIVE_RATERS, [5, 5, 5, 5, 4], [2, 3, 3, 3, 4]])
    # item 1: 0.733333 (above); item 2: M = 4.8 > 4.2 -> NaN (ignored)
    # item 3: M = 3, s^2 = 2/4 = 0.5, max var = (18 - 9 - 5) * 5/4 = 5, a = 1 - 1/5 = 0.8
    # a_wg(J) = (0.733333 + 0.8) / 2 = 0.766667
    assert awg(X, (1, 5)) == approx((1 - 1 / 3.75 + 0.8) / 2)
    assert math.isnan(awg([[5, 5], [5, 4], [4, 5], [5, 5]], (1, 5)))  # M = 4.75 on both items


def test_awg_bad_arguments():
    with pytest.raises(ValueError, match="low < high"):
        awg(FIVE_RATERS, (5, 1))
    with pytest.raises(ValueError, match="low < high"):
        awg(FIVE_RATERS, (3, 3))
    with pytest.raises(ValueError, match="pair"):
        awg(FIVE_RATERS, (1, 3, 5))
    with pytest.raises(ValueError, match="outside scale_range"):
        awg([1, 6, 3], (1, 5))


# --------------------------------------------------------------------------- AD


def test_ad_mean_and_median():
    x = [1, 2, 2, 3, 5]
    # mean 2.6: |dev| = 1.6, .6, .6, .4, 2.4; sum 5.6; 5.6/5 = 1.12
    assert ad_index(x) == approx(1.12)
    # median 2: |dev| = 1, 0, 0, 1, 3; sum 5; 5/5 = 1.0
    assert ad_index(x, center="median") == approx(1.0)


def test_ad_multi_item_and_missing():
    X = np.column_stack([[1, 2, 2, 3, 5], [2, 2, 2, 2, 2]]).astype(float)
    assert ad_index(X) == approx(0.56)  # (1.12 + 0) / 2
    assert ad_index(X, "median") == approx(0.5)  # (1.0 + 0) / 2
    # missing values handled per item: item 1 keeps 1,2,5 (k = 3), item 2 keeps all five 2s (AD 0)
    X[[1, 3], 0] = nan
    # item 1 mean 8/3: |dev| = 5/3, 2/3, 7/3; sum 14/3; /3 = 14/9 -> (14/9 + 0)/2 = 7/9
    assert ad_index(X) == approx(7 / 9)
    # item 1 median 2: |dev| = 1, 0, 3; sum 4; /3 = 4/3 -> (4/3 + 0)/2 = 2/3
    assert ad_index(X, "median") == approx(2 / 3)


def test_ad_median_even_count():
    # median of 1,2,4,5 = 3: |dev| = 2, 1, 1, 2; sum 6; 6/4 = 1.5
    assert ad_index([1, 2, 4, 5], "median") == approx(1.5)


def test_ad_edge_cases_and_cutoff():
    assert math.isnan(ad_index([3]))
    assert math.isnan(ad_index([[3, 4], [nan, nan]]))
    assert ad_cutoff(5) == approx(5 / 6)  # 0.833333
    assert ad_cutoff(7) == approx(7 / 6)  # 1.166667
    with pytest.raises(ValueError, match="center"):
        ad_index([1, 2], center="mode")


# --------------------------------------------------------------------------- ICC

# Groups of 2, 3 and 4: A = 1,3 (mean 2); B = 4,5,6 (mean 5); C = 2,4,6,8 (mean 5)
# N = 9, grand mean = (4 + 15 + 20)/9 = 13/3
# SSB = 2*(2 - 13/3)^2 + 3*(5 - 13/3)^2 + 4*(5 - 13/3)^2 = 98/9 + 12/9 + 16/9 = 14
# SSW = (1 + 1) + (1 + 0 + 1) + (9 + 1 + 1 + 9) = 24
# MSB = 14/2 = 7; MSW = 24/6 = 4; F = 7/4 = 1.75
ICC_Y = [1, 3, 4, 5, 6, 2, 4, 6, 8]
ICC_G = ["A", "A", "B", "B", "B", "C", "C", "C", "C"]


def test_icc_unequal_groups_by_hand():
    res = icc(ICC_Y, ICC_G)
    assert isinstance(res, ICCResult)
    assert (res.msb, res.msw, res.f) == (approx(7.0), approx(4.0), approx(1.75))
    assert (res.df_between, res.df_within, res.n_groups, res.n) == (2, 6, 3, 9)
    assert res.k == approx(3.0)  # N/G = 9/3
    assert res.icc1 == approx(0.2)  # (7 - 4) / (7 + (3 - 1)*4) = 3/15
    assert res.icc2 == approx(3 / 7)  # (7 - 4) / 7 = 0.428571
    # F(2, d2) survival function = (d2 / (d2 + 2F))^(d2/2) = (6/9.5)^3 = (12/19)^3 = 0.251932
    assert res.p_value == approx((12 / 19) ** 3)


def test_icc_k0():
    res = icc(ICC_Y, ICC_G, group_size="k0")
    # k0 = (9 - (4 + 9 + 16)/9) / 2 = (52/9)/2 = 26/9 = 2.888889
    assert res.k == approx(26 / 9)
    # ICC(1) = 3 / (7 + (17/9)*4) = 3 / (131/9) = 27/131 = 0.206107
    assert res.icc1 == approx(27 / 131)
    assert res.icc2 == approx(3 / 7)  # does not depend on k


def test_icc_matches_statsmodels_anova():
    smf = pytest.importorskip("statsmodels.formula.api")
    anova_lm = pytest.importorskip("statsmodels.stats.anova").anova_lm
    data = pd.DataFrame({"y": ICC_Y, "g": ICC_G})
    table = anova_lm(smf.ols("y ~ C(g)", data).fit())
    res = icc(data["y"], data["g"])
    assert res.msb == approx(table.loc["C(g)", "mean_sq"])
    assert res.msw == approx(table.loc["Residual", "mean_sq"])
    assert res.f == approx(table.loc["C(g)", "F"])
    assert res.p_value == approx(table.loc["C(g)", "PR(>F)"])
    assert (res.df_between, res.df_within) == (table.loc["C(g)", "df"], table.loc["Residual", "df"])


def test_icc_drops_missing_and_allows_singleton_groups():
    y = ICC_Y + [nan, 7.0]
    g = ICC_G + ["A", None]
    assert icc(y, g) == icc(ICC_Y, ICC_G)
    # singleton group D = 5 allowed: G = 4, N = 10
    res = icc(ICC_Y + [5], ICC_G + ["D"])
    # grand mean = 44/10 = 4.4; SSB = 2*2.4^2 + 3*.6^2 + 4*.6^2 + 1*.6^2 = 11.52 + 2.88 = 14.4
    # MSB = 14.4/3 = 4.8; MSW = 24/6 = 4 (singleton adds no within SS or df)
    assert (res.msb, res.msw, res.n_groups, res.df_within) == (approx(4.8), approx(4.0), 4, 6)


def test_icc_bad_input():
    with pytest.raises(ValueError, match="at least 2 groups"):
        icc([1, 2, 3], ["a", "a", "a"])
    with pytest.raises(ValueError, match="at least one group with 2"):
        icc([1, 2, 3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="group_size"):
        icc(ICC_Y, ICC_G, group_size="harmonic")
    with pytest.raises(ValueError, match="differ in length"):
        icc([1, 2, 3], ["a", "b"])


def test_icc_table():
    df = pd.DataFrame(
        {
            "y": ICC_Y + [2, 4, 3, 5],
            "team": ICC_G + ["A", "A", "B", "B"],
            "session": [1] * 9 + [2] * 4,
        }
    )
    overall = icc_table(df[df.session == 1], "y", "team")
    assert len(overall) == 1 and overall.loc[0, "icc1"] == approx(0.2)
    per = icc_table(df, "y", "team", by="session", group_size="k0")
    assert per["session"].tolist() == [1, 2]
    assert per.loc[0, "icc1"] == approx(27 / 131)
    # session 2: A = 2,4 (mean 3), B = 3,5 (mean 4); grand 3.5; SSB = 2*.25*2 = 1; SSW = 2 + 2 = 4
    # MSB = 1, MSW = 4/2 = 2, F = 0.5; k = 2; ICC(1) = (1 - 2)/(1 + 2) = -1/3; ICC(2) = -1
    assert (per.loc[1, "f"], per.loc[1, "icc1"], per.loc[1, "icc2"]) == (approx(0.5), approx(-1 / 3), approx(-1.0))
    assert set(ICCResult.__dataclass_fields__) <= set(per.columns)
    bad = pd.concat([df, pd.DataFrame({"y": [1.0], "team": ["A"], "session": [3]})])
    with pytest.raises(ValueError, match="session"):
        icc_table(bad, "y", "team", by="session")


# --------------------------------------------------------------------------- agreement_table


@pytest.fixture
def two_by_two() -> pd.DataFrame:
    rows = [
        # team, session, q1, q2
        ("B", 2, 1, 2),
        ("A", 1, 4, 3),
        ("A", 2, 2, 2),
        ("B", 1, 5, 5),
        ("A", 1, 4, 4),
        ("B", 2, 5, 4),
        ("A", 2, 3, 2),
        ("B", 1, 5, 4),
        ("A", 1, 5, 4),
        ("B", 2, 3, 3),
        ("A", 2, nan, 3),  # missing item value: q1 of team A session 2 has 2 ratings
        ("B", 1, 5, 5),
        ("B", 2, nan, nan),  # rater with no ratings: not counted in n
    ]
    return pd.DataFrame(rows, columns=["team", "session", "q1", "q2"])


def test_agreement_table_scale_by_hand(two_by_two):
    table = agreement_table(two_by_two, ["q1", "q2"], ["team", "session"], (1, 5))
    assert list(table.columns) == [
        "team", "session", "n", "mean", "sd", "rwg_j", "rwg_star_j", "awg", "ad_mean", "ad_median"
    ]  # fmt: skip
    assert list(zip(table.team, table.session, strict=True)) == [("A", 1), ("A", 2), ("B", 1), ("B", 2)]
    assert table["n"].tolist() == [3, 3, 3, 3]
    a1 = table.iloc[0]
    # A/1: q1 = 4,4,5 and q2 = 3,4,4, each var 1/3 -> s-bar^2 = 1/3, ratio 1/6
    # rater means 3.5, 4, 4.5 -> mean 4, sd sqrt(0.5/2) = 0.5
    assert (a1["mean"], a1["sd"]) == (approx(4.0), approx(0.5))
    assert a1["rwg_j"] == approx(10 / 11)  # 2*(5/6) / (2*(5/6) + 1/6)
    assert a1["rwg_star_j"] == approx(5 / 6)  # 1 - 1/6
    # a_wg: q1 M = 13/3 > 11/3 -> NaN; q2 M = 11/3 (at bound) -> 0.875 (see test above)
    assert a1["awg"] == approx(0.875)
    assert a1["ad_mean"] == approx(4 / 9)  # each item |dev| 1/3,1/3,2/3 -> 4/3 / 3 = 4/9
    assert a1["ad_median"] == approx(1 / 3)  # each item median 4: |dev| 0,0,1 -> 1/3
    a2 = table.iloc[1]
    # A/2: q1 = 2,3 (var 0.5), q2 = 2,2,3 (var 1/3); s-bar^2 = 5/12; r* = 1 - 5/24 = 19/24
    # rater means 2, 2.5, 3 -> mean 2.5, sd 0.5
    assert (a2["mean"], a2["sd"], a2["rwg_star_j"]) == (approx(2.5), approx(0.5), approx(19 / 24))


def test_agreement_table_matches_array_functions(two_by_two):
    table = agreement_table(two_by_two, ["q1", "q2"], ["team", "session"], (1, 5), null="slight_skew")
    for _, row in table.iterrows():
        sub = two_by_two[(two_by_two.team == row.team) & (two_by_two.session == row.session)]
        X = sub[["q1", "q2"]].to_numpy(dtype=float)
        expected = {
            "rwg_j": rwg_j(X, 5, "slight_skew"),
            "rwg_star_j": rwg_star_j(X, 5, "slight_skew"),
            "awg": awg(X, (1, 5)),
            "ad_mean": ad_index(X, "mean"),
            "ad_median": ad_index(X, "median"),
        }
        for name, value in expected.items():
            assert row[name] == approx(value) or (math.isnan(row[name]) and math.isnan(value)), name


def test_agreement_table_single_item(two_by_two):
    table = agreement_table(two_by_two, ["q1"], ["team", "session"], (1, 5))
    assert list(table.columns) == ["team", "session", "n", "mean", "sd", "rwg", "awg", "ad_mean", "ad_median"]
    # A/2: q1 = 2,3 -> n 2; var 0.5; rwg = 1 - 0.5/2 = 0.75; AD_M = (.5 + .5)/2 = 0.5
    # a_wg: k = 2 allows only M = (1*1 + 5)/2 = (5*1 + 1)/2 = 3; M = 2.5 < 3 -> NaN
    a2 = table.iloc[1]
    assert (a2["n"], a2["rwg"], a2["ad_mean"]) == (2, approx(0.75), approx(0.5))
    assert math.isnan(a2["awg"])
    # B/1: q1 = 5,5,5 -> rwg 1, a_wg 1 (M == H), AD 0; sd 0
    b1 = table.iloc[2]
    assert (b1["rwg"], b1["awg"], b1["ad_mean"], b1["sd"]) == (approx(1.0), approx(1.0), approx(0.0), approx(0.0))
    # B/2: q1 = 1,5,3 -> var 4 > 2 -> rwg 0
    assert table.iloc[3]["rwg"] == approx(0.0)


def test_agreement_table_bad_arguments(two_by_two):
    with pytest.raises(ValueError, match="low < high"):
        agreement_table(two_by_two, ["q1"], ["team"], (5, 1))
    with pytest.raises(ValueError, match="integers"):
        agreement_table(two_by_two, ["q1"], ["team"], (1.5, 5))
    with pytest.raises(ValueError, match="not in the data frame"):
        agreement_table(two_by_two, ["q9"], ["team"], (1, 5))
    with pytest.raises(ValueError, match="outside scale_range"):
        agreement_table(two_by_two, ["q1"], ["team"], (1, 4))
    with pytest.raises(ValueError, match="only for 5-point"):
        agreement_table(two_by_two, ["q1"], ["team"], (1, 7), null="heavy_skew")
    with pytest.raises(ValueError, match="numeric"):
        agreement_table(two_by_two, ["team"], ["session"], (1, 5))


# --------------------------------------------------------------------------- the registry of indices


def test_a_registered_index_becomes_a_column(two_by_two, monkeypatch):
    """A new index is one function plus one registry entry: the table grows its column."""
    from lcbayes import agreement

    spread = agreement.AgreementIndex("range", lambda x: float(np.nanmax(x) - np.nanmin(x)), label="range")
    monkeypatch.setitem(agreement.INDICES, "range", spread)
    table = agreement_table(two_by_two, ["q1"], ["team", "session"], (1, 5))
    assert list(table.columns)[-1] == "range"
    assert table.iloc[3]["range"] == approx(4.0)          # B/2: q1 = 1,5,3
    assert "range" in agreement.index_labels()


def test_registry_declares_items_and_needs():
    from lcbayes.agreement import INDICES, indices_for

    assert [i.name for i in indices_for(1)] == ["rwg", "awg", "ad_mean", "ad_median"]
    assert [i.name for i in indices_for(3)] == ["rwg_j", "rwg_star_j", "awg", "ad_mean", "ad_median"]
    assert {n for n, i in INDICES.items() if i.null} == {"rwg", "rwg_j", "rwg_star_j"}
    assert {n for n, i in INDICES.items() if i.scale_range} == {"awg"}


def test_report_data_section_of_a_single_item_measure():
    """Defect D1: the report's per-session medians asked for rwg_j, rwg_star_j, which a
    single-item measure does not have (KeyError); they now follow the registry."""
    import tomllib
    import types
    from pathlib import Path

    from lcbayes.data.study import Study
    from lcbayes.report.build import data_section

    root = Path(__file__).resolve().parents[1]
    roles = tomllib.loads((root / "data" / "example_roles.toml").read_text())
    roles.setdefault("variables", {})["item"] = {"column": "climate_1", "range": [1, 5]}
    study = Study.from_path(root / "data" / "example_study.csv", roles)
    data = data_section(study, types.SimpleNamespace(measure="item", null="uniform"))
    per_session = data["agreement_per_session"]
    assert list(per_session.columns) == ["mean", "sd", "rwg", "awg", "ad_mean"]
    expected = data["agreement"].groupby("session")["rwg"].median()
    np.testing.assert_allclose(per_session["rwg"], expected)
    assert set(data["results"]["agreement_median_per_session"]["1"]) == {"mean", "sd", "rwg", "awg", "ad_mean"}
    scale = data_section(study, types.SimpleNamespace(measure="climate", null="uniform"))
    assert list(scale["agreement_per_session"].columns) == ["mean", "sd", "rwg_j", "rwg_star_j", "awg", "ad_mean"]

