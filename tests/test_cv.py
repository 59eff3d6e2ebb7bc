"""K-fold cross-validation by community (lcbayes.cv): folds, what leaving participants out removes from each model's
likelihood, a fold's refit against a fit to the study without those communities, and the command."""

from __future__ import annotations

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytest
from typer.testing import CliRunner

from lcbayes.cli import app
from lcbayes.cv import KFold, community_folds, compare, fold_elpd, fold_seed, kfold, model_key
from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models import create
from lcbayes.power.runner import FitterCache

FAST = {"chains": 2, "draws": 500, "tune": 500}


@pytest.fixture(scope="module")
def sim():
    return simulate_study(Design(communities=6, participants=6, sessions=4, predictor_missing=0.1, likert=5), seed=3)


@pytest.fixture(scope="module")
def study(sim) -> Study:
    return Study.from_frame(sim.table, sim.roles)


def test_folds_are_balanced_seeded_and_checked():
    folds = community_folds(23, 5, seed=1)
    assert sorted(np.bincount(folds)) == [4, 4, 5, 5, 5]
    assert np.array_equal(folds, community_folds(23, 5, seed=1))
    assert not np.array_equal(folds, community_folds(23, 5, seed=2))
    with pytest.raises(ConfigError, match="folds must be between 2 and the number of communities"):
        community_folds(6, 7, seed=1)


