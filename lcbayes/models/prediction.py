"""Predictions of a fitted model on new data: new sessions, new participants, new communities, counterfactual values.

The model is built again on the new table (:func:`new_study`: the fitted study's roles, so the same checks and
messages), taking over the fitted model's constants (its ``reference``: standardisation, item error, time origin,
formula codings, priors). The posterior is carried over to it by label (:func:`carry_over`):

- population parameters as they are;
- the effects of communities, organizations and participants the fit knows, as fitted (a participant's effects
  integrated out of the fit are its draws given its fitted data, :meth:`~lcbayes.models.climate.ClimateModel.
  participant_effects`);
- the effects of new ones, per draw, from their population distribution given that draw (brms'
  ``sample_new_levels = "gaussian"``; ``new_groups = "sample"``), or at the population mean (``new_groups = "zero"``:
  population-level predictions, brms' ``re_formula = NA`` for the new groups). New groups' values do not condition on
  the new table's outcomes: the new data say where to predict, not what was observed.

Kinds: ``expected`` (the expected outcome per row), ``predictive`` (posterior predictive draws per row) and a model's
own (model B: ``consensus``: strength, consensus SD and agreement indices per community and session).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from pytensor.graph.traversal import ancestors

from lcbayes.data.roles import Roles
from lcbayes.data.study import Study
from lcbayes.data.study import _factorize as factorize
from lcbayes.errors import ConfigError

if TYPE_CHECKING:
    from lcbayes.models.base import BayesModel

NEW_GROUPS = ("sample", "zero")
GROUP_DIMS = ("community", "organization", "participant")


def roles_for(model: BayesModel) -> dict[str, Any]:
    """The fitted study's roles restricted to what ``model`` reads: the id columns it uses and its measures."""
    roles = model.study.roles.to_dict()
    measures = set(model.measures)
    keep = {"community", "participant", "session"}
    if "organization" in model.coords and any(n.endswith("organization") for n in model.priors):
        keep.add("organization")
    if model.options.get("time") == "time":
        keep.add("time")
    out: dict[str, Any] = {k: v for k, v in roles.items() if k in keep}
    for group in ("variables", "scales"):
        chosen = {n: d for n, d in roles.get(group, {}).items() if n in measures}
        if chosen:
            out[group] = chosen
    return out


def optional_measures(model: BayesModel) -> list[str]:
    """Measures a new table may leave out (filled with missing values): the outcome, and a model's other outcomes
    (model B's learning outcome; model C's S, E and M, which the filter reads where observed)."""
    names = [model.spec.outcome]
    learning = getattr(model, "learning", "")
    names += [learning] if learning else []
    names += list(getattr(model, "predictors", [])) if model.name == "knowledge_sharing" else []
    return names


def new_study(model: BayesModel, table: pd.DataFrame) -> Study:
    """``table`` (the fitted data's format: the columns the roles name) as a study for ``model``: validated with the
    fitted study's roles; columns of :func:`optional_measures` it lacks are added as missing. A participant the fit
    knows must be in the same community (and organization) as there."""
    if not isinstance(table, pd.DataFrame):
        raise ConfigError(f"new data must be a pandas DataFrame in the fitted data's format, got "
                          f"{type(table).__name__}.")
    if not table.index.is_unique:
        doubled = table.index[table.index.duplicated()].unique()[:5].tolist()
        raise ConfigError(f"the new table's index labels rows twice ({doubled}); predictions are labelled by it. "
                          "Fix: table.reset_index(drop=True).")
    roles = roles_for(model)
    absent = {}
    for name in optional_measures(model):
        scale = roles.get("scales", {}).get(name)
        columns = list(scale["items"]) if scale else [roles.get("variables", {}).get(name, {}).get("column", name)]
        if not any(c in table for c in columns) or table[[c for c in columns if c in table]].isna().all().all():
            absent[name] = list(scale["items"]) if scale else None
    checked = {k: ({n: d for n, d in v.items() if n not in absent} if k in ("variables", "scales") else v)
               for k, v in roles.items()}
    study = Study.from_frame(table.drop(columns=[c for c in table if c in sum(filter(None, absent.values()), [])]),
                             checked, new_data=True)
    if absent:   # the measures the table leaves out, as missing values under the fitted roles
        missing_table = study.table.assign(**{name: np.nan for name in absent})
        items = {**study.items, **{name: pd.DataFrame(np.nan, index=study.table.index, columns=cols)
                                   for name, cols in absent.items() if cols}}
        study = replace(study, table=missing_table, roles=Roles.parse(roles), items=items)
    fitted = model.study
    for group in ("community", "organization"):
        if group not in study.idx or group not in fitted.idx:
            continue
        known = dict(zip(fitted.coords["participant"], np.asarray(fitted.coords[group])[
            fitted._participant_map(group)], strict=True))
        mine = dict(zip(study.coords["participant"], np.asarray(study.coords[group])[study._participant_map(group)],
                        strict=True))
        moved = [f"{p} ({known[p]} in the fit, {g} here)" for p, g in mine.items() if p in known and known[p] != g]
        if moved:
            raise ConfigError(f"new data put participant(s) the fit knows in another {group}: {', '.join(moved[:5])}."
                              f" Fix: keep each known participant's {group}, or give a new participant a new id.")
    return study


