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


@pytest.mark.review_case(1, 3, 43)
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


@pytest.mark.review_case(64, 65)
@pytest.mark.parametrize("setting, message", [
    ({"chains": "2"}, "chains must be a whole number, got '2'"),
    ({"draws": 30.5}, "draws must be a whole number, got 30.5"),
    ({"target_accept": "high"}, "target_accept must be a number"),
])
def test_sampler_settings_of_the_wrong_type_fail_before_compiling(setting, message):
    with pytest.raises(ConfigError, match=message):
        SamplerSettings(**setting)
    SamplerSettings(seed=np.int64(3))          # numpy integers (the power runner's seeds) are whole numbers


@pytest.mark.review_case(56, 60)
@pytest.mark.parametrize("spec, message", [
    ({"dist": "HalfNormal", "sigma": -1.0}, "sigma of HalfNormal must be positive"),
    ({"dist": "Normal", "mu": 0, "sigma": "big"}, "sigma must be a number or a list of numbers, got 'big'"),
    ({"dist": "Exponential", "lam": [1.0, 0.0]}, "lam of Exponential must be positive"),
])
def test_prior_parameters_are_checked_when_read(spec, message):
    with pytest.raises(ConfigError, match=message):
        Prior.parse("sigma", spec)
    assert Prior.parse("x", {"dist": "SkewNormal", "mu": 0, "sigma": 1, "alpha": -2}).params["alpha"] == -2


@pytest.mark.review_case(76)
@pytest.mark.parametrize("content", [b"", b"not a netcdf file", None])
def test_loading_something_that_is_not_a_fit_is_a_typed_error(tmp_path, content):
    from lcbayes.models import BayesModel

    path = tmp_path / "fit.nc"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(LcbayesError, match="Fix: "):
        BayesModel.load(path)


BASE_ROLES = {"community": "community", "participant": "participant", "session": "session"}


@pytest.mark.review_case(33, 34, 35)
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


@pytest.mark.review_case(9, 17, 42)
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


@pytest.mark.review_case(49, 50)
@pytest.mark.parametrize("by", [["community", "foo"], ["participant"]])
def test_agreement_groupings_are_checked(by):
    from lcbayes.agreement import climate_table
    from lcbayes.data.study import Study

    study = Study.from_path(ROOT / "data" / "example_study.csv", ROOT / "data" / "example_roles.toml")
    with pytest.raises(ConfigError, match=f"unknown grouping column \\(--by\\) '{by[-1]}'.*Valid: community"):
        climate_table(study, "climate", by=by)


@pytest.mark.review_case(40)
def test_a_header_with_a_trailing_space_is_named():
    from lcbayes.data.roles import Roles
    from lcbayes.data.study import Study
    from lcbayes.errors import StudyValidationError

    table = read_table(ROOT / "data" / "example_study.csv").rename(columns={"session": "session "})
    with pytest.raises(StudyValidationError, match="a column 'session ' exists: the names differ in spaces"):
        Study.from_frame(table, Roles.from_toml(ROOT / "data" / "example_roles.toml"))


def _example_study(edit=lambda table: table, roles_edit=lambda roles: roles):
    from lcbayes.data.roles import Roles
    from lcbayes.data.study import Study

    roles = Roles.from_toml(ROOT / "data" / "example_roles.toml").to_dict()
    return Study.from_frame(edit(read_table(ROOT / "data" / "example_study.csv")), roles_edit(roles))


