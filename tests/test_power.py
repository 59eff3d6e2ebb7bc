"""Power analysis: plans, seeds, decision rules, summaries on hand-made tables, and the
runner (1 process, 2 local Dask workers, an existing Dask scheduler, a killed and resumed
run) giving the same results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lcbayes.data.io import read_toml
from lcbayes.errors import ConfigError
from lcbayes.power import (
    Plan,
    PlanChangedError,
    Rule,
    clopper_pearson,
    replicate_seeds,
    run,
    smallest_design,
    summarize,
)
from lcbayes.power.store import ResultFileError, ResultStore

PLAN = Path(__file__).parent / "data" / "power_plan.toml"
TIMING = ["fit_seconds"]


def plan_dict(**changes) -> dict:
    raw = read_toml(PLAN, "plan")
    raw.update(changes)
    return raw


# ---------------------------------------------------------------- plans, seeds, rules
def test_seeds_depend_on_position_not_order():
    a = Plan.parse(plan_dict())
    b = Plan.parse(plan_dict(design={"communities": [6, 4], "participants": 5, "sessions": 4}))
    assert {c.key for c in a.cells()} == {c.key for c in b.cells()}          # grid order is irrelevant
    assert [c.key for c in a.cells()] != [c.key for c in b.cells()]
    cell = a.cells()[0]
    assert replicate_seeds(7, cell.key, 3) == replicate_seeds(7, cell.key, 3)
    seeds = {replicate_seeds(7, c.key, r) for c in a.cells() for r in range(50)}
    assert len(seeds) == 100                                                   # all distinct
    assert replicate_seeds(8, cell.key, 3) != replicate_seeds(7, cell.key, 3)


def test_plan_hash_ignores_replicates_only():
    base = Plan.parse(plan_dict())
    assert Plan.parse(plan_dict(replicates=10)).hash() == base.hash()
    assert Plan.parse(plan_dict(seed=8)).hash() != base.hash()


@pytest.mark.review_case(110)
@pytest.mark.parametrize("change, message", [
    ({"design": {"cohorts": [3]}}, "design field 'cohorts'"),
    ({"model": "growth"}, "unknown model 'growth'. Valid: climate_growth"),
    ({"scenarios": {"s": {"climate": {"beta9": 1.0}}}}, "field of climate truth 'beta9'"),
    ({"targets": [{"parameter": "beta_time", "truth": "climate.nope", "rules": [{"rule": "excludes_zero"}]}]},
     "ClimateTruth has no field 'nope'"),
    ({"targets": [{"parameter": "beta_time", "truth": "climate.beta1", "rules": [{"rule": "significant"}]}]},
     "decision rule 'significant' unknown"),
    ({"targets": [{"parameter": "beta_time", "truth": "climate.beta1", "rules": [{"rule": "rope", "low": 0}]}]},
     "rule rope needs high"),
    ({"targets": []}, "no \\[\\[targets\\]\\]"),
    ({"design": {"communities": []}}, "design field communities lists no values"),
])
def test_bad_plans_are_rejected_with_a_clear_message(change, message):
    with pytest.raises(ConfigError, match=message):
        Plan.parse(plan_dict(**change))


def test_parsed_plan_pickles_for_the_workers():
    import pickle

    plan = Plan.parse(plan_dict())
    again = pickle.loads(pickle.dumps(plan))
    assert again == plan and again.hash() == plan.hash() and again.raw == plan.raw


def test_truths_are_keyed_by_process_and_read_through_field_value():
    from lcbayes.data.simulate import TRUTHS, ClimateTruth, SharingTruth
    from lcbayes.power import Target

    plan = Plan.parse(plan_dict(scenarios={"s": {"sharing": {"f": [0.0, 0.1, -0.2, 0.3]}}}))
    cell = plan.cells()[0]
    truths = plan.truth_of(cell)
    assert set(truths) == set(TRUTHS)
    assert truths["climate"] == ClimateTruth() and truths["sharing"] == SharingTruth(f=(0.0, 0.1, -0.2, 0.3))
    design = plan.design_of(cell)

    def target(path):
        return Target.parse({"parameter": "x", "truth": path, "rules": [{"rule": "excludes_zero"}]})

    assert target("sharing.f[2]").true_value(truths, design) == -0.2          # resolved per session
    assert target("climate.tau_u[1]").true_value(truths, design) == ClimateTruth().tau_u[1]
    with pytest.raises(ConfigError, match="write climate.<field>\\[i\\] or sharing.<field>\\[i\\]"):
        target("weather.beta1").true_value(truths, design)


def test_fitter_cache_keeps_the_two_most_recent_cells(monkeypatch):
    from lcbayes.power import runner

    assert not hasattr(runner, "_FITTERS")                                      # no module-level cache
    built = []
    monkeypatch.setattr(runner, "CellFitter", lambda plan, cell, cores=None: built.append(cell.key) or cell.key)
    plan = Plan.parse(plan_dict(design={"communities": [4, 5, 6], "participants": 5, "sessions": 4}))
    a, b, c = plan.cells()
    cache = runner.FitterCache()
    assert [cache.fitter(plan, cell) for cell in (a, b, a, c, a, b)] == [a.key, b.key, a.key, c.key, a.key, b.key]
    assert built == [a.key, b.key, c.key, b.key]                                # b was the least recent when c came
    assert len(cache) == 2
    assert runner.worker_cache(cache) is cache
    assert isinstance(runner.worker_cache(), runner.FitterCache)                # outside a Dask worker: a new one


def test_decision_rules_on_known_draws():
    draws = np.linspace(0.01, 1.01, 1001)            # 2.5% / 97.5% quantiles 0.035 / 0.985
    assert Rule.parse({"rule": "excludes_zero"}).decide(draws)
    assert not Rule.parse({"rule": "excludes_zero"}).decide(draws - 0.5)
    assert Rule.parse({"rule": "direction", "threshold": 0.99}).decide(draws)
    shifted = draws - 0.03                           # P(> 0) = 0.98
    assert Rule.parse({"rule": "direction", "threshold": 0.975}).decide(shifted)
    assert not Rule.parse({"rule": "direction", "threshold": 0.99}).decide(shifted)
    assert Rule.parse({"rule": "direction", "sign": "negative"}).decide(-draws)
    assert Rule.parse({"rule": "rope", "low": -1, "high": 0.02}).decide(draws)            # outside
    assert not Rule.parse({"rule": "rope", "low": -1, "high": 0.5}).decide(draws)
    assert Rule.parse({"rule": "rope", "low": 0, "high": 1.1, "outside": False}).decide(draws)
    assert Rule.parse({"rule": "width", "max": 0.95}).decide(draws)                 # 90% width 0.9
    assert not Rule.parse({"rule": "width", "max": 0.85}).decide(draws)
    assert Rule.parse({"rule": "width", "max": 0.85}).name == "width_le_0.85_90"


# ---------------------------------------------------------------- summaries
def test_clopper_pearson_matches_the_beta_quantiles_and_edges():
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    lo, hi = clopper_pearson(7, 20)
    ci = stats.binomtest(7, 20).proportion_ci(0.95, method="exact")
    assert (lo, hi) == (pytest.approx(ci.low), pytest.approx(ci.high))


def hand_made_results() -> pd.DataFrame:
    rows = []
    for cell, communities, decisions, means in [("a", 10, [1, 0, 0, 1], [0.1, 0.3, 0.2, 0.2]),
                                                ("b", 20, [1, 1, 1, 1], [0.24, 0.16, 0.2, 0.2])]:
        for r, (d, m) in enumerate(zip(decisions, means, strict=True)):
            rows.append({"cell": cell, "communities": communities, "sessions": 6, "scenario": "s", "replicate": r,
                         "target": "x", "truth": 0.2, "mean": m, "lower": m - 0.05, "upper": m + 0.05,
                         "covered": abs(m - 0.2) <= 0.05, "width": 0.1, "diagnostics_passed": r != 0,
                         "recompiled": False, "fit_seconds": 1.0, "rule_excludes_zero_95": bool(d)})
    return pd.DataFrame(rows)


def test_summaries_on_a_hand_made_table():
    s = summarize(hand_made_results()).set_index("communities")
    assert s.loc[10, "power"] == 0.5 and s.loc[20, "power"] == 1.0
    assert s.loc[10, "bias"] == pytest.approx(0.0)
    assert s.loc[10, "rmse"] == pytest.approx(np.sqrt((0.01 + 0.01 + 0 + 0) / 4))
    assert s.loc[20, "rmse"] == pytest.approx(np.sqrt((0.0016 * 2) / 4))
    assert s.loc[10, "coverage"] == 0.5 and s.loc[20, "coverage"] == 1.0
    assert s.loc[10, "failed_diagnostics"] == 0.25                 # counted, not dropped
    assert (s.loc[10, "power_lower"], s.loc[10, "power_upper"]) == pytest.approx(clopper_pearson(2, 4))
    best = smallest_design(s.reset_index(), "x", "excludes_zero_95", power=0.8)
    assert best["communities"] == 20
    assert smallest_design(s.reset_index(), "x", "excludes_zero_95", power=0.4)["communities"] == 10
    assert smallest_design(s.reset_index(), "x", "excludes_zero_95", power=1.01) is None


# ---------------------------------------------------------------- the runner
def comparable(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=TIMING).reset_index(drop=True)


@pytest.fixture(scope="module")
def serial_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    run(Plan.from_path(PLAN), str(out), workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def serial(serial_folder):
    return run(Plan.from_path(PLAN), str(serial_folder), progress=False).load()     # all done: no refits


def test_serial_run_stores_every_replicate_with_diagnostics(serial):
    plan = Plan.from_path(PLAN)
    assert len(serial) == len(plan.cells()) * plan.replicates * len(plan.targets)
    assert serial.groupby(["cell", "replicate"]).size().eq(len(plan.targets)).all()
    assert {"r_hat", "ess_bulk", "ess_tail", "divergences", "diagnostics_passed", "fit_seconds"} <= set(serial)
    assert not serial["recompiled"].any()                          # one compile per cell
    growth = serial[serial["target"] == "beta_time[time]"]
    assert (growth["truth"] == 0.1).all() and growth["mean"].between(-0.2, 0.4).all()


def test_local_dask_workers_and_a_dask_scheduler_give_the_same_results(serial, tmp_path):
    from dask.distributed import LocalCluster

    two = run(Plan.from_path(PLAN), str(tmp_path / "two"), workers=2, progress=False).load()
    pd.testing.assert_frame_equal(comparable(two), comparable(serial))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = run(Plan.from_path(PLAN), str(tmp_path / "remote"), scheduler=cluster.scheduler_address,
                     progress=False).load()
    pd.testing.assert_frame_equal(comparable(remote), comparable(serial))


def test_killed_run_resumes_to_the_same_results(serial, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lcbayes.cli", "power", str(PLAN), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(out.glob("replicates/*/*.parquet"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(out.glob("replicates/*/*.parquet")))
    assert 2 <= finished < 6, "the run was to be killed part-way"
    resumed = run(Plan.from_path(PLAN), str(out), progress=False).load()
    pd.testing.assert_frame_equal(comparable(resumed), comparable(serial))


@pytest.mark.review_case(106)
def test_a_damaged_replicate_file_is_redone_not_fatal(serial_folder, serial, tmp_path):
    """A replicate file cut short outside lcbayes: summarising names it and the fix; a rerun sets it aside
    (*.unreadable) and redoes that replicate, giving the uninterrupted results."""
    out = tmp_path / "damaged"
    shutil.copytree(serial_folder, out)
    victim = sorted(out.glob("replicates/*/*.parquet"))[1]
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(ResultFileError, match="cannot be read.*Fix: run the plan again"):
        ResultStore(out, "{}", Plan.from_path(PLAN).hash()).load()
    redone = run(Plan.from_path(PLAN), str(out), progress=False).load()
    pd.testing.assert_frame_equal(comparable(redone), comparable(serial))
    assert victim.with_suffix(".unreadable").exists()


@pytest.mark.review_case(107, 114)
def test_result_files_are_readable_as_the_umask_allows_and_a_damaged_plan_file_is_explained(tmp_path):
    store = ResultStore(tmp_path / "r", "{}", "abc")
    path = store.write("cell", 0, pd.DataFrame({"x": [1.0]}))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    (tmp_path / "r" / "plan.json").write_text("{not json")
    with pytest.raises(ResultFileError, match="plan.json' is damaged.*Fix: "):
        ResultStore(tmp_path / "r", "{}", "abc")


def test_changed_plan_is_refused_and_more_replicates_extend(serial, tmp_path):
    out = tmp_path / "grow"
    run(Plan.parse(plan_dict(replicates=1), base=PLAN.parent), str(out), progress=False)
    with pytest.raises(PlanChangedError, match="another power plan"):
        run(Plan.parse(plan_dict(replicates=1, seed=99)), str(out), progress=False)
    grown = run(Plan.from_path(PLAN), str(out), progress=False).load()
    pd.testing.assert_frame_equal(comparable(grown), comparable(serial))
    assert json.loads((out / "plan.json").read_text())["hash"] == Plan.from_path(PLAN).hash()


def test_cli_summarises_a_finished_run_without_refitting(serial_folder, serial):
    from typer.testing import CliRunner

    from lcbayes.cli import app

    before = {f: f.stat().st_mtime_ns for f in serial_folder.glob("replicates/*/*.parquet")}
    result = CliRunner().invoke(app, ["power", str(PLAN), "--out", str(serial_folder), "--quiet"])
    assert result.exit_code == 0, result.output
    assert before == {f: f.stat().st_mtime_ns for f in serial_folder.glob("replicates/*/*.parquet")}
    written = pd.read_csv(serial_folder / "summary.csv")
    expected = summarize(serial)
    np.testing.assert_allclose(written["power"], expected["power"])
    assert "smallest design with power >= 0.8" in result.output
    assert (serial_folder / "power_beta_time.png").stat().st_size > 10_000
