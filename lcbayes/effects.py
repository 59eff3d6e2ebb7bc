"""Conditional and marginal effects of a fitted model, as tables with HDIs and as figures (brms'
``conditional_effects``, Bambi's ``interpret``).

- :func:`conditional`: the expected outcome over a grid of one predictor (``over``), at a few levels of a second
  (``by``), for a typical new participant of a typical new community (their effects at 0, population level): the
  other measures held at their mean over the fitted data (a categorical formula variable at its most frequent value;
  ``at`` sets any of them), time averaged over the fitted sessions unless ``over``, ``by`` or ``at`` names the
  session.
- :func:`marginal`: the same curve averaged over the fitted sample: every row of the fitted data with ``over`` (and
  ``by``) set to the grid value, each participant, organization and community with its own effects, then the mean
  over rows (average predictions, Arel-Bundock's ``marginaleffects``). With ``kind = "consensus"`` (model B) it is
  the fitted per-community curve averaged over the communities in each third of ``by`` (a composition predictor or a
  measure's community mean).
- ``effect_of = "x"``: instead of the expected value, its slope in ``x`` (per unit of ``x``; a central difference of
  1% of x's SD, exact for terms linear in x) at each grid point: the effect of x by ``over`` (and ``by``).

A model may offer quantities of its own over predictors that are not columns of the data (model B: the learning
outcome over latent ``strength`` and ``consensus_sd``, :meth:`~lcbayes.models.ConsensusEmergence.effect_surface`).

Grid values: ``values`` for ``over`` (default: ``points`` values evenly over the 1st to 99th percentile of the fitted
values; the fitted sessions for ``session``), ``levels`` for ``by`` (default: the medians of its lower, middle and
upper third).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from lcbayes.errors import ConfigError, LcbayesWarning
from lcbayes.models.prediction import canonical_study
from lcbayes.tables import hdi_table

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from lcbayes.models.base import BayesModel

TERTILE_MEDIANS = (1 / 6, 1 / 2, 5 / 6)
STEP = 0.01   # the central difference of effect_of, as a share of the predictor's SD


@dataclass(frozen=True)
class Effects:
    """Draws of a conditional or marginal effect, (chain, draw, <over>[, <by>]), and what they are."""

    draws: xr.DataArray
    over: str
    by: str | None
    kind: str
    effect_of: str | None
    average: str            # "conditional" (typical new participant) or "marginal" (averaged over the sample)
    hdi_prob: float = 0.9

    @property
    def label(self) -> str:
        what = f"effect of {self.effect_of} on {self.kind}" if self.effect_of else self.kind
        return f"{what} ({self.average})"

    def table(self) -> pd.DataFrame:
        """One row per grid point: ``over`` [and ``by``], posterior ``mean`` and the HDI bounds ``lower``,
        ``upper`` (probability ``hdi_prob``)."""
        return hdi_table(self.draws, self.hdi_prob)

    def plot(self, ax: Axes | None = None) -> Axes:
        """The curve of each ``by`` level over ``over`` with its HDI band (a dotted zero line for an effect)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 3.8), layout="constrained")
        table = self.table()
        groups = table.groupby(self.by, sort=False) if self.by else [(None, table)]
        for level, rows in groups:
            x = rows[self.over].to_numpy(dtype=float)
            label = None if level is None else f"{self.by} = {level:.3g}" if isinstance(level, float) else \
                f"{self.by} = {level}"
            line, = ax.plot(x, rows["mean"], label=label)
            ax.fill_between(x, rows["lower"], rows["upper"], alpha=0.2, color=line.get_color(), linewidth=0)
        if self.effect_of:
            ax.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel(self.over)
        ax.set_ylabel(self.label)
        if self.by:
            ax.legend(frameon=False, fontsize="small")
        ax.set_title(f"{self.label}: mean and {self.hdi_prob:.0%} HDI", fontsize="medium")
        return ax


