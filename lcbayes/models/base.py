"""The model contract (:class:`BayesModel`) and what the models share: spec and priors, building, fitting, provenance,
save/load. The generative equations live in :mod:`lcbayes.processes`; tables and plots are functions of InferenceData
(:mod:`lcbayes.tables`, :mod:`lcbayes.plots`).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from lcbayes import __version__
from lcbayes.data.io import atomic_path
from lcbayes.data.study import Study
from lcbayes.diagnostics import Diagnostics, diagnose, summarize
from lcbayes.errors import ConfigError, LcbayesError, LcbayesWarning
from lcbayes.models.panel import Panel
from lcbayes.models.priors import Prior, create, merge_priors
from lcbayes.models.spec import ModelSpec, SamplerSettings, read_spec, spec_hash
from lcbayes.prior_check import PriorCheck, prior_check
from lcbayes.sampling import sample

if TYPE_CHECKING:
    from lcbayes.cv import KFold

ID_COLUMNS = ("community", "participant", "organization", "session", "time")


class DataMismatchError(LcbayesError):
    """A saved fit was loaded against data (or a spec) other than the one it was fitted to."""


class NotFittedError(LcbayesError):
    """A method needs a fitted model; call ``fit()`` (or ``load()``) first."""


@dataclass(frozen=True)
class Conclusion:
    """One sentence of "what to conclude" and what qualifies it: ``rests_on`` names the posterior quantities it is
    read from (parameters or derived quantities: a whole ``name`` or one element ``name[label, ...]``, labelled as
    in the summaries), whose checks the report attaches as caveats (convergence, prior sensitivity, identification);
    ``caveats`` are the model's own qualifications (an index that grows with the number of items, a consensus term
    implied by composition). ``provisional``: a check it rests on failed (set by the report)."""

    text: str
    rests_on: tuple[str, ...] = ()
    caveats: tuple[str, ...] = ()
    provisional: bool = False


@dataclass
class ReportContent:
    """What a report shows of one fitted model beyond the shared sections: derived
    quantities (posterior draws, summarised with MCSE like the parameters), figures and
    tables (each with its caption), and the sentences of "what to conclude" (a plain string: a note that rests on
    no estimate)."""

    derived: xr.Dataset
    figures: list[tuple[str, Any]] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    conclusions: list[Conclusion | str] = field(default_factory=list)


def on_fit(function: Callable[..., Any]) -> Callable[..., Any]:
    """A model method that applies ``function`` (a table or plot of InferenceData,
    :mod:`lcbayes.tables`, :mod:`lcbayes.plots`) to the model's fit."""
    @wraps(function)
    def method(self: BayesModel, *args: Any, **kwargs: Any) -> Any:
        return function(self.fitted(), *args, **kwargs)
    return method


