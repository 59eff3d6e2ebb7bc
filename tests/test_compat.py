"""The dependency adapters of lcbayes.compat: each fails here, loudly, when the library
changes the internal it wraps; and figures for files leave the user's matplotlib backend alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pymc as pm
import pytest

from lcbayes.compat import (
    DependencyChangedError,
    agg_backend,
    ecdf_confidence_band,
    nutpie_data_names,
)
from lcbayes.errors import LcbayesError


def tiny_model() -> pm.Model:
    with pm.Model() as model:
        y = pm.Data("y", np.array([0.1, -0.3, 0.4]))
        scale = pm.Data("scale", 2.0)
        mu = pm.Normal("mu", 0, scale)
        pm.Normal("obs", mu, 1.0, observed=y, shape=y.shape)
    return model


@pytest.mark.parametrize("backend, gradient", [("numba", "pytensor"), ("jax", "jax")])
def test_nutpie_data_names_of_both_back_ends(backend, gradient):
    """nutpie's Numba models have public ``shared_data``, its JAX models only ``_shared_data``:
    if either moves, this fails (and so would every refit of the power runner)."""
    import nutpie

    compiled = nutpie.compile_pymc_model(tiny_model(), backend=backend, gradient_backend=gradient,
                                         freeze_model=False)
    assert nutpie_data_names(compiled) == {"y", "scale"}
    swapped = compiled.with_data(y=np.array([1.0, 2.0, 3.0]))       # what the names are used for
    assert nutpie_data_names(swapped) == {"y", "scale"}


def test_nutpie_data_names_of_something_else_is_a_clear_error():
    with pytest.raises(DependencyChangedError, match=r"nutpie \d[\w.]* no longer provides the data") as info:
        nutpie_data_names(object())
    assert isinstance(info.value, LcbayesError)
    assert "Fix: install nutpie>=0.16.11,<0.17" in str(info.value)


def test_ecdf_band_shapes_and_bounds():
    """ArviZ's (unexported) simultaneous ECDF band: one lower and upper value per point,
    inside [0, 1], non-decreasing, around the true CDF, wider for fewer draws, and simultaneous: uniform ECDFs stay
    inside it everywhere about 95% of the time (pointwise 95% bands would hold far less often)."""
    k = np.arange(20)
    cdf = (k + 1) / 21
    lower, upper = ecdf_confidence_band(100, cdf, prob=0.95)
    assert lower.shape == upper.shape == (20,)
    assert np.all((0 <= lower) & (lower <= cdf) & (cdf <= upper) & (upper <= 1))
    assert np.all(np.diff(lower) >= 0) and np.all(np.diff(upper) >= 0)
    few_lower, few_upper = ecdf_confidence_band(20, cdf, prob=0.95)
    assert np.all(few_upper - few_lower >= upper - lower - 1e-12) and np.any(few_upper - few_lower > upper - lower)
    ranks = np.random.default_rng(1).integers(0, 21, size=(2000, 100))      # 2000 studies of 100 ranks in 0..20
    ecdf = (ranks[:, None, :] <= k[None, :, None]).mean(-1)
    inside = ((ecdf >= lower) & (ecdf <= upper)).all(-1).mean()
    assert 0.92 <= inside <= 0.98, inside


def test_agg_backend_switches_for_the_block_only():
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        with agg_backend():
            assert matplotlib.get_backend().lower() == "agg"
        assert matplotlib.get_backend() == "svg"
    finally:
        plt.switch_backend(before)


def test_importing_the_report_leaves_the_matplotlib_backend_alone():
    """`import lcbayes.report` (e.g. to call verify from a notebook) keeps the user's backend."""
    code = ("import matplotlib; matplotlib.use('svg'); import lcbayes.report; "
            "import matplotlib.pyplot; print(matplotlib.get_backend())")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "svg"


def test_a_missing_extra_names_its_install_line(monkeypatch):
    import lcbayes.compat as compat
    import lcbayes.sampling as sampling
    from lcbayes.errors import MissingExtraError
    from lcbayes.power import runner

    with pytest.raises(MissingExtraError, match=r"the thing needs no_such_package, which is not installed\. "
                                                r"Fix: pip install 'lcbayes\[jax\]'\."):
        compat.require("no_such_package.sub", "jax", "the thing")
    assert compat.installed("numpy") and not compat.installed("no_such_package.sub")
    monkeypatch.setattr(sampling, "installed", lambda module: False)       # a core install: no JAX
    assert sampling.fastest_compiling_backend() == "nutpie"
    monkeypatch.setattr(runner, "installed", lambda module: False)         # no Dask: one worker, this process
    assert runner.default_workers(1) == 1