def conditional(model: BayesModel, over: str, by: str | None = None, kind: str | None = None,
                effect_of: str | None = None, at: Mapping[str, float] | None = None,
                values: Sequence[float] | None = None, levels: Sequence[float] | None = None, points: int = 20,
                hdi_prob: float = 0.9, seed: int = 0) -> Effects:
    """The expected outcome (or ``kind``) over ``over`` by ``by`` for a typical new participant of a typical new
    community (population level), or its slope in ``effect_of``; see the module docstring."""
    kind = kind or "expected"
    surface = model.effect_surface(kind, over, by, effect_of, values, levels, points)
    if surface is not None:
        return Effects(surface, over, by, kind, effect_of, "conditional", hdi_prob)
    if kind not in ("expected",):
        raise ConfigError(f"conditional effects of kind {kind!r} are not available for {model.name} (kinds: "
                          "expected, and the model's own surfaces). Fix: kind = \"expected\", or marginal() for a "
                          "per-community kind.")
    grid = _Grid.of(model, over, by, values, levels, points, effect_of)
    held = {**typical_values(model), **(at or {})}
    frame = grid.frame(model, held, effect_of)
    with warnings.catch_warnings():   # the grid community's composition is not what the curve varies
        warnings.filterwarnings("ignore", message="composition predictor", category=LcbayesWarning)
        tree = model.predict(canonical_study(model, frame), "expected", "zero", seed)
    predictions = tree["predictions"].to_dataset()
    draws = _collapse(predictions[model.spec.outcome], frame, grid, effect_of, model)
    return Effects(draws, over, by, kind, effect_of, "conditional", hdi_prob)


def marginal(model: BayesModel, over: str, by: str | None = None, kind: str | None = None,
             effect_of: str | None = None, values: Sequence[float] | None = None,
             levels: Sequence[float] | None = None, points: int = 9, hdi_prob: float = 0.9, seed: int = 0) -> Effects:
    """The expected outcome (or ``kind``) over ``over`` by ``by`` averaged over the fitted sample, or its slope in
    ``effect_of``; see the module docstring. Each grid point is one prediction on the whole fitted table."""
    kind = kind or "expected"
    if kind == "consensus":
        return Effects(_community_curves(model, over, by), over, by, kind, None, "marginal", hdi_prob)
    if kind != "expected":
        raise ConfigError(f"marginal effects of kind {kind!r} are not available for {model.name}. Fix: kind = "
                          "\"expected\" (or \"consensus\" for model B).")
    grid = _Grid.of(model, over, by, values, levels, points, effect_of)
    sample = _dense_table(model)
    session = "session" in grid.dims
    settings = [{k: v for k, v in p.items() if k != "session"} for p in grid.points()]
    settings = list({tuple(p.items()): p for p in settings}.values())   # session points: one run per by level
    step = grid.step(model, effect_of) if effect_of else 1.0
    curves = []
    for setting in settings:
        sides = []
        for side in ((-0.5, 0.5) if effect_of else (0.0,)):
            table = sample.assign(**setting)
            if effect_of:
                table[effect_of] = table[effect_of] + side * step
            tree = model.predict(canonical_study(model, table), "expected", "sample", seed)
            rows = tree["predictions"].to_dataset()[model.spec.outcome]
            rows = rows.drop_vars([c for c in rows.coords if c not in ("chain", "draw", "session")])
            sides.append(rows.groupby("session").mean() if session else rows.mean("row"))
        curve = (sides[1] - sides[0]) / step if effect_of else sides[0]
        curves.append(curve.expand_dims({k: [v] for k, v in setting.items()}))
    draws = xr.combine_by_coords([c.to_dataset(name="value") for c in curves])["value"]
    if session:
        draws = draws.sel(session=[int(v) for v in (grid.over_values if over == "session" else grid.by_levels)])
    return Effects(draws.transpose("chain", "draw", *grid.dims), over, by, kind, effect_of, "marginal", hdi_prob)


def _dense_table(model: BayesModel) -> pd.DataFrame:
    """The fitted sample as every participant at every fitted session, in the study's own form: a session-level
    measure at its observed value, else the participant's mean, else the mean over rows; participant-level measures
    as observed (a missing one at the mean over participants); the outcome missing."""
    study = model.study
    table = study.table
    sessions = study.coords["session"]
    people = table.groupby("participant", sort=False).first()
    frame = pd.DataFrame([(p, s) for p in people.index for s in sessions], columns=["participant", "session"])
    for group in ("community", "organization"):
        if group in people:
            frame[group] = frame["participant"].map(people[group])
    times = table.groupby("session")["time"].median()
    observed_time = table.set_index(["participant", "session"])["time"]
    keys = pd.MultiIndex.from_frame(frame[["participant", "session"]])
    frame["time"] = observed_time.reindex(keys).to_numpy()
    frame["time"] = frame["time"].fillna(frame["session"].map(times))
    for name in model.measures:
        if name == model.spec.outcome:
            continue
        if study.roles.level_of(name) == "participant":
            values = frame["participant"].map(study.participant_values(name))
            frame[name] = values.fillna(values.mean())
        else:
            cell = table.set_index(["participant", "session"])[name].reindex(keys).to_numpy()
            person = frame["participant"].map(table.groupby("participant")[name].mean()).to_numpy()
            frame[name] = np.where(np.isnan(cell), np.where(np.isnan(person), table[name].mean(), person), cell)
    return frame