SPECS = {
    "climate_growth": {"model": "climate_growth", "outcome": "climate"},
    "consensus_emergence": {"model": "consensus_emergence", "outcome": "climate",
                            "options": {"learning": "learning", "composition": ["lgo_sd"], "community_scale": True}},
    "knowledge_sharing": {"model": "knowledge_sharing", "outcome": "sharing"},
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_leaving_participants_out_removes_exactly_their_observations(name, study):
    """At any parameter values, with the first community's participants left out: the log density no longer depends
    on their scores (changed here), and in models A and B, whose likelihood is the stored per-participant log
    likelihood, it drops by exactly theirs (model B: climate and learning). (Model C's likelihood conditions on the
    sampled person means; its stored log likelihood integrates them out, so only the first check applies.)"""
    model = create(SPECS[name], study)
    graph = model.model
    keep = model.panel.community != 0
    logp = graph.compile_logp()
    parts = [graph[n] for n in ("loglik", "learning_loglik") if n in graph.named_vars]
    loglik = graph.compile_fn(graph.replace_rvs_by_values(parts), inputs=graph.value_vars, on_unused_input="ignore")
    point = graph.initial_point(random_seed=1)
    full = {v.name: v.get_value() for v in graph.data_vars}
    removed = sum(float(part[~keep].sum()) for part in loglik(point))
    lp_full = float(logp(point))
    scores = "values" if name == "knowledge_sharing" else "y"
    without = model.without_participants(full, keep)
    changed = dict(without)
    axis = model.observation_masks["observed" if name == "knowledge_sharing" else "mask"]
    index = [slice(None)] * full[scores].ndim
    index[axis] = ~keep
    changed[scores] = full[scores].copy()
    changed[scores][tuple(index)] += 1.7
    try:
        with graph:
            pm.set_data(without)
        lp_without = float(logp(point))
        with graph:
            pm.set_data(changed)
        assert float(logp(point)) == pytest.approx(lp_without, rel=1e-12)
    finally:
        with graph:
            pm.set_data(full)
    assert lp_without != pytest.approx(lp_full) and removed < 0
    if name != "knowledge_sharing":
        assert lp_without == pytest.approx(lp_full - removed, rel=1e-9, abs=1e-6)


def test_a_folds_refit_matches_a_fit_without_its_communities(sim, study):
    """Leaving a fold out by its observed flags gives the posterior of a fit to the study without those communities
    (population parameters within Monte Carlo error), and its communities are scored with new community effects."""
    model = create(SPECS["climate_growth"], study)
    folds = community_folds(6, 3, seed=4)
    spec = {**model.spec.to_dict(), "priors": {k: p.to_dict() for k, p in model.priors.items()},
            "sampler": {**model.spec.to_dict()["sampler"], **FAST}}
    cache = FitterCache()
    rows = fold_elpd(spec, study, folds, 0, seed=4, cache=cache)
    assert len(rows) == (folds == 0).sum() and np.isfinite(rows["elpd"]).all()
    cached_model, compiled = cache.get(("cv", model_key(spec, study)), lambda: None)
    masked = compiled.sample(cached_model.without_participants(compiled.data_of(cached_model.model),
                                                               folds[cached_model.panel.community] != 0),
                             seed=fold_seed(4, 0))
    kept = [c for i, c in enumerate(model.coords["community"]) if folds[i] != 0]
    smaller = Study.from_frame(sim.table[sim.table["community"].isin(kept)].reset_index(drop=True), sim.roles)
    direct = create(spec, smaller)
    direct_idata = direct.fit(seed=11)

    for name in ("beta_time", "tau_community", "sigma"):
        a, b = masked.posterior[name], direct_idata.posterior[name]
        se = np.sqrt(az.mcse(a.to_dataset()).to_array().values.ravel() ** 2
                     + az.mcse(b.to_dataset()).to_array().values.ravel() ** 2)
        diff = np.abs(a.mean(("chain", "draw")).values.ravel() - b.mean(("chain", "draw")).values.ravel())
        assert np.all(diff < 4.5 * se + 0.02 * b.std(("chain", "draw")).values.ravel()), (name, diff, se)


def test_kfold_and_compare_on_a_small_study(study):
    model = create({**SPECS["climate_growth"], "sampler": FAST}, study)
    result = kfold(model, k=3, seed=4, progress=False)
    assert isinstance(result, KFold) and len(result.pointwise) == 6
    assert set(result.pointwise["fold"]) == {0, 1, 2} and np.isfinite(result.elpd) and result.se > 0
    assert "3-fold cross-validation by community" in str(result)
    spec = {**model.spec.to_dict(), "priors": {k: p.to_dict() for k, p in model.priors.items()}}
    again = fold_elpd(spec, study, community_folds(6, 3, seed=4), 1, seed=4)   # same seed, same numbers
    pd.testing.assert_frame_equal(result.pointwise[result.pointwise["fold"] == 1].reset_index(drop=True),
                                  again.sort_values("community").reset_index(drop=True))
    shifted = KFold(result.pointwise.assign(elpd=result.pointwise["elpd"] - 1.0), 3, 4)
    table = compare({"a": result, "b": shifted})
    assert list(table.index) == ["a", "b"]
    assert table.loc["b", "elpd_diff"] == pytest.approx(-6.0) and table.loc["b", "dse"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ConfigError, match="other folds"):
        compare({"a": result, "c": KFold(result.pointwise, 3, 5)})


def test_cv_command_compares_specs(tmp_path, sim):
    data, roles = tmp_path / "s.csv", tmp_path / "r.toml"
    sim.table.to_csv(data, index=False)
    sim.roles.to_toml(roles)
    specs = []
    for label, trend in (("linear", "linear"), ("quadratic", "quadratic")):
        path = tmp_path / f"{label}.toml"
        path.write_text(f'model = "climate_growth"\noutcome = "climate"\n[options]\ntrend = "{trend}"\n'
                        '[sampler]\nchains = 2\ndraws = 200\ntune = 200\n')
        specs.append(path)
    result = CliRunner().invoke(app, ["cv", *map(str, specs), "--data", str(data), "--roles", str(roles),
                                      "--folds", "2", "--workers", "1", "--quiet", "--out", str(tmp_path / "cv")])
    assert result.exit_code == 0, result.output
    assert "elpd_diff" in result.output and (tmp_path / "cv" / "linear_kfold.csv").exists()
    bad = CliRunner().invoke(app, ["cv", str(specs[0]), "--data", str(data), "--roles", str(roles), "--folds", "9"])
    assert bad.exit_code == 2 and "folds must be between 2" in bad.output
