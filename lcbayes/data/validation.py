"""Checks of a study table against its roles.

Each check returns a list of :class:`~lcbayes.errors.Problem` (empty when fine) that names the column, the offending
rows (index labels of the user's table) and the fix. :func:`validate` runs them all and raises one
:class:`~lcbayes.errors.StudyValidationError` listing every problem, so a user fixes the table in one pass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lcbayes.data.roles import Roles, Scale, Variable
from lcbayes.errors import Problem, StudyValidationError, problem_at

_NESTING_FIXES = {   # for participants found in several groups of a role that nests them
    "community": "a participant belongs to one community; if participant ids are numbered within each community, make "
                 "them unique, e.g. participant = community + '_' + id.",
    "organization": "a participant has one employer in this design; correct the organization of these rows or give the "
                    "person a new participant id after a change of job."}


def _structure(df: pd.DataFrame, roles: Roles) -> list[Problem]:
    """Problems that make every further check meaningless: empty table, absent columns."""
    if len(df) == 0:
        return [Problem(None, "the table has no rows.", "load the file that holds the study data.")]
    present = set(df.columns)
    wanted = list(roles.id_columns.items())
    wanted += [(f"variable '{v.name}'", v.column) for v in roles.variables.values()]
    wanted += [(f"item of scale '{s.name}'", c) for s in roles.scales.values() for c in s.items]
    problems = []
    for role, col in wanted:
        if col not in present:
            close = [c for c in df.columns if str(c).strip().lower() == col.strip().lower()]
            differ = "spaces around them" if close and str(close[0]).strip() == col.strip() else "case"
            hint = f" (a column {str(close[0])!r} exists: the names differ in {differ})" if close else ""
            problems.append(Problem(col, f"mapped to {role} but not in the table{hint}. "
                                    f"Columns present: {', '.join(map(str, df.columns[:20]))}.",
                                    "correct the column name in the roles mapping, or add the column to the table."))
    return problems


def _numeric(df: pd.DataFrame, column: str, what: str) -> tuple[pd.Series, list[Problem]]:
    """Column as float; values that are present but not numbers are a problem."""
    raw = df[column]
    if pd.api.types.is_bool_dtype(raw):
        raw = raw.astype(float)
    values = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = raw.notna() & values.isna()
    examples = ", ".join(repr(v) for v in raw[bad].unique()[:3])
    return values, [problem_at(
        column, f"{what} must be numeric; {int(bad.sum())} value(s) are not numbers (e.g. {examples}).",
        "recode these cells as numbers, or leave them empty for missing values.", df.index[bad])] if bad.any() else []


def _missing_ids(df: pd.DataFrame, roles: Roles) -> list[Problem]:
    missing = {role: (col, df[col].isna()) for role, col in roles.id_columns.items() if role != "time"}
    return [problem_at(col, f"{role} id is missing in {int(m.sum())} row(s).",
                       f"fill in the {role} of each row or remove rows that belong to no {role}.", df.index[m])
            for role, (col, m) in missing.items() if m.any()]


def _session(df: pd.DataFrame, roles: Roles) -> tuple[pd.Series, list[Problem]]:
    col = roles.session
    values, problems = _numeric(df, col, "session")
    bad = values.notna() & ((values < 1) | (values != np.round(values)))
    if bad.any():
        examples = ", ".join(str(v) for v in df.loc[bad, col].unique()[:3])
        problems.append(problem_at(col, f"session must be a positive integer (1, 2, ..., T); found {examples}.",
                                   "number sessions 1..T in the order they took place; put calendar timing in a "
                                   "separate column mapped to the 'time' role.", df.index[bad]))
    return values, problems


def _session_numbers(df: pd.DataFrame, roles: Roles, values: pd.Series) -> list[Problem]:
    """Session numbers count sessions (1..T): a number far beyond the count of distinct sessions is a date or a typo."""
    observed = values.dropna()
    if observed.empty or observed.max() <= max(100, 10 * observed.nunique()):
        return []
    bad = values > max(100, 10 * observed.nunique())
    return [problem_at(roles.session, f"session numbers run up to {observed.max():g} for {observed.nunique()} distinct "
                       "sessions; they must count sessions 1, 2, ..., T.",
                       "number sessions 1..T in the order they took place; put dates or weeks in a separate column "
                       "mapped to the 'time' role.", df.index[bad])]


def _padded_ids(df: pd.DataFrame, roles: Roles) -> list[Problem]:
    """Ids with leading or trailing spaces would silently split one participant (or community) in two."""
    out = []
    for role, col in roles.id_columns.items():
        if role in ("session", "time") or pd.api.types.is_numeric_dtype(df[col]):
            continue
        text = df[col].astype(str)
        bad = df[col].notna() & (text != text.str.strip())
        if bad.any():
            out.append(problem_at(col, f"{int(bad.sum())} {role} id(s) start or end with spaces (e.g. "
                                       f"{text[bad].iloc[0]!r}), which would make them other {role}s than the same "
                                       "ids without the spaces.", "remove the spaces around the ids.", df.index[bad]))
    return out


def _whole(df: pd.DataFrame, column: str, values: pd.Series, what: str) -> list[Problem]:
    """Likert items are response options: whole numbers."""
    bad = values.notna() & (values != np.round(values))
    examples = ", ".join(str(v) for v in values[bad].unique()[:3])
    return [problem_at(column, f"{int(bad.sum())} response(s) of this {what} are not whole numbers (e.g. {examples}).",
                       "correct the responses; if the column holds a continuous rating, map it under [variables] "
                       "instead of as a scale item.", df.index[bad])] if bad.any() else []


def _nesting(df: pd.DataFrame, roles: Roles) -> list[Problem]:
    """Each participant in exactly one community (and one organization, when mapped)."""
    problems = []
    p = roles.participant
    for role, col in roles.id_columns.items():
        if role not in _NESTING_FIXES:
            continue
        sub = df[[p, col]].dropna()
        n_groups = sub.groupby(p, sort=False)[col].nunique()
        multi = n_groups.index[n_groups > 1]
        if len(multi):
            problems.append(problem_at(p, f"{len(multi)} participant(s) appear in more than one {role} (e.g. "
                                       f"{', '.join(map(str, multi[:3]))}).", _NESTING_FIXES[role],
                                       sub.index[sub[p].isin(multi)]))
    return problems


def _duplicates(df: pd.DataFrame, roles: Roles) -> list[Problem]:
    dup = df.duplicated([roles.participant, roles.session], keep=False)
    dup &= df[roles.participant].notna() & df[roles.session].notna()
    return [problem_at(roles.session, f"{int(dup.sum())} rows repeat a participant x session combination.",
                       "keep one row per participant and session (merge or remove the duplicates).",
                       df.index[dup])] if dup.any() else []


def _community_sizes(df: pd.DataFrame, roles: Roles) -> list[Problem]:
    sizes = df.groupby(roles.community, sort=True)[roles.participant].nunique()
    single = sizes.index[sizes < 2]
    return [problem_at(
        roles.community, f"{len(single)} communit{'y has' if len(single) == 1 else 'ies have'} a single member "
        f"({', '.join(map(str, single[:5]))}); agreement and within-community spread need at least two.",
        "remove these communities or merge them with the community they belong to.",
        df.index[df[roles.community].isin(single)])] if len(single) else []


def _time(df: pd.DataFrame, roles: Roles, column: str, session: pd.Series) -> tuple[pd.Series, list[Problem]]:
    """The numeric time ``column`` and its problems (missing, not increasing with session)."""
    time, problems = _numeric(df, column, "time")
    missing = time.isna() & df[column].isna()
    if missing.any():
        problems.append(problem_at(
            column, f"time is missing in {int(missing.sum())} row(s).",
            "give the timing of every observed session, or drop the 'time' role to use session.", df.index[missing]))
    order = pd.DataFrame({"p": df[roles.participant], "s": session, "t": time}).dropna()
    order = order.sort_values(["p", "s"], kind="stable")
    step = order.groupby("p", sort=False)["t"].diff()
    bad = order.index[step <= 0]
    if len(bad):
        problems.append(problem_at(
            column, "time does not increase with session within participant "
            f"({len(bad)} row(s) not later than the participant's previous session).",
            "check the timing of these sessions (a session must happen after the previous one).", bad))
    return time, problems


def _range(df: pd.DataFrame, column: str, values: pd.Series, low: int, high: int) -> list[Problem]:
    bad = values.notna() & ((values < low) | (values > high))
    examples = ", ".join(str(v) for v in values[bad].unique()[:3])
    return [problem_at(
        column, f"{int(bad.sum())} response(s) outside the declared range [{low}, {high}] (e.g. {examples}).",
        "correct the responses (often a missing-value code such as 99 or -9: set it to "
        "empty) or declare the right range in the roles.", df.index[bad])] if bad.any() else []


def _spread(column: str, values: pd.Series) -> list[Problem]:
    observed = values.dropna()
    if observed.empty:
        return [Problem(column, "every value is missing.",
                        "map the column that holds the data, or remove the variable from the roles.")]
    if observed.nunique() == 1:
        return [Problem(column, f"every value equals {observed.iloc[0]}; a constant cannot be modelled.",
                        "check that the right column is mapped, or remove the variable from the roles.")]
    return []


def _constant_within(df: pd.DataFrame, roles: Roles, column: str, values: pd.Series, name: str) -> list[Problem]:
    """A participant-level variable must take one value per participant."""
    sub = pd.DataFrame({"p": df[roles.participant], "v": values}).dropna()
    n = sub.groupby("p", sort=False)["v"].nunique()
    varying = n.index[n > 1]
    return [problem_at(
        column, f"'{name}' is declared participant-level but varies within {len(varying)} participant(s) "
        f"(e.g. {', '.join(map(str, varying[:3]))}).",
        "give one value per participant, or declare level = \"session\" in the roles.",
        sub.index[sub["p"].isin(varying)])] if len(varying) else []


def validate(df: pd.DataFrame, roles: Roles, new_data: bool = False) -> dict[str, pd.Series]:
    """Check ``df`` against ``roles``; return the numeric columns (session, time, measures, items).

    Raises :class:`StudyValidationError` listing every problem found. The returned mapping
    holds float Series aligned with ``df`` keyed by column name, so callers do not parse twice. ``new_data``: rows
    to predict at (:mod:`lcbayes.models.prediction`), which need the structure, types and ranges of the fitted
    data but may hold a measure constant or give a community one member (a new participant, a planned composition).
    """
    problems = _structure(df, roles)
    if problems:
        raise StudyValidationError(problems)
    session, found = _session(df, roles)
    numeric: dict[str, pd.Series] = {roles.session: session}
    problems += _missing_ids(df, roles) + found + _session_numbers(df, roles, session) + _padded_ids(df, roles)
    if roles.time is not None:
        numeric[roles.time], found = _time(df, roles, roles.time, session)
        problems += found
    columns: list[tuple[str, str, Variable | Scale]] = [
        (v.column, f"variable '{v.name}'", v) for v in roles.variables.values()]
    columns += [(item, f"item of scale '{s.name}'", s) for s in roles.scales.values() for item in s.items]
    for column, what, measure in columns:
        values, found = _numeric(df, column, what)
        problems += found or ([] if new_data else _spread(column, values))
        if measure.range is not None:
            problems += _range(df, column, values, *measure.range)
        if isinstance(measure, Scale):
            problems += _whole(df, column, values, what)
        if measure.level == "participant":
            problems += _constant_within(df, roles, column, values, measure.name)
        numeric[column] = values
    problems += _nesting(df, roles) + _duplicates(df, roles) + ([] if new_data else _community_sizes(df, roles))
    if problems:
        raise StudyValidationError(problems)
    return numeric