def canonical_study(model: BayesModel, frame: pd.DataFrame) -> Study:
    """A study from ``frame`` in the study's own form (columns ``community``, ``participant``, ``session``, [``time``,
    ``organization``] and the model's measures by name, scale scores as scores), without the checks of user data: a
    grid of values made for prediction (:mod:`lcbayes.effects`), which may hold a measure constant or give a
    community one member. Scales become single-score variables with their level and range."""
    roles = roles_for(model)
    variables = {**roles.get("variables", {})}
    for name, scale in roles.get("scales", {}).items():
        variables[name] = {"column": name, "level": scale["level"],
                           **({"range": scale["range"]} if scale.get("range") else {})}
    ids: dict[str, Any] = {k: k for k in ("community", "participant", "session", "organization", "time") if k in roles}
    parsed = Roles.parse({**ids, "variables": variables} if variables else ids)
    table = frame.drop(columns=[c for c in ("organization",) if c in frame and c not in ids])
    if "time" not in table:
        table["time"] = table["session"].astype(float)
    for name in parsed.measures:
        table[name] = table[name].astype(float) if name in table else np.nan
    table["session"] = table["session"].astype(np.int64)
    coords, idx = {}, {}
    for group in ("community", "participant", "organization", "session"):
        if group in table:
            idx[group], coords[group] = factorize(table[group])
    return Study(table, parsed, {}, coords, idx)


def carry_over(model: BayesModel, new: BayesModel, new_groups: str, seed: int) -> xr.Dataset:
    """Draws of every free parameter of ``new`` (a model built on new data with ``reference=model``) from the fit
    of ``model``, parents before children (in waves: one compiled draw per wave): population parameters as
    fitted; parameters over communities, organizations or participants as fitted for the levels the fit knows, and
    for new levels drawn from their prior given the draws so far (``new_groups = "sample"``) or at its mean
    (``"zero"``: 0 for the standardised effects ``z_*``, the mean of a centred parameter); parameters over other
    dimensions that differ (missing values of the new data) drawn from their prior given the draws so far."""
    if new_groups not in NEW_GROUPS:
        raise ConfigError(f"new_groups must be one of {', '.join(NEW_GROUPS)}, got {new_groups!r}.")
    fitted = model.fitted()["posterior"].to_dataset()
    graph = new.model
    out = xr.Dataset(coords={"chain": fitted["chain"], "draw": fitted["draw"]})
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    pending = []
    for rv in graph.free_RVs:
        name = rv.name
        dims = tuple(graph.named_vars_to_dims.get(name, ()))
        old = fitted.get(name)
        if old is not None and tuple(old.dims[2:]) == dims and all(
                _labels(old, d) == list(graph.coords.get(d) or range(old.sizes[d])) for d in dims):
            out[name] = old
        else:
            pending.append(rv)
    free = set(graph.free_RVs)
    while pending:   # in waves: the parameters whose free parents all have draws, drawn in one call
        wave = [rv for rv in pending if all(a.name in out for a in ancestors([rv]) if a in free and a is not rv)]
        if not wave:   # the graph is acyclic, so some pending parameter has all its parents: never reached
            raise RuntimeError(f"no order to draw {[rv.name for rv in pending]} in")
        draws = _draw(graph, out, [rv.name for rv in wave], rng)
        for rv in wave:
            name, fresh = rv.name, draws[rv.name]
            dims = tuple(graph.named_vars_to_dims.get(name, ()))
            if new_groups == "zero" and any(d in GROUP_DIMS for d in dims):
                fresh = xr.zeros_like(fresh) if name.startswith("z_") else _mean_of(graph, out, rv, fresh)
            old = fitted.get(name)
            if old is not None and tuple(old.dims[2:]) == dims and any(d in GROUP_DIMS for d in dims):
                fresh = keep_known(fresh, old, dims)
            out[name] = fresh
        pending = [rv for rv in pending if rv not in wave]
    return out


def _labels(draws: xr.DataArray, dim: str) -> list:
    return list(draws[dim].values) if dim in draws.coords else list(range(draws.sizes[dim]))


