"""Study data layer: building a validated study, its codes, and rejection of bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcbayes.data.roles import Roles
from lcbayes.data.study import Study
from lcbayes.errors import (
    ConfigError,
    LcbayesError,
    StudyValidationError,
    UnknownMeasureError,
)

ROLES = {
    "community": "lc",
    "participant": "pid",
    "session": "sess",
    "organization": "org",
    "time": "week",
    "variables": {"lgo": {"column": "lgo", "level": "participant"}, "support": "sup"},
    "scales": {"climate": {"items": ["c1", "c2", "c3"], "reverse": ["c3"], "range": [1, 5]}},
}


def small_table() -> pd.DataFrame:
    """3 communities x 3 participants x 3 sessions, complete, with varied responses."""
    rows = []
    for c in range(3):
        for p in range(3):
            for s in range(1, 4):
                k = c * 9 + p * 3 + s
                rows.append({
                    "lc": f"L{c}", "pid": f"L{c}-P{p}", "sess": s, "week": 4 * (s - 1) + c,
                    "org": f"O{(c + p) % 4}", "lgo": 3.0 + 0.5 * p - 0.2 * c, "sup": (k * 7) % 5 + 0.5,
                    "c1": 1 + (k * 3) % 5, "c2": 1 + (k * 2 + 1) % 5, "c3": 5 - (k % 5),
                })
    return pd.DataFrame(rows)


def problems_of(df: pd.DataFrame, roles=ROLES) -> str:
    with pytest.raises(StudyValidationError) as info:
        Study.from_frame(df, roles)
    return str(info.value)


def test_valid_study_codes_and_coords():
    df = small_table().sample(frac=1.0, random_state=3)  # shuffled rows are sorted back
    study = Study.from_frame(df, ROLES)
    assert study.n_obs == 27
    assert study.coords["community"] == ["L0", "L1", "L2"]
    assert study.coords["session"] == [1, 2, 3]
    assert study.n("organization") == 4
    t = study.table
    assert list(t[["participant", "session"]].itertuples(index=False, name=None))[:3] == [
        ("L0-P0", 1), ("L0-P0", 2), ("L0-P0", 3)]
    # codes point at their labels, row by row
    for role in ("community", "participant", "organization", "session"):
        labels = np.asarray(study.coords[role], dtype=object)[study.idx[role]]
        assert list(labels) == list(t[role])
    # participant -> community map agrees with the rows
    pc = study.participant_community
    assert pc.shape == (9,)
    assert np.array_equal(pc[study.idx["participant"]], study.idx["community"])
    assert np.array_equal(study.participant_organization[study.idx["participant"]], study.idx["organization"])
    # index keeps the user's row labels
    assert set(t.index) == set(df.index)


def test_scale_score_reverse_keys_and_prorates():
    df = small_table()
    df.loc[0, ["c1", "c2"]] = np.nan  # 1 of 3 items answered: below min_share 0.5 -> missing score
    df.loc[1, "c2"] = np.nan          # 2 of 3 answered: mean of the two keyed items
    study = Study.from_frame(df, ROLES)
    score = study.table["climate"]
    assert np.isnan(score.loc[0])
    assert score.loc[1] == pytest.approx((df.loc[1, "c1"] + (6 - df.loc[1, "c3"])) / 2)
    assert score.loc[2] == pytest.approx((df.loc[2, "c1"] + df.loc[2, "c2"] + 6 - df.loc[2, "c3"]) / 3)
    assert study.items["climate"].loc[2, "c3"] == 6 - df.loc[2, "c3"]


def test_participant_values_and_time():
    study = Study.from_frame(small_table(), ROLES)
    lgo = study.participant_values("lgo")
    assert lgo.loc["L1-P2"] == pytest.approx(3.0 + 1.0 - 0.2)
    assert study.table["time"].iloc[:3].tolist() == [0.0, 4.0, 8.0]
    with pytest.raises(ValueError, match="session-level"):
        study.participant_values("support")
    with pytest.raises(KeyError, match="not a variable or scale"):
        study.values("nonsense")


def test_unknown_measure_is_a_typed_error_naming_the_known_ones():
    study = Study.from_frame(small_table(), ROLES)
    with pytest.raises(UnknownMeasureError) as info:
        study.roles.level_of("climat")
    assert isinstance(info.value, LcbayesError) and isinstance(info.value, KeyError)
    message = str(info.value)
    assert message.startswith("'climat' is not a variable or scale of this study. Did you mean 'climate'?")
    assert "Variables: lgo, support; scales: climate." in message
    assert "Fix: " in message and "[variables] or [scales]" in message


def test_time_defaults_to_session():
    roles = {k: v for k, v in ROLES.items() if k != "time"}
    study = Study.from_frame(small_table(), roles)
    assert np.array_equal(study.table["time"].to_numpy(), study.table["session"].to_numpy().astype(float))


def test_reliability_per_session_and_pooled():
    study = Study.from_frame(small_table(), ROLES)
    rel = study.reliability()
    assert list(rel["session"]) == [1, 2, 3, "all"]
    assert list(rel["n"]) == [9, 9, 9, 27]
    from lcbayes.data.scoring import cronbach_alpha
    assert rel["alpha"].iloc[-1] == pytest.approx(cronbach_alpha(study.items["climate"]))


def test_unbalanced_panel_is_valid_and_summarised():
    df = small_table()
    # L0-P0 drops out after session 1; L1-P1 joins late (session 2); L2-P2 misses session 2
    drop = ((df.pid == "L0-P0") & (df.sess > 1)) | ((df.pid == "L1-P1") & (df.sess == 1)) | (
        (df.pid == "L2-P2") & (df.sess == 2))
    study = Study.from_frame(df[~drop], ROLES)
    summary = study.summary()
    assert (summary.dropouts, summary.late_joiners, summary.missed_sessions) == (1, 1, 1)
    assert summary.per_session["participants"].tolist() == [8, 7, 8]
    assert summary.per_session["joined"].tolist() == [8, 1, 0]
    assert summary.per_session["dropped"].tolist() == [1, 0, 0]
    assert summary.n_rows == 23
    text = str(summary)
    assert "late joiners: 1, dropouts: 1, missed sessions (gaps): 1" in text


def test_roles_round_trip_through_toml(tmp_path):
    roles = Roles.parse(ROLES)
    roles.to_toml(tmp_path / "roles.toml")
    assert Roles.from_toml(tmp_path / "roles.toml") == roles


def test_from_path_reads_csv_with_line_numbers(tmp_path):
    df = small_table()
    df.loc[4, "c1"] = 9
    df.to_csv(tmp_path / "study.csv", index=False)
    Roles.parse(ROLES).to_toml(tmp_path / "roles.toml")
    with pytest.raises(StudyValidationError) as info:
        Study.from_path(tmp_path / "study.csv", tmp_path / "roles.toml")
    assert "rows: 6" in str(info.value)  # table row 4 is line 6 of the file (header is line 1)


# ---------------------------------------------------------------- bad input, one test each


def test_missing_role_column():
    msg = problems_of(small_table().rename(columns={"lc": "LC"}))
    assert "column 'lc': mapped to community but not in the table" in msg
    assert "names differ in case" in msg
    assert "correct the column name in the roles mapping" in msg


def test_participant_in_two_communities():
    df = small_table()
    df.loc[(df.pid == "L0-P1") & (df.sess == 3), "lc"] = "L1"
    msg = problems_of(df)
    assert "1 participant(s) appear in more than one community (e.g. L0-P1)" in msg
    assert "make them unique" in msg
    assert "rows: 3, 4, 5" in msg


def test_duplicate_participant_session():
    df = pd.concat([small_table(), small_table().iloc[[4]]])
    msg = problems_of(df)
    assert "column 'sess': 2 rows repeat a participant x session combination" in msg
    assert "rows: 4, 4" in msg


def test_non_numeric_values():
    df = small_table().astype({"sup": object})
    df.loc[7, "sup"] = "high"
    msg = problems_of(df)
    assert "column 'sup': variable 'support' must be numeric; 1 value(s) are not numbers (e.g. 'high')" in msg
    assert "rows: 7" in msg


def test_item_out_of_range():
    df = small_table()
    df.loc[[2, 11], "c2"] = 99
    msg = problems_of(df)
    assert "column 'c2': 2 response(s) outside the declared range [1, 5] (e.g. 99.0)" in msg
    assert "rows: 2, 11" in msg
    assert "missing-value code" in msg


def test_session_not_positive_integer():
    df = small_table().astype({"sess": float})
    df.loc[0, "sess"] = 0
    df.loc[1, "sess"] = 2.5
    msg = problems_of(df)
    assert "column 'sess': session must be a positive integer (1, 2, ..., T)" in msg
    assert "rows: 0, 1" in msg


def test_community_with_single_member():
    df = small_table()
    df = df[~df.pid.isin(["L2-P1", "L2-P2"])]
    msg = problems_of(df)
    assert "column 'lc': 1 community has a single member (L2)" in msg
    assert "remove these communities or merge them" in msg


def test_all_missing_variable():
    df = small_table()
    df["sup"] = np.nan
    msg = problems_of(df)
    assert "column 'sup': every value is missing" in msg


def test_constant_variable():
    df = small_table()
    df["sup"] = 3.0
    msg = problems_of(df)
    assert "column 'sup': every value equals 3.0; a constant cannot be modelled" in msg


def test_unknown_role_name():
    roles = {**ROLES, "comunity": "lc"}
    with pytest.raises(ConfigError, match="unknown role name 'comunity'. Did you mean 'community'"):
        Study.from_frame(small_table(), roles)


def test_empty_table():
    msg = problems_of(small_table().iloc[:0])
    assert "the table has no rows" in msg


def test_time_not_increasing_within_participant():
    df = small_table()
    df.loc[(df.pid == "L1-P0") & (df.sess == 3), "week"] = 0
    msg = problems_of(df)
    assert "column 'week': time does not increase with session within participant (1 row(s)" in msg
    assert "rows: 11" in msg


def test_missing_ids():
    df = small_table().astype({"pid": object})
    df.loc[5, "pid"] = None
    msg = problems_of(df)
    assert "column 'pid': participant id is missing in 1 row(s)" in msg


def test_participant_level_variable_varies():
    df = small_table()
    df.loc[3, "lgo"] = 1.0
    msg = problems_of(df)
    assert "'lgo' is declared participant-level but varies within 1 participant(s) (e.g. L0-P1)" in msg


def test_all_problems_reported_at_once():
    df = small_table()
    df.loc[0, "c1"] = 7
    df["sup"] = np.nan
    with pytest.raises(StudyValidationError) as info:
        Study.from_frame(df, ROLES)
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("2 problems in the study data:")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"scales": {"climate": {"items": ["c1", "c2"], "range": [5, 1]}}}, "range must be two integers"),
        ({"scales": {"climate": {"items": ["c1", "c2"], "range": [1, 5], "reverse": ["c9"]}}},
         "reverse-keyed ['c9'] not among its items"),
        ({"variables": {"x": {"column": "sup", "lvl": "session"}}}, "unknown key of variable 'x' 'lvl'"),
        ({"variables": {"x": {"column": "sup", "level": "person"}}}, "level must be one of session, participant"),
        ({"variables": {"session": "sup"}}, "cannot be used as variable names"),
    ],
)
def test_malformed_roles(change, message):
    with pytest.raises(ConfigError) as info:
        Roles.parse({**ROLES, **change})
    assert message in str(info.value)


def test_missing_required_role():
    roles = {k: v for k, v in ROLES.items() if k != "session"}
    with pytest.raises(ConfigError, match="roles lack session"):
        Roles.parse(roles)