def typical_values(model: BayesModel) -> dict[str, float]:
    """Each measure the model reads (its outcome aside) at its mean over the fitted data (participant-level measures
    over participants, session-level ones over rows); a variable a formula reads as categorical (``C(x)``) at its most
    frequent value."""
    out: dict[str, float] = {}
    categorical = _categorical(model)
    for name in model.measures:
        if name == model.spec.outcome:
            continue
        values = pd.Series(_fitted_values(model, name))
        out[name] = float(values.mode().iloc[0]) if name in categorical else float(values.mean())
    return out


def _categorical(model: BayesModel) -> set[str]:
    """Variables that a formula term of the model reads as categorical."""
    names: set[str] = set()
    for terms in (getattr(model, "extra", None), getattr(getattr(model, "location", None), "extra", None),
                  getattr(model, "scale_extra", None)):
        if terms is None:
            continue
        for term in terms.design.terms.values():
            for component in getattr(term, "components", []):
                if getattr(component, "kind", "") == "categoric":
                    names.update(v for v in terms.variables if re.search(rf"\b{re.escape(v)}\b", str(component.name)))
    return names


@dataclass(frozen=True)
class _Grid:
    """The grid values of ``over`` and the levels of ``by``."""

    over: str
    over_values: np.ndarray
    by: str | None
    by_levels: np.ndarray

    @classmethod
    def of(cls, model: BayesModel, over: str, by: str | None, values: Sequence[float] | None,
           levels: Sequence[float] | None, points: int, effect_of: str | None = None) -> _Grid:
        for name in (over, by):
            if name is not None and name not in ("session", *model.measures):
                raise ConfigError(f"'{name}' is not a predictor of this {model.name} fit: the grid varies the "
                                  f"session or a measure the model reads ({', '.join(model.measures)}). Fix: name "
                                  "one of these, or add the variable to the model (a formula term, option "
                                  "location).")
        if over == by:
            raise ConfigError(f"over and by are both '{over}'. Fix: name two different predictors.")
        if effect_of is not None and effect_of not in model.measures:
            raise ConfigError(f"effect_of = {effect_of!r}: slopes are taken in a measure the model reads "
                              f"({', '.join(model.measures)}); the change over sessions is the time trend "
                              "(beta_time), or over = \"session\".")
        fitted = _fitted_values(model, over)
        if values is not None:
            grid = np.asarray(values, dtype=float)
        elif over == "session":
            grid = np.asarray(model.study.coords["session"], dtype=float)
        else:
            low, high = np.quantile(fitted, [0.01, 0.99])
            grid = np.linspace(float(low), float(high), points)
        chosen = np.asarray(levels, dtype=float) if levels is not None else np.array([])
        if by is not None and levels is None:   # sessions: ones that exist
            by_values = _fitted_values(model, by)
            chosen = (np.quantile(by_values, TERTILE_MEDIANS, method="inverted_cdf") if by == "session"
                      else np.quantile(by_values, TERTILE_MEDIANS))
        return cls(over, grid, by, chosen)

    @property
    def dims(self) -> list[str]:
        return [self.over] + ([self.by] if self.by else [])

    def points(self) -> list[dict[str, float]]:
        """Every (over, by) combination, as column values."""
        if not self.by:
            return [{self.over: float(v)} for v in self.over_values]
        return [{self.over: float(v), self.by: float(b)} for v in self.over_values for b in self.by_levels]

    def step(self, model: BayesModel, name: str | None) -> float:
        """The central difference of ``name`` (1% of its SD over the fitted data)."""
        sd = float(np.std(_fitted_values(model, name or self.over)))
        return STEP * (sd if sd > 0 else 1.0)

    def frame(self, model: BayesModel, held: Mapping[str, float], effect_of: str | None) -> pd.DataFrame:
        """The reference grid in the study's own form: one new participant per grid point (and per side of the
        difference of ``effect_of``) in one new community, a row per session (the fitted sessions, or the grid's
        or ``held``'s one), measures at ``held`` except the varied ones."""
        sessions = model.study.coords["session"]
        times = model.study.table.groupby("session")["time"].median()
        rows = []
        sides = (-0.5, 0.5) if effect_of else (0.0,)
        step = self.step(model, effect_of) if effect_of else 1.0
        for k, point in enumerate(self.points()):
            for side in sides:
                values = {**held, **point}
                if effect_of:
                    values[effect_of] = values.get(effect_of, 0.0) + side * step
                at = [int(values["session"])] if "session" in values else sessions
                for session in at:
                    who = f"grid{k}{'+' if side > 0 else '-' if side else ''}"
                    rows.append({"community": "grid", "participant": who,
                                 "organization": "grid", "session": session,
                                 "time": float(times.get(session, session)), "point": k, "side": side,
                                 **{n: v for n, v in values.items() if n != "session"}})
        return pd.DataFrame(rows)


