"""Figures from posterior draws: functions of a fit's DataTree (in memory, or loaded with ``Model.load``), each
returning the matplotlib Axes it drew on. The observed data they overlay come from the fit's ``constant_data``
group."""

from __future__ import annotations

from typing import Any

import arviz as az
import numpy as np
import xarray as xr

from lcbayes.diagnostics import elements
from lcbayes.tables import HDI, outcome_of, support_effect_table, within_between_table


def figure_of(plot_collection: Any) -> Any:
    """The matplotlib figure an ArviZ plot (a ``PlotCollection`` drawn with ``backend="matplotlib"``) drew on."""
    return plot_collection.viz["figure"].item()


SCALE_SPLIT = 10.0   # a group's parameters whose extents differ more than this factor go in separate panels
FOREST_ROW = 0.24    # inches per row of a forest panel


def _scale_panels(names: list[str], extent: dict[str, float]) -> list[list[str]]:
    """``names`` split so that within each part the extents (largest |HDI bound|) differ by at most a factor
    :data:`SCALE_SPLIT` and no parameter flattens the others of its panel into dots: while a part spans more, it is
    cut at the largest ratio between neighbouring extents (smallest part first; the order within a part is kept)."""
    ordered = sorted(names, key=lambda n: extent[n])
    size = [max(extent[n], 1e-12) for n in ordered]
    if size[-1] <= SCALE_SPLIT * size[0]:
        return [names]
    cut = 1 + int(np.argmax([b / a for a, b in zip(size, size[1:], strict=False)]))
    return [[n for n in names if n in part] for half in (ordered[:cut], ordered[cut:])
            for part in _scale_panels(half, extent)]


def plot_forest(idata: xr.DataTree, groups: dict[str, list[str]], hdi_prob: float = HDI) -> Any:
    """Posterior means with 50% and ``hdi_prob`` HDIs of the parameters of each group (``{role: [names]}``), one
    panel per group on its own axis; a group whose parameters differ in scale by more than :data:`SCALE_SPLIT` gets
    a panel per scale. Returns the array of Axes, one per panel (``[0].figure``: the figure)."""
    import matplotlib.pyplot as plt

    post = idata["posterior"].to_dataset()
    rows: dict[str, list[tuple[str, float, np.ndarray, np.ndarray]]] = {}
    extent: dict[str, float] = {}
    for names in groups.values():
        for name in names:
            labels, draws = elements(post[name], ("chain", "draw"))
            rows[name] = [(label, float(x.mean()), az.hdi(x.ravel(), prob=0.5), az.hdi(x.ravel(), prob=hdi_prob))
                          for label, x in zip(labels, draws, strict=True)]
            extent[name] = max(max(abs(r[3][0]), abs(r[3][1])) for r in rows[name])
    panels = [(role if i == 0 else f"{role} (other scale)", panel) for role, names in groups.items() if names
              for i, panel in enumerate(_scale_panels(names, extent))]
    heights = [sum(len(rows[n]) for n in panel) for _, panel in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, FOREST_ROW * sum(heights) + 0.9 * len(panels) + 0.4),
                             height_ratios=[h + 2.5 for h in heights], layout="constrained", squeeze=False)
    for ax, (title, panel) in zip(axes[:, 0], panels, strict=True):
        shown = [r for name in panel for r in rows[name]][::-1]     # first parameter on top
        y = np.arange(len(shown))
        for i, (_, mean, inner, outer) in enumerate(shown):
            ax.plot(outer, [i, i], color="#3b528b", linewidth=1)
            ax.plot(inner, [i, i], color="#3b528b", linewidth=3, solid_capstyle="butt")
            ax.plot(mean, i, "o", color="white", markeredgecolor="#3b528b", markersize=4)
        ax.set_yticks(y, [r[0] for r in shown], fontsize=8)
        ax.set_ylim(-0.7, len(shown) - 0.3)
        lo, hi = ax.get_xlim()
        if lo < 0 < hi:
            ax.axvline(0, color="0.6", linewidth=0.8, linestyle=":")
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_xlabel("parameter value (units of the outcome's response scale where it has one)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    return axes[:, 0]


def _renderer(fig: Any) -> Any:
    """A renderer to measure ``fig``'s texts with (an Agg canvas is attached to a figure that has none)."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def overlapping_text(fig: Any) -> list[tuple[str, str]]:
    """Pairs of drawn, non-empty texts of ``fig`` (titles, axis labels, the tick labels shown, legends, annotations,
    figure titles) whose boxes overlap by more than a pixel each way, as (text, text); [] for a figure whose text
    reads. The layout rule the report's figures are tested against."""
    renderer = _renderer(fig)
    fig.draw(renderer)
    texts = list(fig.texts) + [t for t in (fig._suptitle, fig._supxlabel, fig._supylabel) if t is not None]
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            texts += [axis.label, axis.offsetText]
            texts += [t for tick in axis._update_ticks() for t in (tick.label1, tick.label2) if t.get_visible()]
        legend = ax.get_legend()
        texts += [*legend.get_texts(), legend.get_title()] if legend else []
    unique = {id(t): t for t in texts}.values()    # a figure's texts include its suptitle
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in unique if t.get_visible() and t.get_text().strip()]
    clashes = []
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1:]:
            if min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0) > 1 and \
                    min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0) > 1:
                clashes.append((a, b))
    return clashes


def _axes(ax: Any, size: tuple[float, float]) -> Any:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)[1] if ax is None else ax


