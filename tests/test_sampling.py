"""Sampler back ends: seeds, compile once / swap data, and the spec's sampler settings."""

from __future__ import annotations

import os
import signal
import threading

import arviz as az
import numpy as np
import pymc as pm
import pytest

from lcbayes.errors import ConfigError, SamplingInterrupted
from lcbayes.models.spec import ModelSpec, SamplerSettings
from lcbayes.sampling import CompiledModel, complete


def normal_mean_model(y: np.ndarray) -> pm.Model:
    with pm.Model() as model:
        data = pm.Data("y", y)
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("obs", mu, 1.0, observed=data, shape=data.shape)
    return model


@pytest.mark.parametrize("backend", ["nutpie", "nutpie-jax", "numpyro", "pymc"])
def test_backends_agree_with_the_conjugate_posterior(backend):
    y = np.random.default_rng(0).normal(2.0, 1.0, size=50)
    settings = SamplerSettings(backend=backend, chains=2, draws=500, tune=300, seed=3)
    idata = CompiledModel(normal_mean_model(y), settings).sample()
    post_mean = y.sum() / (len(y) + 1 / 100)           # N(0, 10^2) prior, unit variance
    post_sd = 1 / np.sqrt(len(y) + 1 / 100)
    draws = idata.posterior["mu"].values
    assert draws.shape == (2, 500)
    assert abs(draws.mean() - post_mean) < 4 * post_sd / np.sqrt(200)
    assert draws.std() == pytest.approx(post_sd, rel=0.15)


def test_same_seed_same_draws_and_new_data_without_recompiling():
    y = np.random.default_rng(1).normal(size=30)
    compiled = CompiledModel(normal_mean_model(y), SamplerSettings(chains=2, draws=300, tune=200, seed=5))
    a, b = compiled.sample(), compiled.sample()
    np.testing.assert_array_equal(a.posterior["mu"].values, b.posterior["mu"].values)
    c = compiled.sample(seed=6)
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)
    shifted = compiled.sample({"y": y + 5.0})
    assert float(shifted.posterior["mu"].mean()) == pytest.approx(float(a.posterior["mu"].mean()) + 5.0, abs=0.1)


def test_sampler_settings_are_validated():
    with pytest.raises(ConfigError, match="backend 'stan' unknown"):
        SamplerSettings(backend="stan")
    with pytest.raises(ConfigError, match="unknown sampler setting 'draw'. Did you mean 'draws'"):
        SamplerSettings().updated(draw=10)
    with pytest.raises(ConfigError, match="target_accept must lie in"):
        SamplerSettings(target_accept=1.2)


def test_spec_hash_changes_with_content_not_progress():
    base = {"outcome": "climate", "options": {}, "sampler": {"seed": 1}}
    a = ModelSpec.parse(base, "climate_growth", {"trend": "linear"})
    b = ModelSpec.parse({**base, "sampler": {"seed": 1, "progress": True}}, "climate_growth", {"trend": "linear"})
    c = ModelSpec.parse({**base, "sampler": {"seed": 2}}, "climate_growth", {"trend": "linear"})
    assert a.hash() == b.hash() != c.hash()
    with pytest.raises(ConfigError, match="this spec is for model 'knowledge_sharing'"):
        ModelSpec.parse({**base, "model": "knowledge_sharing"}, "climate_growth", {})


def test_refit_with_data_of_a_model_built_on_new_data():
    """A model built on new data of the same design hands its data to the compiled one; a
    model of another shape is refused instead of silently sampled with stale constants."""
    from lcbayes.data.simulate import Design, simulate_study
    from lcbayes.data.study import Study
    from lcbayes.models import ConsensusEmergence

    def model(seed, communities=6, priors=None):
        sim = simulate_study(Design(communities=communities, participants=5, sessions=4), seed=seed)
        return ConsensusEmergence(Study.from_frame(sim.table, sim.roles), {
            "outcome": "climate", "options": {"organization": False, "composition": ["lgo_sd"]},
            "priors": priors or {}})

    first = model(1)
    # priors are graph constants: the second model takes the first's (data-scaled) priors
    second = model(2, priors={k: p.to_dict() for k, p in first.priors.items()})
    compiled = CompiledModel(first.model, SamplerSettings(backend="nutpie-jax", chains=1, draws=200, tune=200))
    data = compiled.data_of(second.model)
    np.testing.assert_array_equal(data["y"], second.location.y)
    np.testing.assert_array_equal(data["composition_z"], second.z)
    refit = compiled.sample(data)
    direct = CompiledModel(second.model, compiled.settings).sample()
    np.testing.assert_allclose(refit.posterior["alpha_intercept"].values, direct.posterior["alpha_intercept"].values)
    with pytest.raises(ValueError, match="differs in structure"):
        compiled.data_of(model(3, communities=7).model)


@pytest.mark.review_case(72, 96, 113)
def test_an_interrupted_run_raises_instead_of_returning_partial_draws():
    """Ctrl-C during sampling: the back ends return the draws so far (shorter chains padded with NaN); lcbayes raises
    SamplingInterrupted (a KeyboardInterrupt) so that nothing truncated is saved, reported or stored."""
    model = normal_mean_model(np.zeros(20))
    compiled = CompiledModel(model, SamplerSettings(chains=2, draws=2_000_000, tune=100, seed=1))   # compiled first
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # as in a terminal (a background job
    timer = threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT))   # of a script starts with it ignored)
    timer.start()
    try:
        with pytest.raises(SamplingInterrupted, match="draws; the partial draws were discarded"):
            compiled.sample(cores=1)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def test_complete_checks_every_chain_and_draw():
    settings = SamplerSettings(chains=2, draws=4)
    full = az.from_dict({"posterior": {"mu": np.ones((2, 4))}})
    assert complete(full, settings) is full
    padded = np.ones((2, 4))
    padded[1, 2:] = np.nan                         # the second chain stopped early
    for idata in (az.from_dict({"posterior": {"mu": padded}}), az.from_dict({"posterior": {"mu": np.ones((2, 3))}}),
                  az.from_dict({"posterior": {"mu": np.ones((1, 4))}})):
        with pytest.raises(SamplingInterrupted, match=r"after \d+ of 8 draws"):
            complete(idata, settings)