def _fitted_values(model: BayesModel, name: str | None) -> np.ndarray:
    """The fitted data's values of ``name``: per participant for a participant-level measure, per row otherwise."""
    study = model.study
    if name is None or name == "session":
        return study.table["session"].to_numpy(dtype=float)
    if study.roles.level_of(name) == "participant":
        return study.participant_values(name).dropna().to_numpy()
    return study.table[name].dropna().to_numpy()


def _collapse(predictions: xr.DataArray, frame: pd.DataFrame, grid: _Grid, effect_of: str | None,
              model: BayesModel) -> xr.DataArray:
    """Predictions per row of the grid frame -> (chain, draw, over[, by]): the mean over each point's sessions, and
    for ``effect_of`` the difference of the two sides per unit."""
    point = xr.DataArray(frame["point"].to_numpy(), dims="row", name="point")
    side = xr.DataArray(frame["side"].to_numpy(), dims="row", name="side")
    values = predictions.drop_vars([c for c in predictions.coords if c not in ("chain", "draw")])
    if effect_of:
        step = grid.step(model, effect_of)
        values = (values.where(side > 0).groupby(point).mean() - values.where(side < 0).groupby(point).mean()) / step
    else:
        values = values.groupby(point).mean()
    labels = grid.points()
    index = pd.MultiIndex.from_tuples([tuple(p.values()) for p in labels], names=list(labels[0]))
    values = values.assign_coords(xr.Coordinates.from_pandas_multiindex(index, "point")).unstack("point") \
        if grid.by else \
        values.rename(point=grid.over).assign_coords({grid.over: [p[grid.over] for p in labels]})
    return values.transpose("chain", "draw", *grid.dims)


def _community_curves(model: BayesModel, over: str, by: str | None) -> xr.DataArray:
    """Model B's fitted per-community consensus index (or consensus SD) over sessions, averaged per draw over the
    communities in each third of ``by`` (a composition predictor, or a measure's community mean): (chain, draw,
    session[, by])."""
    if over != "session":
        raise ConfigError("marginal(kind=\"consensus\") follows the fitted communities over sessions. Fix: over = "
                          "\"session\".")
    post = model.fitted()["posterior"].to_dataset()
    name = "consensus_index" if "consensus_index" in post else "consensus_sd"
    curves = post[name]
    if by is None:
        return curves.mean("community")
    value = _community_value(model, by)
    thirds = pd.qcut(value, 3, labels=["lower third", "middle third", "upper third"])
    groups = xr.DataArray(np.asarray(thirds.astype(str)), dims="community", coords={"community": value.index})
    out = curves.groupby(groups.rename(by)).mean("community")
    order = [g for g in ("lower third", "middle third", "upper third") if g in out[by].values]
    return out.sel({by: order}).transpose("chain", "draw", "session", by)


def _community_value(model: BayesModel, by: str) -> pd.Series:
    """Per community: composition predictor ``by`` (model B's option composition) or the community mean of a measure."""
    names = list(getattr(model, "composition_names", []))
    if by in names:
        z = np.asarray(model.z)[:, names.index(by)]   # type: ignore[attr-defined]
        return pd.Series(z, index=model.coords["community"])
    if by not in model.study.roles.measures:
        raise ConfigError(f"'{by}' is neither a composition predictor ({', '.join(names) or 'none'}) nor a measure "
                          "of the study. Fix: name one of them.")
    return model.study.table.groupby("community")[by].mean().reindex(model.coords["community"])


__all__ = ["Effects", "conditional", "marginal", "typical_values"]
