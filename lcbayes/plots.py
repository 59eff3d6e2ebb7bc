"""Figures from posterior draws: functions of a fit's DataTree (in memory, or loaded with ``Model.load``), each
returning the matplotlib Axes it drew on. The observed data they overlay come from the fit's ``constant_data``
group."""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from lcbayes.tables import HDI, outcome_of, support_effect_table, within_between_table


def figure_of(plot_collection: Any) -> Any:
    """The matplotlib figure an ArviZ plot (a ``PlotCollection`` drawn with ``backend="matplotlib"``) drew on."""
    return plot_collection.viz["figure"].item()


def _axes(ax: Any, size: tuple[float, float]) -> Any:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1] if ax is None else ax


def _community_bands(ax: Any, draws: Any, communities: list, hdi_prob: float, alpha: float, linewidth: float) -> list:
    """Posterior mean line and HDI band over sessions of each community's ``draws``, one
    viridis colour each; returns the (community, colour) pairs."""
    import matplotlib

    sessions = np.asarray(draws["session"].values)
    colors = list(zip(communities, matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(communities))), strict=True))
    for comm, color in colors:
        one = draws.sel(community=comm)
        band = az.hdi(one, prob=hdi_prob).transpose("session", "ci_bound").values
        ax.fill_between(sessions, band[:, 0], band[:, 1], color=color, alpha=alpha, linewidth=0)
        ax.plot(sessions, one.mean(("chain", "draw")).values, color=color, linewidth=linewidth)
    return colors


def plot_trajectories(idata: xr.DataTree, communities: list | None = None, hdi_prob: float = HDI,
                      ax: Any = None) -> Any:
    """Posterior community trajectories (``trajectory_community`` or ``strength``: mean and
    HDI band per community) with the observed community means as dots."""
    post = idata["posterior"].to_dataset()
    draws_all = post["trajectory_community"] if "trajectory_community" in post else post["strength"]
    outcome = outcome_of(idata)
    chosen = communities or list(draws_all["community"].values)
    ax = _axes(ax, (7, 4.5))
    table = idata["constant_data"].to_dataset()[["community", "session", outcome]].to_dataframe()
    observed = table.groupby(["community", "session"])[outcome].mean()
    for comm, color in _community_bands(ax, draws_all, chosen, hdi_prob, 0.15, 1.5):
        if comm in observed.index.get_level_values(0):
            ax.plot(observed.loc[comm].index, observed.loc[comm].values, "o", color=color, markersize=3)
    ax.set(xlabel="session", ylabel=outcome,
           title=f"{outcome}: community trajectories ({int(hdi_prob * 100)}% HDI), dots = observed means")
    return ax


def plot_consensus(idata: xr.DataTree, hdi_prob: float = HDI, ax: Any = None) -> Any:
    """The consensus index (``consensus_index``, e.g. r*_wg(J)) over sessions per community, with HDI bands and its
    threshold as a line; without an index (unknown response scale), the latent within-community SD
    (``consensus_sd``)."""
    post = idata["posterior"].to_dataset()
    draws = post["consensus_index"] if "consensus_index" in post else post["consensus_sd"]
    ax = _axes(ax, (7, 4.5))
    _community_bands(ax, draws, list(draws["community"].values), hdi_prob, 0.08, 1.2)
    if "threshold" in draws.attrs:
        ax.axhline(draws.attrs["threshold"], color="grey", linestyle="--", linewidth=1,
                   label=f"consensus threshold {draws.attrs['threshold']}")
        ax.legend(frameon=False)
    label = draws.attrs.get("label", "latent within-community SD (consensus_sd)")
    ax.set(xlabel="session", ylabel=label,
           title=f"Consensus emergence per community ({int(hdi_prob * 100)}% HDI)")
    return ax


