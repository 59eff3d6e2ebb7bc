"""The lcbayes command line and the bundled example."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lcbayes.agreement import climate_table
from lcbayes.cli import app
from lcbayes.data.study import Study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "data" / "example_study.csv"
EXAMPLE_ROLES = ROOT / "data" / "example_roles.toml"
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", [[], ["simulate"], ["check"], ["agreement"], ["fit"], ["report"], ["power"],
                                     ["sbc"], ["example"], ["cv"]])
def test_help_everywhere(command):
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_agreement_help_lists_the_registered_indices():
    from lcbayes.agreement import INDICES

    text = " ".join(run("agreement", "--help").output.split())   # undo the help's line wrapping
    assert all(index.label in text for index in INDICES.values())


def test_power_help_names_the_bundled_plan():
    assert "benchmarks/power_plan.toml" in run("power", "--help").output
    assert (ROOT / "benchmarks" / "power_plan.toml").exists()


def test_importing_the_cli_leaves_the_warning_filters_alone():
    import subprocess
    import sys

    code = ("import warnings, numpy, pandas, typer; before = list(warnings.filters); import lcbayes.cli; "
            "assert warnings.filters == before, warnings.filters[:3]")   # dependencies add their own
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_bundled_example_is_what_its_documented_command_makes(tmp_path):
    """data/README.md's command regenerates the bundled files byte for byte."""
    result = run("simulate", "--out", tmp_path / "s.csv", "--truth", tmp_path / "t.json",
                 "--roles-out", tmp_path / "r.toml", "--likert", 5, "--predictor-missing", 0.1, "--seed", 2026)
    assert result.exit_code == 0, result.output
    for made, bundled in [("s.csv", "example_study.csv"), ("t.json", "example_truth.json"),
                          ("r.toml", "example_roles.toml")]:
        assert (tmp_path / made).read_bytes() == (ROOT / "data" / bundled).read_bytes(), bundled
    assert "--seed 2026" in (ROOT / "data" / "README.md").read_text()


def test_simulate_design_options(tmp_path):
    out = tmp_path / "study.parquet"
    result = run("simulate", "--out", out, "--communities", 5, "--participants", "4-6", "--sessions", 3,
                 "--attrition", 0, "--late-join", 0, "--missed", 0, "--seed", 1)
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert table["community"].nunique() == 5
    sizes = table.groupby("community")["participant"].nunique()
    assert sizes.between(4, 6).all()
    assert len(table) == sizes.sum() * 3
    assert f"{len(table)} rows" in result.output


def test_simulate_rejects_bad_design(tmp_path):
    result = run("simulate", "--out", tmp_path / "x.csv", "--participants", "1")
    assert result.exit_code != 0
    assert "at least 2 participants" in result.output


def test_check_valid_example():
    result = run("check", EXAMPLE, "--roles", EXAMPLE_ROLES)
    assert result.exit_code == 0, result.output
    assert "1140 rows: 20 communities, 240 participants, 6 sessions" in result.output
    assert "climate" in result.output and "omega" in result.output


def test_check_reports_bad_rows_and_fails(tmp_path):
    df = pd.read_csv(EXAMPLE)
    df.loc[[3, 10], "climate_2"] = 9
    df.to_csv(tmp_path / "bad.csv", index=False)
    result = run("check", tmp_path / "bad.csv", "--roles", EXAMPLE_ROLES)
    assert result.exit_code == 2
    assert "column 'climate_2': 2 response(s) outside the declared range [1, 5]" in result.output
    assert "rows: 5, 12" in result.output        # CSV line numbers (header is line 1)


def test_agreement_prints_and_writes_the_climate_table(tmp_path):
    out = tmp_path / "climate.csv"
    result = run("agreement", EXAMPLE, "--roles", EXAMPLE_ROLES, "--out", out)
    assert result.exit_code == 0, result.output
    assert "rwg_j" in result.output and "icc1" in result.output
    written = pd.read_csv(out)
    expected = climate_table(Study.from_path(EXAMPLE, EXAMPLE_ROLES), "climate")
    assert len(written) == len(expected) == 120
    assert written["rwg_j"].to_numpy() == pytest.approx(expected["rwg_j"].to_numpy(), abs=1e-12, nan_ok=True)


def test_agreement_for_a_trait_by_community():
    result = run("agreement", EXAMPLE, "--roles", EXAMPLE_ROLES, "--measure", "lgo", "--by", "community")
    assert result.exit_code == 0, result.output
    assert "ICC" not in result.output            # traits: one value per person, no per-session ICC


def test_agreement_unknown_measure_is_a_clear_error():
    result = run("agreement", EXAMPLE, "--roles", EXAMPLE_ROLES, "--measure", "climat")
    assert result.exit_code == 2
    assert "'climat' is not a variable or scale of this study" in result.output


