"""What every lcbayes model shares: spec and priors, building, fitting, prediction, save/load.

A model subclass declares its ``name``, its ``option_defaults``, data-scaled
``default_priors()``, the PyMC graph in ``build()`` and its ``population`` parameters. Models
of the climate family (A, B) expose per cell (participant x session) the deterministics
``mu`` (mean without participant effects) and ``log_sigma`` (log residual SD), plus the
participant-effect SDs ``tau_participant`` and correlation ``rho_participant``; participant
effects are integrated out of the likelihood (:mod:`lcbayes.models.marginal`) and drawn
exactly afterwards.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Mapping

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from lcbayes import __version__
from lcbayes.data.study import Study
from lcbayes.diagnostics import Diagnostics, diagnose
from lcbayes.errors import LcbayesError
from lcbayes.models.marginal import draw_effects
from lcbayes.models.panel import Panel
from lcbayes.models.priors import Prior, merge_priors
from lcbayes.models.spec import ModelSpec, SamplerSettings, read_spec
from lcbayes.sampling import sample

ID_COLUMNS = ("community", "participant", "organization", "session", "time")
CELL_DETERMINISTICS = ("mu", "log_sigma", "loglik")


class DataMismatchError(LcbayesError):
    """A saved fit was loaded against data (or a spec) other than the one it was fitted to."""


class NotFittedError(LcbayesError):
    """A method needs a fitted model; call ``fit()`` (or ``load()``) first."""


class BayesModel:
    """Base of the lcbayes models; see the module docstring for what subclasses provide."""

    name: ClassVar[str]
    option_defaults: ClassVar[dict[str, Any]]

    def __init__(self, study: Study, spec: ModelSpec | Mapping[str, Any] | str | Path | None = None,
                 **options: Any):
        if isinstance(spec, (str, Path)):
            spec = read_spec(spec)
        spec = dict(spec.to_dict() if isinstance(spec, ModelSpec) else (spec or {}))
        if options:
            spec["options"] = {**spec.get("options", {}), **options}
        self.study = study
        self.spec = ModelSpec.parse(spec, self.name, self.option_defaults)
        self.study.roles.level_of(self.spec.outcome)  # unknown outcome: clear KeyError
        self.options = self.spec.options
        self.panel = Panel.from_study(study, time=self.options["time"], time_scale=float(self.options["time_scale"]))
        self.prepare()
        self.priors: dict[str, Prior] = merge_priors(self.default_priors(), self.spec.priors)
        self.idata: az.InferenceData | None = None
        self._cells: xr.Dataset | None = None   # posterior mu, log_sigma (computed on demand)

    # ------------------------------------------------------------------ subclass interface
    def prepare(self) -> None:
        """Check options against the study and derive the arrays the graph needs."""

    def default_priors(self) -> dict[str, Prior]:
        raise NotImplementedError

    def build(self) -> pm.Model:
        raise NotImplementedError

    @property
    def population(self) -> list[str]:
        """Population-level parameters: summarised, diagnosed and checked for recovery."""
        raise NotImplementedError

    @property
    def measures(self) -> list[str]:
        """Measures (outcome and predictors) the model reads from the study."""
        return [self.spec.outcome]

    def derived(self, idata: az.InferenceData) -> xr.Dataset:
        """Derived quantities added to the posterior after fitting (none by default)."""
        return xr.Dataset()

    # ------------------------------------------------------------------ building and fitting
    @cached_property
    def model(self) -> pm.Model:
        """The PyMC model, built once."""
        return self.build()

    def prior(self, name: str, **kwargs: Any) -> Any:
        """Create parameter ``name`` from its (possibly overridden) prior in the model in context."""
        return self.priors[name].create(name, **kwargs)

    @property
    def coords(self) -> dict[str, list]:
        return {k: list(v) for k, v in self.study.coords.items()}

    def stored_vars(self) -> list[str]:
        """Variables kept from sampling: all but the large per-cell deterministics."""
        return [v.name for v in self.model.free_RVs + self.model.deterministics
                if v.name not in CELL_DETERMINISTICS]

    def fit(self, **sampler: Any) -> az.InferenceData:
        """Sample the posterior (sampler settings from the spec, overridable here) and complete
        the InferenceData with observed and constant data, log likelihood per participant and
        derived quantities. Returns (and keeps as ``self.idata``) the result."""
        settings = self.spec.sampler.updated(**sampler)
        idata = sample(self.model, settings, var_names=self.stored_vars())
        return self.complete(idata, settings)

    def complete(self, idata: az.InferenceData, settings: SamplerSettings) -> az.InferenceData:
        """Add what a raw sampler result lacks (shared by ``fit`` and compiled refits)."""
        cells = pm.compute_deterministics(idata.posterior, var_names=list(CELL_DETERMINISTICS), model=self.model,
                                          progressbar=False)
        loglik = cells["loglik"].rename(self.spec.outcome)
        for group in ("observed_data", "constant_data", "log_likelihood"):  # PyMC's own, in panel layout
            if group in idata.groups():
                delattr(idata, group)
        idata.add_groups(log_likelihood=xr.Dataset({self.spec.outcome: loglik}),
                         observed_data=self._observed(), constant_data=self._constant())
        self.idata = idata
        self._cells = cells[["mu", "log_sigma"]]
        idata.posterior = idata.posterior.merge(self.derived(idata))
        idata.attrs.update(self._provenance(settings))
        return idata

    # ------------------------------------------------------------------ data in InferenceData
    def _used_table(self) -> pd.DataFrame:
        cols = [c for c in ID_COLUMNS if c in self.study.table] + self.measures
        return self.study.table[cols].reset_index(drop=True)

    def _observed(self) -> xr.Dataset:
        y = self.study.values(self.spec.outcome)
        ok = ~np.isnan(y)
        return xr.Dataset({self.spec.outcome: ("obs", y[ok])}, coords={"obs": np.flatnonzero(ok)})

    def _constant(self) -> xr.Dataset:
        t = self._used_table()
        return xr.Dataset({c: ("row", _storable(t[c])) for c in t.columns}, coords={"row": np.arange(len(t))})

    def data_hash(self) -> str:
        """SHA-256 of the model's inputs: id columns, used measures and their levels."""
        t = self._used_table()
        text = t.to_csv(index=False, float_format="%.17g")
        return hashlib.sha256((text + json.dumps(self._levels(), sort_keys=True)).encode()).hexdigest()

    def _levels(self) -> dict[str, str]:
        """Measurement level of each measure the model uses."""
        return {m: self.study.roles.level_of(m) for m in self.measures}

    def _provenance(self, settings: SamplerSettings) -> dict[str, Any]:
        n_missing = int(np.isnan(self.study.values(self.spec.outcome)).sum())
        return {
            "lcbayes_version": __version__,
            "model": self.name,
            "spec": json.dumps(self.spec.to_dict()),
            "spec_hash": self.spec.hash(),
            "data_hash": self.data_hash(),
            "priors": json.dumps({k: p.to_dict() for k, p in self.priors.items()}),
            "roles": json.dumps(self._levels()),
            "sampler": json.dumps({**settings.__dict__}),
            "rows_without_outcome": n_missing,
        }

    # ------------------------------------------------------------------ results
    def _fitted(self) -> az.InferenceData:
        if self.idata is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first.")
        return self.idata

    def diagnostics(self) -> Diagnostics:
        """Convergence verdicts for the population parameters."""
        return diagnose(self._fitted(), self.population)

    def summary(self, hdi_prob: float = 0.9) -> pd.DataFrame:
        """Posterior mean, SD, HDI, MCSE, ESS and R-hat of the population parameters."""
        return az.summary(self._fitted(), var_names=self.population, hdi_prob=hdi_prob, round_to="none")

    def cell_deterministics(self) -> xr.Dataset:
        """Posterior ``mu`` and ``log_sigma`` per participant x session (computed once)."""
        idata = self._fitted()
        if self._cells is None:
            self._cells = pm.compute_deterministics(idata.posterior, var_names=["mu", "log_sigma"],
                                                    model=self.model, progressbar=False)
        return self._cells

    def participant_effects(self, seed: int = 0) -> xr.DataArray:
        """Draws of the participant intercept and slope, (chain, draw, participant, effect):
        exact draws from their conditional posterior given each draw of the other parameters."""
        ds = self._fitted().posterior.merge(self.cell_deterministics())
        return self._draw_effects(ds, self.panel.cells(self.spec.outcome)[1], np.random.default_rng(seed))

    def _draw_effects(self, ds: xr.Dataset, mask: np.ndarray, rng: np.random.Generator) -> xr.DataArray:
        """Participant effects given the draws in ``ds`` (with ``mu`` and ``log_sigma``); an
        all-zero ``mask`` conditions on no data, i.e. draws from N(0, Sigma_r)."""
        tau = ds["tau_participant"].values
        rho = ds["rho_participant"].values if "rho_participant" in ds else np.zeros(tau.shape[:2])
        tau0, tau1 = tau[..., 0:1], (tau[..., 1:2] if tau.shape[-1] > 1 else np.zeros_like(tau[..., 0:1]))
        y, _ = self.panel.cells(self.spec.outcome)
        mu, log_sigma = ds["mu"].values, ds["log_sigma"].broadcast_like(ds["mu"]).values
        r = draw_effects(y - mu, mask, log_sigma, self.panel.time, tau0, tau1, rho[..., None], rng)
        return xr.DataArray(r, dims=("chain", "draw", "participant", "effect"),
                            coords={"participant": self.coords["participant"], "effect": ["intercept", "slope"]})

    def _expected(self, ds: xr.Dataset, r: xr.DataArray) -> np.ndarray:
        """Cell means with participant effects: mu + r0 + r1 s, shape (chain, draw, P, T)."""
        r = r.values
        return ds["mu"].values + r[..., 0:1] + r[..., 1:2] * self.panel.time

    def predict(self, seed: int = 0) -> xr.DataArray:
        """Expected outcome per participant x session including participant effects,
        (chain, draw, participant, session); also for sessions a participant missed."""
        cells = self.cell_deterministics()
        return xr.DataArray(self._expected(cells, self.participant_effects(seed)), dims=cells["mu"].dims,
                            coords=cells["mu"].coords, name="expected")

    def _replicate(self, ds: xr.Dataset, r: xr.DataArray, rng: np.random.Generator) -> xr.Dataset:
        """Replicated outcomes at the observed rows from cell means, effects and residual SDs."""
        mean = self._expected(ds, r)
        sd = np.exp(ds["log_sigma"].broadcast_like(ds["mu"]).values)
        y = mean + sd * rng.standard_normal(mean.shape)
        obs = self._observed()["obs"].values
        pi, ti = self.study.idx["participant"][obs], self.study.idx["session"][obs]
        return xr.Dataset({self.spec.outcome: (("chain", "draw", "obs"), y[..., pi, ti])}, coords={"obs": obs})

    def sample_posterior_predictive(self, seed: int = 0) -> az.InferenceData:
        """Add replicated outcomes (group ``posterior_predictive``) for the observed rows."""
        idata = self._fitted()
        rng = np.random.default_rng(seed)
        ds = idata.posterior.merge(self.cell_deterministics())
        r = self._draw_effects(ds, self.panel.cells(self.spec.outcome)[1], np.random.default_rng(seed))
        pp = self._replicate(ds, r, rng)
        if "posterior_predictive" in idata.groups():
            del idata.posterior_predictive
        idata.add_groups(posterior_predictive=pp)
        return idata

    def sample_prior_predictive(self, draws: int = 500, seed: int = 0) -> az.InferenceData:
        """Prior draws of the parameters and replicated outcomes (groups ``prior`` and
        ``prior_predictive``) as an InferenceData of its own."""
        with self.model:
            prior = pm.sample_prior_predictive(draws=draws, random_seed=seed).prior
        no_data = np.zeros(self.panel.shape)
        r = self._draw_effects(prior, no_data, np.random.default_rng(seed))
        pp = self._replicate(prior, r, np.random.default_rng(seed))
        return az.InferenceData(prior=prior, prior_predictive=pp, observed_data=self._observed())

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the fit (posterior, data, provenance) to a netCDF file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fitted().to_netcdf(str(path))
        return path

    @classmethod
    def load(cls, path: str | Path, study: Study | None = None) -> "BayesModel":
        """Restore a saved fit. Without ``study``, the data stored in the file are used; with
        it, the study must be the one the model was fitted to (checked by its hash)."""
        from lcbayes.models import MODELS

        idata = az.from_netcdf(str(path))
        spec = json.loads(idata.attrs["spec"])
        model_cls = MODELS[spec["model"]] if cls is BayesModel else cls
        if model_cls.name != spec["model"]:
            raise DataMismatchError(f"'{path}' holds a {spec['model']} fit, not {model_cls.name}.")
        if study is None:
            study = _study_from_constant_data(idata)
        model = model_cls(study, spec)
        if model.data_hash() != idata.attrs["data_hash"]:
            raise DataMismatchError(
                f"'{path}' was fitted to other data (data hash {idata.attrs['data_hash'][:12]}...; this "
                f"study's is {model.data_hash()[:12]}...). Fix: load it with the study it was fitted to, "
                "or without a study to use the data stored in the file.")
        model.idata = idata
        return model


def _storable(column: pd.Series) -> np.ndarray:
    """Values netCDF can hold: ids keep a numeric dtype when they are numbers, else become str."""
    values = np.asarray(column.tolist())
    return values.astype(str) if values.dtype == object else values


def _study_from_constant_data(idata: az.InferenceData) -> Study:
    """The model's inputs, as stored in ``constant_data``, as a study of its own."""
    table = idata.constant_data.to_dataframe().reset_index(drop=True)
    levels = json.loads(idata.attrs["roles"])
    roles = {c: c for c in ID_COLUMNS if c in table and c != "time"}
    roles["time"] = "time"
    roles["variables"] = {m: {"column": m, "level": lvl} for m, lvl in levels.items()}
    table["session"] = table["session"].astype(np.int64)
    return Study.from_frame(table, roles)