def plot_consensus_by(idata: xr.DataTree, ax: Any = None) -> Any:
    """P(consensus reached by session t) per community: the posterior survival curves of the time to consensus
    (``consensus_reached_by``), one step line per community."""
    import matplotlib

    p = idata["posterior"].to_dataset()["consensus_reached_by"].mean(("chain", "draw"))
    ax = _axes(ax, (7, 4.5))
    communities = list(p["community"].values)
    for comm, color in zip(communities, matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(communities))),
                           strict=True):
        ax.step(p["session"].values, p.sel(community=comm).values, where="post", color=color, linewidth=1.2,
                marker="o", markersize=3)   # markers: the last session's value is a point, not only a jump
    ax.set(xlabel="session", ylabel="P(consensus reached by session)", ylim=(-0.02, 1.02),
           title="Time to consensus per community (posterior probability, censored at the last session)")
    return ax


def plot_strength_consensus(idata: xr.DataTree, hdi_prob: float = HDI, ax: Any = None) -> Any:
    """Strength against consensus (``consensus_sd``) per community at the last session, with HDIs."""
    post = idata["posterior"].to_dataset()
    last = post["session"].values[-1]
    ax = _axes(ax, (6, 5))
    x, y = post["strength"].sel(session=last), post["consensus_sd"].sel(session=last)
    hx, hy = (az.hdi(d, prob=hdi_prob).transpose("community", "ci_bound").values for d in (x, y))
    mx, my = x.mean(("chain", "draw")).values, y.mean(("chain", "draw")).values
    ax.errorbar(mx, my, xerr=[mx - hx[:, 0], hx[:, 1] - mx], yerr=[my - hy[:, 0], hy[:, 1] - my],
                fmt="o", color="#3b528b", ecolor="#9fb3d9", elinewidth=1, markersize=4)
    for label, a, b in zip(post["community"].values, mx, my, strict=True):
        ax.annotate(str(label), (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel=f"climate strength (latent mean) at session {last}",
           ylabel="consensus_sd (latent within-community SD)",
           title=f"Strength and consensus per community ({int(hdi_prob * 100)}% HDI)")
    return ax


def plot_support_effect(idata: xr.DataTree, hdi_prob: float = HDI, ax: Any = None) -> Any:
    """Support effect over sessions for low, mean and high self-efficacy, with HDI bands."""
    table = support_effect_table(idata, hdi_prob)
    ax = _axes(ax, (7, 4.5))
    style = {-1.0: ("tab:orange", "low (-1 SD)"), 0.0: ("tab:gray", "mean"), 1.0: ("tab:blue", "high (+1 SD)")}
    for level, part in table.groupby("efficacy_level"):
        color, name = style[level]
        ax.fill_between(part["session"], part["lower"], part["upper"], color=color, alpha=0.15, linewidth=0)
        ax.plot(part["session"], part["mean"], "o-", color=color, label=f"self-efficacy {name}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(xlabel="session", ylabel="effect of within-person support on sharing",
           title=f"When and for whom support matters ({int(hdi_prob * 100)}% HDI)")
    ax.legend()
    return ax


def plot_within_between(idata: xr.DataTree, hdi_prob: float = HDI, ax: Any = None) -> Any:
    """Within- and between-person effect of each predictor side by side, with HDIs."""
    table = within_between_table(idata, hdi_prob)
    predictors = list(idata["posterior"].to_dataset()["predictor"].values)
    ax = _axes(ax, (6, 4))
    offsets = {"within": -0.12, "between": 0.12}
    for kind, part in table.groupby("effect", sort=False):
        x = np.arange(len(part)) + offsets[kind]
        ax.errorbar(x, part["mean"], yerr=[part["mean"] - part["lower"], part["upper"] - part["mean"]],
                    fmt="o", capsize=3, label=kind)
    ax.set_xticks(np.arange(len(predictors)), predictors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set(ylabel=f"effect on {outcome_of(idata)}", title=f"Within vs between effects ({int(hdi_prob * 100)}% HDI)")
    ax.legend()
    return ax