@pytest.mark.parametrize("name, expected", [
    ("climate_growth", {"beta_intercept", "gamma_trait[lgo]", "gamma_within[support]"}),
    ("knowledge_sharing", {"gamma_support", "delta", "pi[motivation]", "support_walk[6]"}),
])
def test_fit_writes_netcdf_and_summary(tmp_path, name, expected):
    """`lcbayes fit` with a bundled spec (small sampler settings) on a small simulated study."""
    import tomli_w

    from lcbayes.models import BayesModel
    from lcbayes.models.spec import read_spec

    spec = read_spec(ROOT / "models" / f"{name}.toml")
    spec["sampler"].update(chains=2, draws=300, tune=300)
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    result = run("simulate", "--out", tmp_path / "s.csv", "--roles-out", tmp_path / "r.toml",
                 "--communities", 6, "--participants", 5, "--sessions", 6, "--seed", 3)
    assert result.exit_code == 0, result.output
    result = run("fit", tmp_path / "spec.toml", "--data", tmp_path / "s.csv", "--roles", tmp_path / "r.toml",
                 "--out", tmp_path / "fits", "--backend", "nutpie-jax", "--draws", 250, "--tune", 350,
                 "--target-accept", 0.85, "--no-progress")
    model = BayesModel.load(tmp_path / "fits" / f"{name}.nc")
    passed = model.diagnostics().passed
    assert result.exit_code == (0 if passed else 3), result.output     # status 3: written, but not converged
    summary = pd.read_csv(tmp_path / "fits" / f"{name}_summary.csv", index_col=0)
    assert expected <= set(summary.index)
    settings = json.loads(model.idata.attrs["sampler"])
    assert model.idata.posterior.sizes["draw"] == 250 and (settings["tune"], settings["target_accept"]) == (350, 0.85)
    assert model.idata.attrs["spec_hash"] == model.spec.hash()
    assert f"\n{'converged' if passed else 'NOT converged'}: " in result.output   # the saved fit's own verdict
    if not passed:
        assert "--allow-unconverged" in result.output


def test_fit_rejects_unknown_model(tmp_path):
    (tmp_path / "spec.toml").write_text('model = "nope"\noutcome = "climate"\n')
    result = run("fit", tmp_path / "spec.toml", "--data", EXAMPLE, "--roles", EXAMPLE_ROLES)
    assert result.exit_code == 2
    assert "unknown model 'nope'. Valid: climate_growth" in result.output


@pytest.mark.review_case(66)
def test_fit_with_an_unknown_outcome_prints_the_error_not_a_traceback(tmp_path):
    (tmp_path / "spec.toml").write_text('model = "climate_growth"\noutcome = "climat"\n')
    result = run("fit", tmp_path / "spec.toml", "--data", EXAMPLE, "--roles", EXAMPLE_ROLES)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)     # handled, no traceback
    assert "error: 'climat' is not a variable or scale of this study. Did you mean 'climate'?" in result.output
    assert "scales: climate" in result.output and "Fix: " in result.output
    assert "Traceback" not in result.output


@pytest.mark.review_case(72)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_fit_exits_130_and_writes_nothing(tmp_path, monkeypatch, signum):
    """The command's handling: a signal while the model fits (here sent by a stand-in for sampling) ends `lcbayes fit`
    with status 130 and one line, before anything is saved."""
    from lcbayes.models.base import BayesModel

    def interrupted_fit(self, **sampler):
        os.kill(os.getpid(), signum)
        time.sleep(5)                       # the handler raises before this ends
        raise AssertionError("the signal did not stop the fit")

    monkeypatch.setattr(BayesModel, "fit", interrupted_fit)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal (a script's background
    try:                                                                  # job starts with SIGINT ignored)
        result = run("fit", ROOT / "models" / "climate_growth.toml", "--data", EXAMPLE, "--roles", EXAMPLE_ROLES,
                     "--out", tmp_path / "fits")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130, result.output
    assert "interrupted: " in result.output and "Traceback" not in result.output
    assert not (tmp_path / "fits").exists() or not list((tmp_path / "fits").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_fit_exits_130_and_writes_nothing(tmp_path, signum):
    """Ctrl-C or SIGTERM while `lcbayes fit` compiles or samples (the run would take hours): status 130, one line, and
    no fit file that `load` could take for a finished one."""
    import tomli_w

    from lcbayes.models.spec import read_spec

    spec = read_spec(ROOT / "models" / "climate_growth.toml")
    spec["sampler"].update(chains=2, draws=5_000_000, tune=200)
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    timer = threading.Timer(12.0, lambda: os.kill(os.getpid(), signum))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal
    timer.start()
    try:
        result = run("fit", tmp_path / "spec.toml", "--data", EXAMPLE, "--roles", EXAMPLE_ROLES, "--out",
                     tmp_path / "fits")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130, result.output
    assert "interrupted: " in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "fits").glob("*.nc")) if (tmp_path / "fits").exists() else True


