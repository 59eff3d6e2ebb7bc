"""The layout rule of the report's figures (no overlapping text) and the grouped forest plot."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import xarray as xr

from lcbayes.plots import SCALE_SPLIT, _scale_panels, overlapping_text, plot_forest

matplotlib.use("Agg")


def test_the_layout_rule_finds_overlapping_text_and_passes_separate_text():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set(title="a title", xlabel="x label", ylabel="y label")
    assert overlapping_text(fig) == []
    ax.text(0.5, 0.5, "first note", transform=ax.transAxes)
    ax.text(0.52, 0.5, "second note", transform=ax.transAxes)
    assert overlapping_text(fig) == [("first note", "second note")]
    crowded, ax = plt.subplots(figsize=(2, 2))
    ax.set_xticks(np.arange(30), [f"label {i}" for i in range(30)])     # 30 tick labels on 2 inches
    assert len(overlapping_text(crowded)) > 10
    plt.close("all")


def test_parameters_of_very_different_scales_get_panels_of_their_own():
    extent = {"a": 0.05, "b": 0.2, "c": 0.3, "d": 3.0, "e": 80.0}
    panels = _scale_panels(list("abcde"), extent)
    assert panels == [["a", "b", "c"], ["d"], ["e"]] or panels == [["a", "b", "c", "d"], ["e"]]
    for panel in panels:
        assert max(extent[n] for n in panel) <= SCALE_SPLIT * min(extent[n] for n in panel)
    assert _scale_panels(["b", "a"], extent) == [["b", "a"]]            # within a factor 10: one panel, order kept


@pytest.mark.parametrize("seed", [0, 1])
def test_forest_draws_a_panel_per_role_and_scale_with_every_element(seed):
    rng = np.random.default_rng(seed)
    post = xr.Dataset({"beta_intercept": (("chain", "draw"), 3.4 + 0.05 * rng.standard_normal((2, 200))),
                       "beta_time": (("chain", "draw", "term"), 0.04 + 0.01 * rng.standard_normal((2, 200, 2))),
                       "tau": (("chain", "draw"), np.abs(0.2 + 0.05 * rng.standard_normal((2, 200))))},
                      coords={"term": ["linear", "quadratic"]})
    axes = plot_forest(xr.DataTree.from_dict({"posterior": post}),
                       {"location": ["beta_intercept", "beta_time"], "random-effect SDs": ["tau"]})
    assert [ax.get_title(loc="left") for ax in axes] == ["location", "location (other scale)", "random-effect SDs"]
    labels = [[t.get_text() for t in ax.get_yticklabels()] for ax in axes]
    assert labels == [["beta_time[quadratic]", "beta_time[linear]"], ["beta_intercept"], ["tau"]]  # first on top
    assert overlapping_text(axes[0].figure) == []