PANEL = (1.75, 1.35)   # inches per community panel of the small multiples
PANEL_COLUMNS = 5


def community_panels(communities: list, title: str, xlabel: str, ylabel: str) -> np.ndarray:
    """Small multiples: one panel per community (titled with its label), in rows of :data:`PANEL_COLUMNS`, with
    shared axes, the axis labels once for the figure; unused panels hidden. Returns the Axes, one per community."""
    import matplotlib.pyplot as plt

    columns = min(PANEL_COLUMNS, len(communities))
    rows = -(-len(communities) // columns)
    fig, axes = plt.subplots(rows, columns, sharex=True, sharey=True, squeeze=False, layout="constrained",
                             figsize=(max(PANEL[0] * columns, 6.5), PANEL[1] * rows + 0.9))
    for ax in axes.flat[len(communities):]:
        ax.set_visible(False)
    for ax, comm in zip(axes.flat, communities, strict=False):
        ax.set_title(str(comm), fontsize=8, pad=2)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel(xlabel, fontsize=9)
    fig.supylabel(ylabel, fontsize=9)
    return axes.flat[:len(communities)]


def _band(ax: Any, draws: xr.DataArray, hdi_prob: float, color: str = "#3b528b") -> None:
    """Posterior mean line and HDI band over sessions of ``draws`` (chain, draw, session)."""
    sessions = np.asarray(draws["session"].values)
    band = az.hdi(draws, prob=hdi_prob).transpose("session", "ci_bound").values
    ax.fill_between(sessions, band[:, 0], band[:, 1], color=color, alpha=0.25, linewidth=0)
    ax.plot(sessions, draws.mean(("chain", "draw")).values, color=color, linewidth=1.5)


def plot_trajectories(idata: xr.DataTree, communities: list | None = None, hdi_prob: float = HDI) -> np.ndarray:
    """Posterior community trajectories (``trajectory_community`` or ``strength``: mean and HDI band), one panel per
    community (small multiples, shared axes), with the observed community means as dots. Returns the Axes, one per
    community (``[0].figure``: the figure)."""
    post = idata["posterior"].to_dataset()
    draws_all = post["trajectory_community"] if "trajectory_community" in post else post["strength"]
    outcome = outcome_of(idata)
    chosen = list(draws_all["community"].values) if communities is None else list(communities)
    table = idata["constant_data"].to_dataset()[["community", "session", outcome]].to_dataframe()
    observed = table.groupby(["community", "session"])[outcome].mean()
    axes = community_panels(chosen, f"{outcome}: community trajectories, posterior mean and "
                            f"{int(hdi_prob * 100)}% HDI; dots: observed means", "session", outcome)
    for ax, comm in zip(axes, chosen, strict=True):
        _band(ax, draws_all.sel(community=comm), hdi_prob)
        if comm in observed.index.get_level_values(0):
            ax.plot(observed.loc[comm].index, observed.loc[comm].values, "o", color="black", markersize=2.5)
    return axes


def plot_consensus(idata: xr.DataTree, hdi_prob: float = HDI) -> np.ndarray:
    """The consensus index (``consensus_index``, e.g. r*_wg(J)) over sessions, one panel per community with its HDI
    band and the threshold as a dashed line; without an index (unknown response scale), the latent within-community
    SD (``consensus_sd``). Returns the Axes, one per community."""
    post = idata["posterior"].to_dataset()
    draws = post["consensus_index"] if "consensus_index" in post else post["consensus_sd"]
    communities = list(draws["community"].values)
    label = draws.attrs.get("label", "latent within-community SD (consensus_sd)")
    threshold = draws.attrs.get("threshold")
    title = f"Consensus emergence per community, posterior mean and {int(hdi_prob * 100)}% HDI"
    axes = community_panels(communities, title + (f"; dashed: threshold {threshold}" if threshold is not None
                                                  else ""), "session", label)
    for ax, comm in zip(axes, communities, strict=True):
        _band(ax, draws.sel(community=comm), hdi_prob)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8)
    return axes


def plot_consensus_by(idata: xr.DataTree) -> np.ndarray:
    """P(consensus reached by session t), one panel per community: the posterior survival curve of the time to
    consensus (``consensus_reached_by``) as a step line. Returns the Axes, one per community."""
    p = idata["posterior"].to_dataset()["consensus_reached_by"].mean(("chain", "draw"))
    communities = list(p["community"].values)
    axes = community_panels(communities, "Time to consensus per community (posterior probability, censored at the "
                            "last session)", "session", "P(consensus reached by session)")
    for ax, comm in zip(axes, communities, strict=True):
        ax.step(p["session"].values, p.sel(community=comm).values, where="post", color="#3b528b", linewidth=1.2,
                marker="o", markersize=2.5)   # markers: the last session's value is a point, not only a jump
        ax.set_ylim(-0.05, 1.05)
    return axes


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
    ax.autoscale_view()         # the data limits final before the labels are measured
    placed: list[Any] = []      # labels that would overlap one already placed are left out (the layout rule)
    renderer = _renderer(ax.figure)
    for label, a, b in zip(post["community"].values, mx, my, strict=True):
        text = ax.annotate(str(label), (a, b), fontsize=7, xytext=(3, 3), textcoords="offset points")
        box = text.get_window_extent(renderer)
        if any(box.overlaps(other) for other in placed):
            text.remove()
        else:
            placed.append(box)
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
