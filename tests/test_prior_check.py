"""The two-sided prior predictive check and the natural-scale default priors it holds to account."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import MODELS
from lcbayes.models.spec import read_spec
from lcbayes.prior_check import MAX_OUTSIDE, WITHIN_SD_BAND, check_measure, within_sd

ROOT = Path(__file__).resolve().parents[1]
SPECS = {name: read_spec(ROOT / "models" / f"{name}.toml") for name in MODELS}
SMALL = Design(communities=10, participants=8, sessions=5, predictor_missing=0.1)


def _study(**design) -> Study:
    sim = simulate_study(Design(**{**SMALL.__dict__, **design}), seed=3)
    return Study.from_frame(sim.table, sim.roles)


STUDIES = {
    "example": lambda: Study.from_path(ROOT / "data" / "example_study.csv", ROOT / "data" / "example_roles.toml"),
    "7-point items": lambda: _study(likert=7),
    "3 items per scale": lambda: _study(likert=5, items=3),
}


def test_within_sd_pools_cell_variances():
    values = np.array([[1.0, 3.0, 2.0, 2.0, 5.0], [0.0, 0.0, 1.0, 1.0, 1.0]])
    cell = np.array([0, 0, 1, 1, 1])
    # draw 1: cell variances 2 and 3 (ddof 1): sqrt(2.5); draw 2: 0 and 0
    assert within_sd(values, cell, np.array([2.0, 3.0])) == pytest.approx([np.sqrt(2.5), 0.0])


@pytest.fixture(scope="module")
def small():
    return _study(likert=5)


def test_verdicts_name_the_side_and_the_numbers(small):
    obs = np.flatnonzero(~np.isnan(small.values("climate")))
    rng = np.random.default_rng(0)
    observed = small.values("climate")[obs]

    def check(center, spread):
        return check_measure(small, "climate", center + spread * rng.standard_normal((200, len(obs))), obs)

    good = check(observed, 0.3)
    assert good.passed and good.verdict == "ok" and good.share_outside < MAX_OUTSIDE
    wide = check(3.0, 4.0)           # the former default priors' scale: most scores off a 1-5 scale
    assert wide.verdict == "too wide" and wide.share_outside > 0.5
    assert any("outside [1, 5]" in p for p in wide.problems)
    narrow = check(3.0, 0.05)        # almost no spread, observed within-community SD far above every simulated one
    assert narrow.verdict == "too narrow"
    assert narrow.within_sd[1] < WITHIN_SD_BAND[0] * 2 and narrow.p_within_sd == 0.0
    shifted = check(2.0 + 0 * observed, 0.4)     # plausible spread, implausible location
    assert shifted.verdict == "too narrow" and any("observed mean" in p for p in shifted.problems)


@pytest.mark.parametrize("data", list(STUDIES))
@pytest.mark.parametrize("model", list(MODELS))
def test_default_priors_pass_on_the_natural_scale(model, data):
    """The issue's targets: at most 10% of simulated scores outside the response range, the median simulated
    within-community SD between 0.1 and 1 half range; and no prior-data conflict, for every measure simulated."""
    study = STUDIES[data]()
    for check in MODELS[model](study, SPECS[model]).prior_check(draws=200, seed=1):
        half = (check.high - check.low) / 2
        assert check.declared and check.share_outside <= MAX_OUTSIDE, check
        assert WITHIN_SD_BAND[0] * half <= check.within_sd[1] <= WITHIN_SD_BAND[1] * half, check
        assert check.passed, check.problems


def test_priors_do_not_depend_on_the_data_values(small):
    """Same design, other scores: the same default priors (they come from the declared range and the design)."""
    other = small.with_values({"climate": np.clip(small.values("climate") + 0.7, 1, 5)})
    spec = {"outcome": "climate"}
    assert MODELS["climate_growth"](small, spec).priors == MODELS["climate_growth"](other, spec).priors


def test_former_wide_priors_are_flagged(small):
    wide = {"beta_time": {"dist": "Normal", "mu": 0.0, "sigma": 1.1},
            "tau_participant": {"dist": "HalfNormal", "sigma": [0.8, 0.5]}}
    [check] = MODELS["climate_growth"](small, {"outcome": "climate", "priors": wide}).prior_check(draws=200)
    assert check.verdict.startswith("too wide") and check.share_outside > 0.3