def test_version_and_debug(tmp_path):
    """`--version` prints the installed version; an lcbayes error is one line with status 2, or with `--debug` the
    error itself (its traceback)."""
    from lcbayes import __version__
    from lcbayes.errors import ConfigError

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"lcbayes {__version__}"
    missing = ["check", str(tmp_path / "missing.csv"), "--roles", str(EXAMPLE_ROLES)]
    plain = runner.invoke(app, missing)
    assert plain.exit_code == 2 and plain.output.strip().startswith("error: data file")
    assert "Traceback" not in plain.output
    debug = runner.invoke(app, ["--debug", *missing])
    assert debug.exit_code == 1 and isinstance(debug.exception, ConfigError)


def test_an_unconverged_fit_exits_3_unless_allowed(tmp_path):
    """20 draws per chain cannot reach the ESS the checks ask for: the files are written and the status is 3;
    --allow-unconverged makes it 0."""
    args = ["fit", ROOT / "models" / "climate_growth.toml", "--data", EXAMPLE, "--roles", EXAMPLE_ROLES,
            "--backend", "nutpie-jax", "--chains", 2, "--draws", 20, "--tune", 50, "--no-progress"]
    strict = run(*args, "--out", tmp_path / "strict")
    assert strict.exit_code == 3 and "NOT converged" in strict.output and "--allow-unconverged" in strict.output
    assert (tmp_path / "strict" / "climate_growth.nc").exists()
    allowed = run(*args, "--out", tmp_path / "allowed", "--allow-unconverged")
    assert allowed.exit_code == 0 and "NOT converged" in allowed.output


def test_json_output_of_check_and_agreement(tmp_path):
    """--json prints one object a program can read: the design counts and reliability, the problems of invalid data
    (status 2), and the agreement table with the same numbers as the library's."""
    valid = runner.invoke(app, ["check", str(EXAMPLE), "--roles", str(EXAMPLE_ROLES), "--json"])
    assert valid.exit_code == 0
    body = json.loads(valid.stdout)
    study = Study.from_path(EXAMPLE, EXAMPLE_ROLES)
    assert body["valid"] and body["summary"]["n_rows"] == study.n_obs == 1140
    assert [row["session"] for row in body["summary"]["per_session"]] == [1, 2, 3, 4, 5, 6]
    assert {row["scale"] for row in body["reliability"]} == set(study.roles.scales)
    df = pd.read_csv(EXAMPLE)
    df.loc[[3, 10], "climate_2"] = 9
    df.to_csv(tmp_path / "bad.csv", index=False)
    invalid = runner.invoke(app, ["check", str(tmp_path / "bad.csv"), "--roles", str(EXAMPLE_ROLES), "--json"])
    assert invalid.exit_code == 2
    problem = json.loads(invalid.stdout)["problems"][0]
    assert problem["column"] == "climate_2" and problem["rows"] == ["5", "12"] and problem["fix"]
    table = runner.invoke(app, ["agreement", str(EXAMPLE), "--roles", str(EXAMPLE_ROLES), "--json"])
    assert table.exit_code == 0
    body = json.loads(table.stdout)
    expected = climate_table(study, "climate")
    assert len(body["table"]) == len(expected) and body["icc"][0]["session"] == 1
    assert [row["rwg_j"] for row in body["table"]] == pytest.approx(expected["rwg_j"].tolist())


def test_library_warnings_are_counted_in_one_line(monkeypatch):
    """A warning from another library is not printed raw: one `note:` line counts them by package; --debug shows
    them."""
    import warnings

    original = Study.from_path

    def noisy(*args, **kwargs):
        warnings.warn("something internal changed", UserWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(Study, "from_path", noisy)
    quiet = runner.invoke(app, ["check", str(EXAMPLE), "--roles", str(EXAMPLE_ROLES)])
    assert quiet.exit_code == 0 and "something internal changed" not in quiet.output
    assert "note: 1 library warning(s) not shown (1 from test_cli); lcbayes --debug shows them." in quiet.output
    loud = runner.invoke(app, ["--debug", "check", str(EXAMPLE), "--roles", str(EXAMPLE_ROLES)])
    assert "UserWarning: something internal changed" in loud.output and "note: " not in loud.output


def test_pymc_info_lines_stay_quiet_when_pymc_is_imported_inside_a_command():
    """Importing pymc sets its logger to INFO (when the root logger has no handler), so a command that first imports
    it inside would print PyMC's "Sampling: [...]" lines; its warnings still show."""
    import subprocess
    import sys

    code = ("import logging, sys\n"
            "import lcbayes.cli as cli\n"
            "@cli._command(name='probe')\n"
            "def probe() -> None:\n"
            "    import pymc  # noqa: F401 (first imported here)\n"
            "    logging.getLogger('pymc.sampling.forward').info('Sampling: [x]')\n"
            "    logging.getLogger('pymc.sampling.forward').warning('a pymc warning')\n"
            "sys.argv = ['lcbayes', 'probe']\n"
            "cli.app()\n")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "a pymc warning" in done.stderr and "Sampling: [x]" not in done.stderr + done.stdout