class BayesModel(ABC):
    """Base of the lcbayes models: each is a subclass in a module of its own, registered in
    :data:`lcbayes.models.MODELS`.

    Class attributes: ``name`` (the spec's ``model``), ``option_defaults`` (every option and its default; others are
    rejected), ``sampler_defaults`` (over :class:`~lcbayes.sampling.SamplerSettings`), ``cell_vars`` (per-cell
    deterministics recomputed after sampling instead of stored).

    What subclasses implement (abstract): :meth:`default_priors`, :meth:`build`, :attr:`population`,
    :meth:`pointwise_loglik`, :meth:`sample_prior_predictive`, :meth:`sample_posterior_predictive`, :meth:`predicted`,
    :meth:`prior_study` and :meth:`report_content`. Optional hooks: :meth:`prepare` (option checks and arrays),
    :attr:`measures`, :meth:`grids`, :meth:`derived`, :meth:`log_likelihood_terms`.

    Who calls what (and nothing else): the report (:mod:`lcbayes.report`) calls ``sample_prior_predictive``, ``fit``,
    ``diagnostics``, ``sample_posterior_predictive``, ``log_likelihood_terms``, ``priors``, ``population`` and
    ``report_content``; the power runner (:mod:`lcbayes.power`) builds ``model`` (the PyMC graph), refits it through
    :class:`~lcbayes.sampling.CompiledModel` and reads ``population`` and ``quantities``; SBC calls ``prior_study`` and
    ranks ``calibration_targets``.
    """

    name: ClassVar[str]
    option_defaults: ClassVar[dict[str, Any]]
    sampler_defaults: ClassVar[dict[str, Any]] = {}   # model-specific defaults over SamplerSettings
    cell_vars: ClassVar[tuple[str, ...]] = ()   # per-cell deterministics computed after sampling, not stored
    over_sessions: ClassVar[tuple[str, ...]] = ()   # what only two or more sessions inform (trends, lags)
    derived_needs_grids: ClassVar[bool] = False   # whether derived() reads the grids (else skipped when not wanted)

    def __init__(self, study: Study, spec: ModelSpec | Mapping[str, Any] | str | Path | None = None, *,
                 reference: BayesModel | None = None, **options: Any):
        """``reference``: the fitted model whose constants this model takes over instead of computing them from
        ``study`` (a model built on new data for :meth:`predict`): the standardisation of traits and composition,
        the item error variances, the time origin, the codings of formula terms and the priors."""
        if isinstance(spec, (str, Path)):
            spec = read_spec(spec)
        spec = dict(spec.to_dict() if isinstance(spec, ModelSpec) else (spec or {}))
        if options:
            spec["options"] = {**spec.get("options", {}), **options}
        self.study = study
        self.spec = ModelSpec.parse(spec, self.name, self.option_defaults, self.sampler_defaults)
        self.study.roles.level_of(self.spec.outcome)  # an unknown outcome: a typed error naming it
        self.options = self.spec.options
        self.reference = reference
        self.panel: Panel = Panel.from_study(study, time=self.options.get("time", "session"),
                                             time_scale=float(self.options.get("time_scale", 1.0)),
                                             origin=reference.panel if reference else None)
        self.prepare()
        self.priors: dict[str, Prior] = (dict(reference.priors) if reference else
                                         merge_priors(self.default_priors(), self.spec.priors))
        self.idata: xr.DataTree | None = None
        if reference is None:
            for limit in self.design_limits():
                warnings.warn(limit, LcbayesWarning, stacklevel=2)

    @property
    def fitted_study(self) -> Study:
        """The study whose data-derived constants the model uses: the reference's (a model built on new data for
        prediction), else its own."""
        return self.reference.study if self.reference is not None else self.study

    def design_limits(self) -> list[str]:
        """What this study's design cannot inform, one sentence each: with one community (organization) the parameters
        named after communities (organizations) rest on their priors alone; with one session, :attr:`over_sessions`.
        Warned (:class:`~lcbayes.errors.LcbayesWarning`) when the model is built; the fit still runs."""
        limits = []
        for group in ("community", "organization"):
            names = [n for n in self.priors if group in n]
            if names and group in self.study.idx and self.study.n(group) == 1:
                limits.append(f"the study has one {group}, so {', '.join(names)} rest on their priors alone "
                              f"(nothing in the data tells how {group}s differ); report them as such, or leave the "
                              f"{group} terms out of the model.")
        names = [n for n in self.over_sessions if n in self.priors]
        if names and self.study.n("session") == 1:
            limits.append(f"the study has one session, so {', '.join(names)} (change over sessions) rest on their "
                          "priors alone; report them as such, or fit data with two or more sessions.")
        return limits

    def prepare(self) -> None:  # noqa: B027 (an optional hook: most models need it, some do not)
        """Check options against the study and derive the arrays the graph needs."""

    # pm.Data arrays of 0/1 observed flags -> their participant axis (:meth:`without_participants`)
    observation_masks: ClassVar[dict[str, int]] = {}

    @abstractmethod
    def default_priors(self) -> dict[str, Prior]:
        """Data-scaled default priors of every parameter, by name."""

    @abstractmethod
    def build(self) -> pm.Model:
        """The PyMC model (``pm.Data`` for every array a refit may swap)."""

    @property
    @abstractmethod
    def population(self) -> list[str]:
        """Population-level parameters: summarised, diagnosed and checked for recovery."""

    def parameter_role(self, name: str) -> str:
        """The role of population parameter ``name``, which groups it in the report's forest plot (one panel per
        role): by name, ``corr_*`` correlations, ``tau_*`` and ``sd_*`` random-effect SDs, ``sigma*`` spread,
        ``gamma_*``, ``contextual*`` and ``beta_location`` (formula terms) effects of predictors, item thresholds and
        SDs item measurement, anything else location (intercepts, means, time). Models add roles of their own
        (learning outcome, dynamics)."""
        if name.startswith("corr_"):
            return "correlations"
        if name.startswith(("tau_", "sd_")):
            return "random-effect SDs"
        if name.startswith(("gamma_", "contextual")) or name == "beta_location":
            return "effects"
        if name in ("thresholds", "item_sd"):
            return "item measurement"
        return "spread" if name.startswith("sigma") else "location"

    @property
    def calibration_targets(self) -> list[str]:
        """What simulation-based calibration ranks: the population parameters (default) and any derived quantity that
        :meth:`prior_study`'s truth and the fit's posterior both hold."""
        return self.population

    @property
    def measures(self) -> list[str]:
        """Measures (outcome and predictors) the model reads from the study."""
        return [self.spec.outcome]

    @abstractmethod
    def pointwise_loglik(self, idata: xr.DataTree) -> xr.DataArray:
        """Log likelihood of the outcome per LOO unit and draw from a raw sampler result (pure: changes nothing)."""

    @abstractmethod
    def sample_prior_predictive(self, draws: int = 500, seed: int = 0) -> xr.DataTree:
        """Parameters drawn from the prior and outcomes replicated at the observed rows:
        groups ``prior``, ``prior_predictive`` and ``observed_data``."""

    def prior_check(self, draws: int = 500, seed: int = 0) -> list[PriorCheck]:
        """The two-sided prior predictive check (:mod:`lcbayes.prior_check`) of each measure the model simulates:
        too wide (scores off the response scale, within-community spreads too large) or too narrow (spreads too small,
        the observed data implausible), with its numbers; :func:`lcbayes.prior_check.table` lays it out."""
        prior = self.sample_prior_predictive(draws=draws, seed=seed)
        return prior_check(self.study, prior["prior_predictive"].to_dataset())

    @abstractmethod
    def sample_posterior_predictive(self, seed: int = 0) -> xr.DataTree:
        """Add replicated outcomes at the observed rows (group ``posterior_predictive``) to the fit."""

    def loo_pit(self, seed: int = 0) -> xr.DataArray:
        """Leave-one-participant-out probability integral transform of each participant's mean observed outcome,
        (participant,): the share of replicated means below the observed one (ties count half), each draw weighted by
        its Pareto-smoothed importance weight for leaving that participant out. The log likelihood is per participant
        with their effects integrated out, so the replicates are too: :meth:`marginal_replicates` draws each
        participant's effects anew from their population. Under a well-calibrated model the values are close to
        uniform on [0, 1]; piled up near 0 and 1 the predictions are too narrow, near 0.5 too wide."""
        idata = self.fitted()
        outcome = self.spec.outcome
        observed = self._observed()[outcome]
        person = xr.DataArray(self.study.table["participant"].to_numpy()[observed["obs"].values], dims="obs",
                              name="participant")
        t_obs = observed.groupby(person).mean()
        t_rep = self.marginal_replicates(seed).groupby(person).mean()
        loglik = idata["log_likelihood"].to_dataset()[outcome].sel(participant=t_obs["participant"])
        log_weights, _ = loglik.azstats.psislw()     # PSIS weights ~ 1 / p(y_i | draw), normalised per participant
        t_rep = t_rep.sel(participant=t_obs["participant"])
        below = (t_rep < t_obs) + 0.5 * (t_rep == t_obs)
        pit = (np.exp(log_weights) * below).sum(("chain", "draw")).sel(participant=t_obs["participant"])
        pit = np.clip(pit.values, 0.0, 1.0)
        return xr.DataArray(pit, coords={"participant": t_obs["participant"].values}, dims="participant",
                            name="loo_pit")

    def marginal_replicates(self, seed: int = 0) -> xr.DataArray:
        """Replicated outcomes at the observed rows, (chain, draw, obs), with the participant-level quantities drawn
        anew from their population (the predictive a per-participant marginal log likelihood scores). Models that
        offer :meth:`loo_pit` implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not offer marginal replicates (loo_pit) yet")

    prediction_kinds: ClassVar[tuple[str, ...]] = ("expected", "predictive")   # what predict() offers

    def predict(self, data: pd.DataFrame | Study | None = None, kind: str = "expected", new_groups: str = "sample",
                seed: int = 0) -> xr.DataTree:
        """Posterior predictions at the rows of ``data`` (a table in the fitted data's format, checked as the fitted
        data were; a :class:`~lcbayes.data.study.Study` is taken as it is; None: the fitted data), as InferenceData
        with group ``predictions`` over (chain, draw, row) (``row``: the table's index, with the rows' community,
        participant and session as coordinates) and ``predictions_constant_data``.

        ``kind``: ``"expected"`` (the expected outcome), ``"predictive"`` (posterior predictive draws) or a kind of
        the model's own (:attr:`prediction_kinds`). Communities, organizations and participants the fit knows keep
        their effects; new ones get effects drawn from their population per draw (``new_groups = "sample"``) or at
        its mean (``"zero"``: population-level predictions). See :mod:`lcbayes.models.prediction`. ``seed``: the effects
        drawn for participants whose effects the fit integrated out, and the predictive noise."""
        from lcbayes.models import prediction

        if kind not in self.prediction_kinds:
            raise ConfigError(f"kind must be one of {', '.join(self.prediction_kinds)} for {self.name}, got "
                              f"{kind!r}.")
        if new_groups not in prediction.NEW_GROUPS:
            raise ConfigError(f"new_groups must be one of {', '.join(prediction.NEW_GROUPS)}, got {new_groups!r}.")
        fit = self.fitted()
        if data is None:
            study, model, posterior, index = self.study, self, fit["posterior"].to_dataset(), self.study.table.index
        else:
            self.check_new_data()
            study = data if isinstance(data, Study) else prediction.new_study(self, data)
            model = type(self)(study, self.spec, reference=self)
            posterior = prediction.carry_over(self, model, new_groups, seed)
            names = [v.name for v in model.model.deterministics if v.name not in model.cell_vars]
            posterior = posterior.merge(model._cells(posterior, names)) if names else posterior
            conditioned = model.condition_new_groups(posterior, self, new_groups, seed)
            if conditioned:   # the deterministics again, from the conditioned parameters
                posterior = posterior.assign(conditioned)
                posterior = posterior.drop_vars(names).merge(model._cells(posterior, names))
            index = study.table.index if isinstance(data, Study) else data.index
        values = model.predicted(posterior, kind, seed, None if model is self else self, new_groups)
        out: dict[str, tuple[tuple[Any, ...], np.ndarray]] = {}
        coords: dict[str, Any] = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
        for name, cells in values.items():
            if cells.dims[-2:] == ("participant", "session"):
                at, row_coords = prediction.at_rows(cells.values, study, index)
                out[name] = (("chain", "draw", "row"), at)
                coords.update(row_coords)
            else:
                out[name] = (cells.dims, cells.values)
                coords.update({str(d): cells[d].values for d in cells.dims[2:] if d in cells.coords})
        constant = None
        if "row" in coords:
            rows = study.table.loc[index] if data is not None else study.table
            constant = rows[[c for c in (*ID_COLUMNS, *model.measures) if c in rows]].reset_index(drop=True)
        attrs = {"kind": kind, "new_groups": new_groups, "seed": seed, "model": self.name}
        return prediction.prediction_tree(out, coords, constant, attrs)

    def effect_surface(self, kind: str, over: str, by: str | None, effect_of: str | None,
                       values: Any, levels: Any, points: int) -> xr.DataArray | None:
        """Draws of a quantity of the model's own over predictors that are not columns of the data, (chain, draw,
        ``over``[, ``by``]), for :func:`lcbayes.effects.conditional`; None (the default) when ``kind`` is not one."""
        return None

    def condition_new_groups(self, posterior: xr.Dataset, fitted: BayesModel, new_groups: str,
                             seed: int) -> dict[str, xr.DataArray]:
        """Parameters of new participants and communities that the new data inform beyond their population (a
        predictor's latent person means, given the predictor's values), updated from the draws carried over by
        :func:`~lcbayes.models.prediction.carry_over`, by name; {} (the default) when there are none."""
        return {}

    def check_new_data(self) -> None:  # noqa: B027 (an optional hook)
        """Raise a :class:`~lcbayes.errors.ConfigError` if this model cannot predict on new data (a measurement
        model whose latent values exist only at the fitted cells)."""

    @abstractmethod
    def predicted(self, posterior: xr.Dataset, kind: str, seed: int, fitted: BayesModel | None,
                  new_groups: str) -> dict[str, xr.DataArray]:
        """The predictions of ``kind`` from the draws in ``posterior`` (of this model's parameters), by name: per
        cell, (chain, draw, participant, session), or over other dimensions (model B's per community and session).
        ``fitted``: the fitted model when this one is built on new data (its participants' effects are carried
        over), None in sample."""

    @abstractmethod
    def prior_study(self, seed: int) -> tuple[Study, xr.Dataset]:
        """This study with its outcome (at the rows where it is observed) replaced by data
        drawn from the model at parameters drawn from the prior, and those parameters (one
        draw): one replicate of simulation-based calibration."""

    @abstractmethod
    def report_content(self) -> ReportContent:
        """What the report shows of this fitted model beyond the shared sections."""

    def without_participants(self, data: Mapping[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
        """The model's ``pm.Data`` values ``data`` with every observation of the participants where ``keep`` is False
        removed (their flags in :attr:`observation_masks` set to 0), for refits that leave them out
        (cross-validation); ``keep``: bool, (P,)."""
        out = dict(data)
        for name, axis in self.observation_masks.items():
            if name in out:
                shape = [1] * np.ndim(out[name])
                shape[axis] = -1
                out[name] = out[name] * np.reshape(keep, shape).astype(out[name].dtype)
        return out

    def _cells(self, posterior: xr.Dataset, names: list[str]) -> xr.Dataset:
        """Deterministics ``names`` of the graph (the per-cell ones are not stored) at the draws in ``posterior``."""
        return pm.compute_deterministics(posterior, var_names=names, model=self.model, progressbar=False)

    def grids(self, posterior: xr.Dataset) -> xr.Dataset:
        """Large deterministic functions of the draws in ``posterior`` (per community x session, per row): in the
        posterior of a fit in memory, left out of a saved file and recomputed by :meth:`load` (none by default)."""
        return xr.Dataset()

    def derived(self, idata: xr.DataTree, grids: xr.Dataset) -> xr.Dataset:
        """Derived quantities added to the posterior after fitting and saved with it (none by default); ``grids`` is
        :meth:`grids` of the same draws."""
        return xr.Dataset()

    def quantities(self, idata: xr.DataTree, grids: bool = True) -> xr.Dataset:
        """Everything computed from the posterior draws of ``idata`` (a raw sampler result, or a fit) after sampling:
        :meth:`grids` and :meth:`derived`; with ``grids=False`` only the derived quantities (the grids are then
        computed only if :meth:`derived` reads them, :attr:`derived_needs_grids`: model C's per-row filter
        predictions cost more than the rest together)."""
        computed = (self.grids(idata["posterior"].to_dataset()) if grids or self.derived_needs_grids
                    else xr.Dataset())
        derived = self.derived(idata, computed)
        return computed.merge(derived) if grids else derived

    def posterior_with(self, idata: xr.DataTree, names: Iterable[str]) -> xr.Dataset:
        """The posterior of ``idata`` (a raw sampler result, or a fit) with the quantities ``names`` that it lacks
        added: the derived quantities first, the grids only if one of ``names`` is a grid (a name that is neither
        stays missing, for the caller to report)."""
        posterior = idata["posterior"].to_dataset()
        for grids in (False, True):
            if any(name not in posterior for name in names):
                posterior = posterior.merge(self.quantities(idata, grids=grids), compat="override")
        return posterior

    @cached_property
    def model(self) -> pm.Model:
        """The PyMC model, built once."""
        return self.build()

    def prior(self, name: str, **kwargs: Any) -> Any:
        """Create parameter ``name`` from its (possibly overridden) prior in the model in context."""
        return create(self.priors, name, **kwargs)

    @property
    def coords(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.study.coords.items()}

    def stored_vars(self) -> list[str]:
        """Variables kept from sampling: all but the large per-cell deterministics."""
        return [v.name for v in self.model.free_RVs + self.model.deterministics if v.name not in self.cell_vars]

    def fit(self, **sampler: Any) -> xr.DataTree:
        """Sample the posterior (sampler settings from the spec, overridable here) and complete
        the InferenceData with observed and constant data, log likelihood per participant and
        derived quantities. Returns (and keeps as ``self.idata``) the result."""
        settings = self.spec.sampler.updated(**sampler)
        idata = sample(self.model, settings, var_names=self.stored_vars())
        return self.complete(idata, settings)

    def complete(self, idata: xr.DataTree, settings: SamplerSettings) -> xr.DataTree:
        """Add what a raw sampler result lacks (shared by ``fit`` and compiled refits)."""
        loglik = self.pointwise_loglik(idata).rename(self.spec.outcome)
        idata["log_likelihood"] = xr.Dataset({self.spec.outcome: loglik})   # replacing PyMC's own groups (in panel
        idata["observed_data"] = self._observed()                           # layout)
        idata["constant_data"] = self._constant()
        self.idata = idata
        grids = self.grids(idata["posterior"].to_dataset())
        posterior = idata["posterior"].to_dataset().merge(grids).merge(self.derived(idata, grids))
        posterior = posterior.drop_vars(self.transformed_names(), errors="ignore")
        used = {d for v in posterior.data_vars.values() for d in v.dims}
        posterior = posterior.drop_vars([c for c in posterior.coords if c not in used])   # their dims' labels
        idata["posterior"] = posterior.transpose("chain", "draw", ...)
        idata.attrs.update(self._provenance(settings), recomputed_on_load=json.dumps(sorted(grids.data_vars)))
        return idata

    def transformed_names(self) -> list[str]:
        """Names of the unconstrained values the sampler stores beside constrained parameters (``tau_log__``,
        ``cpc_logodds__``, ...): left out of a completed fit, whose posterior holds parameters on their own scale."""
        model = self.model
        return [model.rvs_to_values[rv].name for rv in model.free_RVs if model.rvs_to_transforms.get(rv) is not None]

    @property
    def item_measures(self) -> list[str]:
        """Scales whose item responses the model reads (e.g. for their measurement error); stored with the fit."""
        return []

    def _used_table(self) -> pd.DataFrame:
        cols = [c for c in ID_COLUMNS if c in self.study.table] + self.measures
        items = [self.study.items[m] for m in self.item_measures]   # reverse-keyed, aligned with the table
        return pd.concat([self.study.table[cols], *items], axis=1).reset_index(drop=True)

    def _observed(self) -> xr.Dataset:
        y = self.study.values(self.spec.outcome)
        ok = ~np.isnan(y)
        return xr.Dataset({self.spec.outcome: ("obs", y[ok])}, coords={"obs": np.flatnonzero(ok)})

    def _constant(self) -> xr.Dataset:
        t = self._used_table()
        return xr.Dataset({c: ("row", _storable(t[c])) for c in t.columns}, coords={"row": np.arange(len(t))})

    def data_hash(self) -> str:
        """SHA-256 of the model's inputs: id columns, used measures and their levels."""
        text = self._used_table().to_csv(index=False, float_format="%.17g")
        return hashlib.sha256((text + json.dumps(self._levels(), sort_keys=True)).encode()).hexdigest()

    def _levels(self) -> dict[str, Any]:
        """Measurement level of each measure the model uses; for a scale in :attr:`item_measures`, its level, items
        (stored reverse-keyed), range and the share of items a score needs."""
        levels: dict[str, Any] = {m: self.study.roles.level_of(m) for m in self.measures}
        for m in self.item_measures:
            scale = self.study.roles.scales[m]
            levels[m] = {"level": scale.level, "items": list(scale.items), "range": list(scale.range),
                         "min_share": scale.min_share}
        return levels

    def _provenance(self, settings: SamplerSettings) -> dict[str, Any]:
        return {"lcbayes_version": __version__, "model": self.name, "spec": json.dumps(self.spec.to_dict()),
                "spec_hash": self.spec.hash(), "data_hash": self.data_hash(),
                "priors": json.dumps({k: p.to_dict() for k, p in self.priors.items()}),
                "roles": json.dumps(self._levels()), "sampler": json.dumps({**settings.__dict__}),
                "rows_without_outcome": int(np.isnan(self.study.values(self.spec.outcome)).sum())}

    def fitted(self) -> xr.DataTree:
        """The fit (``fit()`` or ``load()``); a :class:`NotFittedError` before either."""
        if self.idata is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first.")
        return self.idata

    def log_likelihood_terms(self) -> xr.Dataset:
        """Pointwise log likelihood of every observed part of the model, one variable per
        part (LOO uses the outcome's alone; power-scaling the likelihood scales them all)."""
        return self.fitted()["log_likelihood"].to_dataset()

    def kfold(self, k: int = 10, seed: int = 0, workers: int | None = 1, scheduler: str | None = None,
              progress: bool = True) -> KFold:
        """Exact K-fold cross-validation leaving out whole communities (:func:`lcbayes.cv.kfold`): ``k`` refits, each
        without the communities of one fold, scored on them; ``workers``/``scheduler`` as for power runs."""
        from lcbayes.cv import kfold

        return kfold(self, k, seed, workers, scheduler, progress)

    def diagnostics(self) -> Diagnostics:
        """Convergence verdicts for the population parameters."""
        return diagnose(self.fitted(), self.population)

    def summary(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """Posterior mean, SD, HDI, MCSE, ESS and R-hat of the population parameters."""
        return summarize(self.fitted(), self.population, hdi_prob)

    def save(self, path: str | Path, predictive: bool = False) -> Path:
        """Write the fit (posterior, log likelihood, data, provenance) to a netCDF file, atomically: it is written
        beside ``path`` and renamed over it when complete, so an interrupted or failed save leaves an earlier file at
        ``path`` intact.

        What is stored: the draws of the parameters and derived quantities, not :meth:`grids` (recomputed by
        :meth:`load`; the file's attribute ``recomputed_on_load`` names them) nor the ``posterior_predictive`` group
        (``sample_posterior_predictive(seed)`` redraws it; ``predictive=True`` stores it). Each variable of draws is
        stored to :data:`DRAW_PRECISION` of its posterior SD (:func:`draw_encoding`), data and provenance exactly,
        all compressed (:data:`COMPRESSION`)."""
        path = Path(path)
        fit = self.fitted().copy()
        fit["posterior"] = fit["posterior"].to_dataset().drop_vars(
            json.loads(fit.attrs.get("recomputed_on_load", "[]")), errors="ignore")
        if not predictive and "posterior_predictive" in fit.children:
            del fit["posterior_predictive"]
        encoding = {f"/{name}": {var: {**COMPRESSION, **(draw_encoding(values) if name in DRAW_GROUPS else {})}
                                 for var, values in group.data_vars.items()
                                 if values.dtype.kind in "biuf" and values.size > 1}
                    for name, group in fit.children.items()}
        with atomic_path(path) as partial:
            fit.to_netcdf(str(partial), engine="h5netcdf", encoding=encoding)
        return path

    @classmethod
    def load(cls, path: str | Path, study: Study | None = None) -> BayesModel:
        """Restore a saved fit. Without ``study``, the data stored in the file are used; with
        it, the study must be the one the model was fitted to (checked by its hash)."""
        from lcbayes.models import MODELS

        if not Path(path).is_file():
            raise DataMismatchError(f"fit file '{path}' not found. Fix: check the path, or fit and save first "
                                    "(lcbayes fit ... --out).")
        try:
            idata = load_fit_file(path)
        except (OSError, ValueError) as err:
            raise DataMismatchError(f"'{path}' cannot be read as a saved fit ({type(err).__name__}: {err}). Fix: load "
                                    "the .nc file that lcbayes fit or model.save() wrote, or refit.") from None
        _check_fit_file(idata, path)
        spec = json.loads(idata.attrs["spec"])
        model_cls = MODELS[spec["model"]] if cls is BayesModel else cls
        if model_cls.name != spec["model"]:
            raise DataMismatchError(f"'{path}' holds a {spec['model']} fit, not {model_cls.name}.")
        model = model_cls(_study_from_constant_data(idata) if study is None else study, spec)
        if model.data_hash() != idata.attrs["data_hash"] and study is None:
            raise DataMismatchError(f"'{path}': the data stored in the file no longer match the data hash recorded "
                                    "when it was fitted (the file was changed). Fix: refit and save again.")
        if model.data_hash() != idata.attrs["data_hash"]:
            raise DataMismatchError(f"'{path}' was fitted to other data (data hash {idata.attrs['data_hash'][:12]}...; "
                                    f"this study's is {model.data_hash()[:12]}...). Fix: load it with the study it was "
                                    "fitted to, or without a study to use the data stored in the file.")
        posterior = idata["posterior"].to_dataset()
        if any(name not in posterior for name in json.loads(idata.attrs.get("recomputed_on_load", "[]"))):
            posterior = posterior.merge(model.grids(posterior))
            idata["posterior"] = posterior.transpose("chain", "draw", ...)
        model.idata = idata
        return model


# lossless HDF5 compression of a saved fit's variables: byte shuffle, then zlib level 4
COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}
# groups of posterior draws, saved to DRAW_PRECISION of each variable's posterior SD
DRAW_GROUPS = ("posterior", "log_likelihood", "posterior_predictive")
# the largest rounding error of a saved draw, as a share of the posterior SD: half of this (CmdStan's 6 significant
# digits are about as fine for a mean 100 SDs from 0, coarser beyond)
DRAW_PRECISION = 1e-3


def draw_encoding(draws: xr.DataArray) -> dict[str, Any]:
    """The netCDF encoding of one variable of draws, (chain, draw, ...): CF scale/offset packing into integers
    (xarray unpacks them on reading) with a step of :data:`DRAW_PRECISION` times the smallest posterior SD among its
    elements that vary, so that every draw is off by at most half of that, and an offset that is a whole number of
    steps (0 is stored exactly); int16 or int32 by the range. Draws that are not all finite, or constant, or whose
    range needs more than int32, are stored as float32 (7 significant digits)."""
    x = draws.values
    if x.dtype.kind != "f":
        return {}
    single = {"dtype": "float32"}
    if not np.isfinite(x).all() or x.ndim < 2:
        return single
    sd = draws.std(("chain", "draw")).values
    varying = sd > 1e-12 * max(float(np.abs(x).max()), 1e-300)
    if not varying.any():
        return single
    step = DRAW_PRECISION * float(sd[varying].min())
    offset = round((float(x.max()) + float(x.min())) / 2 / step) * step
    half_range = max(float(x.max()) - offset, offset - float(x.min())) / step + 1
    for dtype in (np.int16, np.int32):
        if half_range < np.iinfo(dtype).max - 1:
            return {"dtype": np.dtype(dtype).name, "scale_factor": step, "add_offset": offset,
                    "_FillValue": np.iinfo(dtype).min}
    return single
FIT_GROUPS = ("posterior", "log_likelihood", "observed_data", "constant_data")
FIT_ATTRS = ("spec", "spec_hash", "data_hash", "roles", "sampler")


def _check_fit_file(idata: xr.DataTree, path: str | Path) -> None:
    """Refuse a file that is not a complete lcbayes fit: a group or provenance field missing, fewer draws than its
    sampler settings record (a truncated run), or a spec that does not match its recorded hash."""
    fix = "Fix: refit and save again (lcbayes fit ... --out)."
    missing = [g for g in FIT_GROUPS if g not in idata.children] + [a for a in FIT_ATTRS if a not in idata.attrs]
    if missing:
        raise DataMismatchError(f"'{path}' is not a complete lcbayes fit: it lacks {', '.join(missing)}. {fix}")
    try:
        sampler, stored_spec = json.loads(idata.attrs["sampler"]), json.loads(idata.attrs["spec"])
    except json.JSONDecodeError:
        raise DataMismatchError(f"'{path}': its provenance attributes are not valid JSON (the file was changed). "
                                f"{fix}") from None
    post = idata["posterior"].to_dataset()
    if (post.sizes["chain"], post.sizes["draw"]) != (sampler["chains"], sampler["draws"]):
        raise DataMismatchError(f"'{path}' holds {post.sizes['chain']} x {post.sizes['draw']} draws, but its sampler "
                                f"settings record {sampler['chains']} x {sampler['draws']}: a truncated run. {fix}")
    if spec_hash(stored_spec) != idata.attrs["spec_hash"]:
        raise DataMismatchError(f"'{path}': its stored spec does not match the spec hash recorded when it was fitted "
                                f"(the file was changed). {fix}")


def load_fit_file(path: str | Path) -> xr.DataTree:
    """The groups and attributes of a netCDF file of groups (a saved fit), read into memory and the file closed (so
    that it can be replaced or deleted while the fit is in use)."""
    with xr.open_datatree(str(path)) as tree:
        fit = tree.load()
    for name, group in fit.children.items():     # draws saved in single precision or packed: as double, as computed
        data = group.to_dataset()
        single = {var: values.astype(np.float64) for var, values in data.data_vars.items()
                  if values.dtype == np.float32}
        if single:
            fit[name] = data.assign(single)
    return fit


def _storable(column: pd.Series) -> np.ndarray:
    """Values netCDF can hold: ids keep a numeric dtype when they are numbers, else become str."""
    values = np.asarray(column.tolist())
    return values.astype(str) if values.dtype == object else values


def _study_from_constant_data(idata: xr.DataTree) -> Study:
    """The model's inputs, as stored in ``constant_data``, as a study of its own."""
    table = idata["constant_data"].to_dataset().to_dataframe().reset_index(drop=True)
    levels = json.loads(idata.attrs["roles"])
    roles: dict[str, Any] = {**{c: c for c in ID_COLUMNS if c in table or c == "time"},
                             "variables": {m: {"column": m, "level": lvl} for m, lvl in levels.items()
                                           if isinstance(lvl, str)},
                             "scales": {m: scale for m, scale in levels.items() if not isinstance(scale, str)}}
    table["session"] = table["session"].astype(np.int64)
    return Study.from_frame(table, roles)
