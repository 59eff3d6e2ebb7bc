"""Property-based tests of every parser (Hypothesis): any input either parses or raises an lcbayes error (a typed
error with a message), never another exception. At least 200 generated examples per parser."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcbayes.data.io import read_table
from lcbayes.data.roles import Roles
from lcbayes.data.study import Study
from lcbayes.errors import LcbayesError
from lcbayes.models.climate_growth import ClimateGrowth
from lcbayes.models.spec import ModelSpec
from lcbayes.power.plan import Plan
from lcbayes.report.config import ReportConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                            HealthCheck.too_slow])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=12))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)
ROLES = tomllib.loads((ROOT / "data" / "example_roles.toml").read_text())
SPEC = tomllib.loads((ROOT / "models" / "climate_growth.toml").read_text())
PLAN = tomllib.loads((ROOT / "tests" / "data" / "power_plan.toml").read_text())


def mutated(base: dict, data: st.DataObject) -> dict:
    """``base`` with a few keys (at any depth) replaced by arbitrary values or removed, or new keys added."""
    out = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        node = out
        while True:
            keys = list(node) if isinstance(node, dict) else []
            if not keys or data.draw(st.booleans()):
                break
            key = data.draw(st.sampled_from(keys))
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if not isinstance(node, dict):
            continue
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        key = data.draw(st.sampled_from(list(node))) if node and action != "add" else data.draw(st.text(max_size=8))
        if action == "delete":
            node.pop(key, None)
        else:
            node[key] = data.draw(VALUES)
    return out


def parses_or_explains(parse, *args) -> None:
    try:
        parse(*args)
    except LcbayesError as err:
        assert str(err)


@EXAMPLES
@given(st.data())
def test_roles(data):
    raw = mutated(ROLES, data) if data.draw(st.booleans()) else data.draw(VALUES)
    parses_or_explains(Roles.parse, raw)


@EXAMPLES
@given(st.data())
def test_model_specs(data):
    raw = mutated(SPEC, data) if data.draw(st.booleans()) else data.draw(VALUES)
    parses_or_explains(ModelSpec.parse, raw, "climate_growth", ClimateGrowth.option_defaults)


@EXAMPLES
@given(st.data())
def test_power_plans(data):
    raw = mutated(PLAN, data) if data.draw(st.booleans()) else data.draw(VALUES)
    parses_or_explains(Plan.parse, raw, ROOT / "tests" / "data")


@EXAMPLES
@given(st.data())
def test_report_configurations(data):
    base = {"data": "../../data/example_study.csv", "roles": "../../data/example_roles.toml",
            "models": [{"spec": "../../models/climate_growth.toml"}], "prior_predictive": {"draws": 50}}
    raw = mutated(base, data) if data.draw(st.booleans()) else data.draw(VALUES)
    parses_or_explains(ReportConfig.parse, raw, ROOT / "tests" / "data" / "report.toml")


TABLE = pd.read_csv(ROOT / "data" / "example_study.csv").head(40)


@EXAMPLES
@given(data=st.data())
def test_study_tables(data, tmp_path_factory):
    """A study table with cells replaced by arbitrary text, numbers or blanks, or arbitrary bytes as the file."""
    path = tmp_path_factory.mktemp("csv") / "study.csv"
    if data.draw(st.booleans()):
        path.write_bytes(data.draw(st.binary(max_size=300)))
    else:
        table = TABLE.astype(object).copy()
        for _ in range(data.draw(st.integers(1, 5))):
            row, col = data.draw(st.integers(0, len(table) - 1)), data.draw(st.sampled_from(list(table.columns)))
            table.iat[row, table.columns.get_loc(col)] = data.draw(st.one_of(
                st.none(), st.text(max_size=6), st.integers(-10**6, 10**6), st.floats(allow_nan=True)))
        table.to_csv(path, index=False)
    roles = Roles.parse(ROLES)

    def load():
        Study.from_frame(read_table(path), roles)
    parses_or_explains(load)