def _draw(graph: pm.Model, draws: xr.Dataset, names: list[str], rng: np.random.Generator) -> xr.Dataset:
    """Draws of the free parameters ``names`` from their prior given the parameters in ``draws`` (chain, draw,
    ...), in one call (one compiled function)."""
    import warnings

    trace = xr.DataTree.from_dict({"posterior": draws}) if draws.data_vars else _empty_trace(draws)
    log = logging.getLogger("pymc")
    level = log.level
    log.setLevel(logging.WARNING)   # not PyMC's "Sampling: [...]" line per parameter
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The effect of Potentials")
            warnings.filterwarnings("ignore", category=UserWarning)
            pp = pm.sample_posterior_predictive(trace, model=graph, var_names=names, random_seed=rng,
                                                progressbar=False)
    finally:
        log.setLevel(level)
    return pp["posterior_predictive"].to_dataset()[names]


def _empty_trace(draws: xr.Dataset) -> xr.DataTree:
    """A trace with no parameters (every draw from the prior): one dummy variable sets its chains and draws."""
    dummy = xr.DataArray(np.zeros((draws.sizes["chain"], draws.sizes["draw"])), dims=("chain", "draw"))
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"_draws": dummy})})


def _mean_of(graph: pm.Model, draws: xr.Dataset, rv: Any, fresh: xr.DataArray) -> xr.DataArray:
    """The mean of a centred normal parameter (its ``mu`` given the draws so far), shaped like ``fresh``."""
    kind = type(rv.owner.op).__name__
    if kind not in ("NormalRV", "MvNormalRV"):
        raise ConfigError(f"new_groups = \"zero\" sets new groups at their population mean, which lcbayes knows "
                          f"for normal group parameters; '{rv.name}' is {kind}. Fix: new_groups = \"sample\".")
    mean = rv.owner.inputs[2]   # (rng, size, mu, ...) of Normal and MvNormal
    name = f"{rv.name}__mean"
    if name not in graph.named_vars:
        with graph:
            pm.Deterministic(name, mean + 0.0 * rv)   # the value's shape (mu may broadcast)
    given = draws.merge(fresh.to_dataset(name=rv.name))
    shapes = graph.eval_rv_shapes()
    later = {v.name: (("chain", "draw") + tuple(f"{v.name}_dim_{k}" for k in range(len(shapes[v.name]))),
                      np.ones((given.sizes["chain"], given.sizes["draw"], *shapes[v.name])))
             for v in graph.free_RVs if v.name not in given}    # placeholders: parameters the mean does not read
    values = pm.compute_deterministics(given.assign(later), var_names=[name], model=graph, progressbar=False)[name]
    return fresh.copy(data=values.values)


def keep_known(fresh: xr.DataArray, old: xr.DataArray, dims: tuple[str, ...]) -> xr.DataArray:
    """``fresh`` with the values of the labels ``old`` (the fit's draws) also has, along its group dimension."""
    group = next(d for d in dims if d in GROUP_DIMS)
    fitted = set(old[group].values)
    labels = [label for label in fresh[group].values if label in fitted]
    if labels and all(fresh.sizes[d] == old.sizes[d] for d in dims if d != group):
        fresh = fresh.copy()
        fresh.loc[{group: labels}] = old.sel({group: labels}).transpose(*fresh.dims).values
    return fresh


def at_rows(cells: np.ndarray, study: Study, table_index: pd.Index) -> tuple[np.ndarray, dict[str, Any]]:
    """(chain, draw, P, T) cell values at the rows of ``study`` in the order of the user's table (``table_index``),
    and the rows' coordinates (community, participant, session)."""
    order = study.table.index.get_indexer(table_index)
    p, t = study.idx["participant"][order], study.idx["session"][order]
    rows = study.table.iloc[order]
    coords = {"row": np.asarray(table_index), **{g: ("row", rows[g].to_numpy()) for g in ("community", "participant")},
              "session": ("row", rows["session"].to_numpy())}
    return cells[..., p, t], coords


def prediction_tree(values: dict[str, tuple[tuple[Any, ...], np.ndarray]], coords: dict[str, Any],
                    constant: pd.DataFrame | None, attrs: dict[str, Any]) -> xr.DataTree:
    """The InferenceData of a prediction: group ``predictions`` (the draws) and, for predictions per row,
    ``predictions_constant_data`` (the new table's ids and measures as the model read them)."""
    groups = {"predictions": xr.Dataset({k: v for k, v in values.items()}, coords=coords, attrs=attrs)}
    if constant is not None:
        groups["predictions_constant_data"] = xr.Dataset(
            {c: ("row", np.asarray(constant[c].tolist())) for c in constant.columns},
            coords={"row": coords["row"]})
    return xr.DataTree.from_dict(groups)