@pytest.mark.review_case(46)
def test_a_declared_range_wider_than_the_responses_is_warned(tmp_path):
    """Roles that declare 1-7 for 5-point items inflate r_wg (the null has options no rater had): the table is still
    computed, with a warning naming the unused options and the fix; the CLI prints it as one line."""
    from typer.testing import CliRunner

    from lcbayes.agreement import climate_table
    from lcbayes.cli import app
    from lcbayes.errors import LcbayesWarning

    def seven_points(roles):
        roles["scales"]["climate"]["range"] = [1, 7]
        return roles

    with pytest.warns(LcbayesWarning, match=r"'climate': no response uses option\(s\) 6-7 of the declared range "
                                            r"\[1, 7\].*Fix: .*range = \[1, 5\]"):
        wide = _example_study(roles_edit=seven_points)
    # what it would change: reverse-keyed responses (1 -> 7, not 5) and the agreement indices
    assert wide.items["climate"]["climate_3"].max() == 7
    assert climate_table(wide, "climate")["rwg_j"].mean() != climate_table(_example_study(), "climate")["rwg_j"].mean()
    roles = tmp_path / "roles.toml"
    roles.write_text((ROOT / "data" / "example_roles.toml").read_text().replace(
        "range = [\n    1,\n    5,\n]\nlevel = \"session\"", "range = [\n    1,\n    7,\n]\nlevel = \"session\"", 1))
    result = CliRunner().invoke(app, ["agreement", str(ROOT / "data" / "example_study.csv"), "--roles", str(roles)])
    assert result.exit_code == 0 and "warning: 'climate': no response uses option(s) 6-7" in result.output
    assert "Warning" not in result.output            # one line, not Python's file:line: category display


@pytest.mark.review_case(69)
def test_a_scale_whose_items_cancel_out_is_refused():
    """Items that vary while their score does not (a mirror item not reverse-keyed): a typed error naming the scale,
    not a division by zero when the model sets its priors."""
    from lcbayes.errors import StudyValidationError

    def mirror(table):
        return table.assign(mirror_1=table["climate_1"], mirror_2=6 - table["climate_1"])

    def cancelling(roles):
        roles["scales"]["mirror"] = {"items": ["mirror_1", "mirror_2"], "range": [1, 5], "level": "session"}
        return roles

    with pytest.raises(StudyValidationError, match="scale 'mirror': its score equals 3 in every row although its "
                                                   "items vary") as err:
        _example_study(mirror, cancelling)
    assert "fix: check which items are reverse-keyed" in str(err.value)


@pytest.mark.review_case(70)
@pytest.mark.parametrize("model", ["climate_growth", "consensus_emergence"])
def test_a_design_that_cannot_inform_some_parameters_is_warned(model):
    """One community, or one session: the model builds and fits, with a warning naming the parameters that rest on
    their priors alone; the full design gives none."""
    import warnings

    from lcbayes.errors import LcbayesWarning
    from lcbayes.models import create
    from lcbayes.models.spec import read_spec

    spec = read_spec(ROOT / "models" / f"{model}.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error", LcbayesWarning)
        create(spec, _example_study())
    one_community = _example_study(lambda t: t[t["community"] == t["community"].iloc[0]])
    if model == "consensus_emergence":      # composition predictors are constant over one community: a typed error
        with pytest.raises(ConfigError, match="composition predictor.*constant"):
            create(spec, one_community)
        spec["options"] |= {"composition": []}
    with pytest.warns(LcbayesWarning, match="one community, so tau_community.* rest on their priors alone"):
        create(spec, one_community)
    one_session = _example_study(lambda t: t[t["session"] == 1])
    with pytest.warns(LcbayesWarning, match="one session, so beta_time.*rest on their priors alone"):
        create(spec, one_session)


@pytest.mark.review_case(111)
@pytest.mark.parametrize("parameter, message", [
    ("nope", "has no parameter or derived quantity 'nope'. Known: beta_intercept, beta_time"),
    ("beta_time[slope]", "beta_time has no time_term 'slope'; its labels are time"),
    ("beta_intercept[x]", "beta_intercept has no elements"),
    ("variance_shar", "no parameter or derived quantity 'variance_shar'. Known: .*variance_share"),
])
def test_a_power_target_the_model_lacks_is_refused_before_fitting(tmp_path, monkeypatch, parameter, message):
    """Checked against the model's parameters and derived quantities before anything is compiled, fitted or
    written: the output folder is not created."""
    import tomllib

    from lcbayes.power import runner
    from lcbayes.power.plan import Plan

    raw = tomllib.loads((ROOT / "tests" / "data" / "power_plan.toml").read_text())
    raw["targets"][1]["parameter"] = parameter

    def no_fits(*args, **kwargs):
        raise AssertionError("a replicate was fitted")

    with pytest.raises(ConfigError, match=message):
        runner.run(Plan.parse(raw), str(tmp_path / "out"), workers=1, progress=False, task=no_fits)
    assert not (tmp_path / "out").exists()
