"""The report's posterior predictive check computes p-values that can flag a misfit."""

from __future__ import annotations

import types

import numpy as np
import xarray as xr

from lcbayes.data.roles import ResponseRange
from lcbayes.report.model_section import ModelSection, _posterior_predictive


def section_with(shift: float, scale: float, y: np.ndarray | None = None) -> ModelSection:
    """A section whose model replicates y (community x session groups of 5, 4 sessions, scores on 1-5) as
    N(3 + shift, scale * 0.5)."""
    rng = np.random.default_rng(0)
    n, draws = 200, 400
    y = rng.normal(3.0, 0.5, n) if y is None else y
    rep = 3.0 + shift + scale * 0.5 * rng.standard_normal((1, draws, n))
    obs = np.arange(n)
    idata = xr.DataTree.from_dict({"observed_data": xr.Dataset({"y": ("obs", y)}, coords={"obs": obs}),
                                   "posterior_predictive": xr.Dataset({"y": (("chain", "draw", "obs"), rep)},
                                                                      coords={"obs": obs})})
    study = types.SimpleNamespace(idx={"community": obs // 20, "session": (obs // 5) % 4},
                                  response_range=lambda name: ResponseRange(1.0, 5.0))
    model = types.SimpleNamespace(spec=types.SimpleNamespace(outcome="y"), study=study,
                                  coords={"session": [1, 2, 3, 4]}, sample_posterior_predictive=lambda seed: idata)
    return ModelSection(entry=None, model=model)


def test_p_values_are_central_for_a_model_that_fits_and_extreme_for_one_that_does_not():
    good = section_with(0.0, 1.0)
    _posterior_predictive(good, seed=1)
    p = good.tables["ppc"]["p_value"]
    assert len(p) == 3 + 2 * 4 + 2                     # overall, per session, at the bounds
    assert p[["mean", "sd", "mean community x session SD"]].between(0.1, 0.9).all(), p
    assert p.drop(["share at the lowest score", "share at the highest score"]).between(0.025, 0.975).all(), p

    shifted = section_with(0.3, 1.0)        # replicated means 0.3 above the data (SE of the mean 0.035)
    _posterior_predictive(shifted, seed=1)
    p = shifted.tables["ppc"]["p_value"]
    assert p["mean"] > 0.99 and all(p[f"mean, session {t}"] > 0.9 for t in (1, 2, 3, 4))
    too_wide = section_with(0.0, 1.5)       # replicated spread 50% too large
    _posterior_predictive(too_wide, seed=1)
    p = too_wide.tables["ppc"]["p_value"]
    assert p["sd"] > 0.99 and p["mean community x session SD"] > 0.99
    assert any("Posterior predictive check" in w for w in too_wide.warnings)


def test_a_ceiling_the_model_does_not_replicate_is_flagged():
    """Scores piled at the top of a 1-5 scale, replicated by an unbounded normal model of the same mean and SD: the
    share at the highest score lies in the tail of its replicates."""
    rng = np.random.default_rng(2)
    y = np.clip(np.round(rng.normal(4.6, 0.9, 200)), 1, 5)
    section = section_with(float(y.mean()) - 3.0, float(y.std()) / 0.5, y)
    _posterior_predictive(section, seed=1)
    table = section.tables["ppc"]
    assert table.loc["share at the highest score", "observed"] > 0.5
    assert table.loc["share at the highest score", "p_value"] < 0.025
    assert any("share at the highest score" in w for w in section.warnings)


def test_predictive_streams_are_independent_and_reproducible():
    """Random effects and residual noise come from different streams of one seed (the same
    seed used to give both the same normals)."""
    from lcbayes.models.components import predictive_streams

    effects, noise = predictive_streams(3)
    a, b = effects.standard_normal(1000), noise.standard_normal(1000)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.1
    again, _ = predictive_streams(3)
    np.testing.assert_array_equal(again.standard_normal(1000), a)


def test_emergence_evidence_without_emergence_is_a_clear_error():
    import pytest

    from lcbayes.errors import ConfigError
    from lcbayes.tables import emergence_evidence

    fit = xr.DataTree.from_dict({"posterior": xr.Dataset({"alpha_intercept": (("chain", "draw"), np.zeros((1, 5)))})})
    with pytest.raises(ConfigError, match="emergence = false"):
        emergence_evidence(fit)


def test_conclusions_carry_the_caveats_of_the_estimates_they_rest_on():
    """Each check an estimate fails qualifies the conclusions that rest on it, and only those: convergence
    (provisional), power-scaling (prior-data conflict; strong prior / weak likelihood) and the posterior SD against
    the prior SD; a fit that failed its convergence checks makes every conclusion provisional."""
    import pandas as pd

    from lcbayes.models.base import Conclusion
    from lcbayes.report.model_section import WEAK_IDENTIFICATION, qualified

    summary = pd.DataFrame({"sd": [0.1, 0.9, 0.2, 0.3], "r_hat": [1.0, 1.0, 1.05, 1.0],
                            "ess_bulk": [900.0, 900.0, 900.0, 150.0], "ess_tail": [900.0, 900.0, 120.0, 800.0]},
                           index=["a", "b", "c[x]", "c[y]"])
    section = ModelSection(entry=None, model=None)
    section.results["diagnostics"] = {"converged": True}
    section.tables.update(parameters=summary.iloc[:2], derived=summary.iloc[2:],
                          sensitivity=pd.DataFrame({"diagnosis": ["", "prior-data conflict"]}, index=["a", "b"]))
    section.prior_sd = pd.Series({"a": 1.0, "b": 1.0})
    clean = qualified(section, Conclusion("a is positive", ("a",)))
    assert clean.caveats == () and not clean.provisional
    weak = qualified(section, Conclusion("b is positive", ("b",), ("the model's own caveat",)))
    assert weak.caveats[0] == "the model's own caveat" and not weak.provisional
    assert any("prior-data conflict" in x for x in weak.caveats)
    assert any("posterior SD of b is 90% of its prior SD" in x for x in weak.caveats) and 0.9 >= WEAK_IDENTIFICATION
    one = qualified(section, Conclusion("c[x] is positive", ("c[x]",)))
    assert one.provisional and one.caveats == ("not converged: c[x] miss R-hat <= 1.01 or ESS >= 400",)
    assert qualified(section, Conclusion("c is positive", ("c",))).caveats[0].startswith("not converged: c[x], c[y]")
    assert qualified(section, "a note").caveats == ()
    section.results["diagnostics"] = {"converged": False}
    assert qualified(section, "a note").provisional and qualified(section, clean).provisional
