"""Bad input gets a typed lcbayes error naming what is wrong and the fix (the reliability review's cases), instead of a
raw traceback or a failure after compiling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcbayes.data.io import read_table
from lcbayes.errors import ConfigError, LcbayesError
from lcbayes.models.priors import Prior
from lcbayes.sampling import SamplerSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"community,participant,session\nC01,C01P\xe901,1\n", r"not UTF-8 text: byte b'\\xe9' on line 2"),
    (b"community,participant,session\nC01,C01P01,1\nC01,C01P01,2,5,6\n", "malformed row"),
])
def test_unreadable_tables_are_explained(tmp_path, content, message):
    path = tmp_path / "study.csv"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as err:
        read_table(path)
    assert "Fix: " in str(err.value)


@pytest.mark.parametrize("setting, message", [
    ({"chains": "2"}, "chains must be a whole number, got '2'"),
    ({"draws": 30.5}, "draws must be a whole number, got 30.5"),
    ({"target_accept": "high"}, "target_accept must be a number"),
])
def test_sampler_settings_of_the_wrong_type_fail_before_compiling(setting, message):
    with pytest.raises(ConfigError, match=message):
        SamplerSettings(**setting)
    SamplerSettings(seed=np.int64(3))          # numpy integers (the power runner's seeds) are whole numbers


@pytest.mark.parametrize("spec, message", [
    ({"dist": "HalfNormal", "sigma": -1.0}, "sigma of HalfNormal must be positive"),
    ({"dist": "Normal", "mu": 0, "sigma": "big"}, "sigma must be a number or a list of numbers, got 'big'"),
    ({"dist": "Exponential", "lam": [1.0, 0.0]}, "lam of Exponential must be positive"),
])
def test_prior_parameters_are_checked_when_read(spec, message):
    with pytest.raises(ConfigError, match=message):
        Prior.parse("sigma", spec)
    assert Prior.parse("x", {"dist": "SkewNormal", "mu": 0, "sigma": 1, "alpha": -2}).params["alpha"] == -2


@pytest.mark.parametrize("content", [b"", b"not a netcdf file", None])
def test_loading_something_that_is_not_a_fit_is_a_typed_error(tmp_path, content):
    from lcbayes.models import BayesModel

    path = tmp_path / "fit.nc"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LcbayesError, match="Fix: "):
        BayesModel.load(path)


BASE_ROLES = {"community": "community", "participant": "participant", "session": "session"}


@pytest.mark.parametrize("change, message", [
    ({"scales": {"climate": {"items": ["a", "b"], "range": [1, 5], "min_share": "half"}}},
     "min_share must be a number in \\(0, 1\\], got 'half'"),
    ({"variables": "climate_1"}, "roles 'variables' must be a table"),
    ({"participant": "community"}, "roles 'community' and 'participant' both name column 'community'"),
])
def test_malformed_roles_are_explained(change, message):
    from lcbayes.data.roles import Roles

    with pytest.raises(ConfigError, match=message) as err:
        Roles.parse({**BASE_ROLES, **change})
    assert "Fix: " in str(err.value)


@pytest.mark.parametrize("edit, column, message", [
    (lambda t: t.assign(session=t["session"].where(t["session"] != 6, 1_000_000_000)), "session",
     "session numbers run up to 1e\\+09"),
    (lambda t: t.assign(participant=t["participant"].where(t.index != 3, t["participant"] + " ")), "participant",
     "start or end with spaces"),
    (lambda t: t.assign(climate_2=t["climate_2"].where(t.index != 5, 3.5)), "climate_2", "not whole numbers"),
])
def test_silently_wrong_tables_are_refused(edit, column, message):
    """Values that used to pass validation and then changed the results: a session numbered 1e9 (fitted as time
    1e9), an id with a trailing space (one participant split in two), a Likert item of 3.5."""
    from lcbayes.data.roles import Roles
    from lcbayes.data.study import Study
    from lcbayes.errors import StudyValidationError

    table = read_table(ROOT / "data" / "example_study.csv")
    with pytest.raises(StudyValidationError, match=message) as err:
        Study.from_frame(edit(table), Roles.from_toml(ROOT / "data" / "example_roles.toml"))
    assert f"column '{column}'" in str(err.value) and "fix: " in str(err.value)


@pytest.mark.parametrize("by", [["community", "foo"], ["participant"]])
def test_agreement_groupings_are_checked(by):
    from lcbayes.agreement import climate_table
    from lcbayes.data.study import Study

    study = Study.from_path(ROOT / "data" / "example_study.csv", ROOT / "data" / "example_roles.toml")
    with pytest.raises(ConfigError, match=f"unknown grouping column \\(--by\\) '{by[-1]}'.*Valid: community"):
        climate_table(study, "climate", by=by)


def test_a_header_with_a_trailing_space_is_named():
    from lcbayes.data.roles import Roles
    from lcbayes.data.study import Study
    from lcbayes.errors import StudyValidationError

    table = read_table(ROOT / "data" / "example_study.csv").rename(columns={"session": "session "})
    with pytest.raises(StudyValidationError, match="a column 'session ' exists: the names differ in spaces"):
        Study.from_frame(table, Roles.from_toml(ROOT / "data" / "example_roles.toml"))
