"""Building blocks shared by the models: options, random streams, group effects, measurement error.

Each function adds variables to the PyMC model in context and returns tensors shaped for the participant x session
layout of :class:`~lcbayes.models.panel.Panel`. Linear combinations are written as elementwise products and sums, not
matrix products: BLAS calls start threads of their own that fight the sampler's chains for the cores (a 3x slowdown
measured at 23k cells on 2 cores).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from lcbayes.data.scoring import within_row_ss
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.models.panel import Panel
from lcbayes.models.priors import Prior


def uses_organization(option: object, study: Study) -> bool:
    """Whether a model adds organization effects: the ``organization`` option is true, false or ``"auto"`` (when the
    study maps an organization column)."""
    if option not in ("auto", True, False):
        raise ConfigError(f"option organization must be true, false or \"auto\", got {option!r}.")
    has_org = "organization" in study.idx
    if option is True and not has_org:
        raise ConfigError("option organization = true, but the study maps no organization column. "
                          "Fix: map it in the roles, or set organization = false.")
    return has_org and option is not False


def predictive_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Two independent generators from one seed: for random effects and for residual noise (one generator per purpose,
    so that no draw repeats another's normals)."""
    effects, noise = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(effects), np.random.default_rng(noise)


@dataclass(frozen=True)
class GroupEffects:
    """Zero-mean effects of one grouping factor on its ``terms`` (e.g. intercept and slope)::

        b_g ~ MVN(0, Sigma),  Sigma = diag(tau) Omega diag(tau),  Omega ~ LKJ(eta)

    for any number of terms (Omega = I when ``correlated`` is false), or b_g ~ N(0, tau) for an intercept alone
    (``terms_dim`` None: tau is a scalar). Parameters, by ``name``: ``tau_<name>`` over ``terms_dim``; ``corr_<name>``
    over the term pairs ``"a:b"`` (dim ``<terms_dim>_pair``); drawn effects ``z_<name>`` ~ N(0, 1) and ``u_<name>`` =
    diag(tau) L z over (``level``, ``terms_dim``), L the Cholesky factor of Omega.

    Omega is sampled through its canonical partial correlations (the C-vine of Lewandowski, Kurowicka & Joe 2009,
    section 3.2): z_ij (j < i), the correlation of terms i and j given terms 0..j-1, are independent with
    (z_ij + 1) / 2 ~ Beta(b_j, b_j), b_j = eta + (n - 2 - j) / 2, stored as ``cpc_<name>``; then
    L[i, j] = z_ij sqrt(1 - sum_{l<j} L[i, l]^2) and L[i, i] = sqrt(1 - sum_{l<i} L[i, l]^2), and Omega = L L' has
    exactly the LKJ(eta) density. For two terms this is rho = z, (rho + 1) / 2 ~ Beta(eta, eta). It needs no matrix
    algebra in the graph, which keeps the gradient as cheap as hand-written effects (``pm.LKJCholeskyCov`` made models
    A and B 15% slower per effective draw, ``benchmarks/RESULTS.md``).
    """

    name: str
    level: str
    terms_dim: str | None = None
    terms: tuple[str, ...] = ()
    correlated: bool = True

    @property
    def tau(self) -> str:
        return f"tau_{self.name}"

    @property
    def corr(self) -> str:
        return f"corr_{self.name}"

    @property
    def has_corr(self) -> bool:
        return self.correlated and len(self.terms) > 1

    @property
    def population(self) -> list[str]:
        return [self.tau] + ([self.corr] if self.has_corr else [])

    def priors(self, sd: Any, eta: float) -> dict[str, Prior]:
        """SDs half-normal(``sd``, one per term), correlations LKJ(``eta``)."""
        priors = {self.tau: Prior("HalfNormal", {"sigma": sd})}
        return {**priors, self.corr: Prior("LKJ", {"eta": eta})} if self.has_corr else priors

    def coords(self) -> dict[str, list]:
        if self.terms_dim is None:
            return {}
        pairs = {f"{self.terms_dim}_pair": [f"{a}:{b}" for a, b in combinations(self.terms, 2)]}
        return {self.terms_dim: list(self.terms), **(pairs if self.has_corr else {})}

    def _lkj(self, priors: Mapping[str, Prior]) -> Prior:
        lkj = priors[self.corr]
        if lkj.dist != "LKJ":
            raise ConfigError(f"prior '{self.corr}': correlations take an LKJ prior, not {lkj.dist}. "
                              f"Fix: {self.corr} = {{ dist = \"LKJ\", eta = 2 }}.")
        return lkj

    def scale(self, priors: Mapping[str, Prior]) -> tuple[Any, list[list[Any]] | None]:
        """tau and the Cholesky factor L of Omega in the model in context, L as rows of scalars (row i holds
        L[i, 0..i]); None without correlations."""
        tau = priors[self.tau].create(self.tau, dims=self.terms_dim)
        if not self.has_corr:
            return tau, None
        n, lkj = len(self.terms), self._lkj(priors)
        column = np.array([j for i in range(1, n) for j in range(i)])
        b = float(lkj.params.get("eta", 1.0)) + (n - 2 - column) / 2
        z = 2 * pm.Beta(f"cpc_{self.name}", b, b, dims=f"{self.terms_dim}_pair") - 1
        rows: list[list[Any]] = [[pt.constant(1.0)]]
        for i in range(1, n):
            row, used = [], 0.0
            for j in range(i):
                row.append(z[i * (i - 1) // 2 + j] * (pt.sqrt(1 - used) if j else 1.0))
                used = used + row[-1] ** 2
            rows.append(row + [pt.sqrt(1 - used)])
        pairs = [sum(rows[a][m] * rows[c][m] for m in range(a + 1)) for a, c in combinations(range(n), 2)]
        pm.Deterministic(self.corr, pt.stack(pairs), dims=f"{self.terms_dim}_pair")
        return tau, rows

    def centred_cholesky(self, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        """diag(tau) L, (n, n), for *centred* effects (the ``chol`` of a ``pm.MvNormal``), sampled as one packed
        Cholesky factor by ``pm.LKJCholeskyCov`` (free variable ``chol_<name>``; ``tau_<name>`` and ``corr_<name>`` are
        stored as deterministics). Same prior as :meth:`scale`; for the centred 3 x 3 person means of model C this
        parametrisation mixes better than partial correlations (``benchmarks/RESULTS.md``), while non-centred effects
        (:meth:`effects`) keep the partial correlations."""
        n, lkj = len(self.terms), self._lkj(priors)
        packed = f"{self.terms_dim}_cholesky"        # the packed lower triangle, row by row: "row,column"
        pm.modelcontext(None).add_coord(packed, [f"{self.terms[r]},{self.terms[c]}" for r in range(n)
                                                 for c in range(r + 1)])
        chol, corr, sd = pm.LKJCholeskyCov(f"chol_{self.name}", n=n, eta=float(lkj.params.get("eta", 1.0)),
                                           sd_dist=priors[self.tau].distribution(shape=n), compute_corr=True,
                                           store_in_trace=False, dims=packed)
        pm.Deterministic(self.tau, sd, dims=self.terms_dim)
        pm.Deterministic(self.corr, pt.stack([corr[a, c] for a, c in combinations(range(n), 2)]),
                         dims=f"{self.terms_dim}_pair")
        return chol

    def effects(self, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        """Non-centred effects u = diag(tau) L z, (level, terms) or (level,), stored as ``u_<name>``."""
        tau, rows = self.scale(priors)
        dims = (self.level,) if self.terms_dim is None else (self.level, self.terms_dim)
        z = pm.Normal(f"z_{self.name}", 0.0, 1.0, dims=dims)
        if rows is None:
            u = tau * z
        else:   # elementwise sums, see the module doc
            u = pt.stack([tau[i] * sum(rows[i][m] * z[:, m] for m in range(i + 1)) for i in range(len(rows))], axis=1)
        return pm.Deterministic(f"u_{self.name}", u, dims=dims)

    def variance(self, post: Any, x: Sequence[Any] = (1.0,)) -> Any:
        """Variance of sum_k x_k b_k from the draws in ``post`` (a Dataset, or the PyMC model for graph variables):
        with x = (1, s), the level's variance at time s, tau0^2 + 2 rho tau0 tau1 s + tau1^2 s^2."""
        def take(a: Any, dim: str, k: int) -> Any:
            return a.isel({dim: k}, drop=True) if isinstance(a, xr.DataArray) else a[k]

        tau = post[self.tau]
        if self.terms_dim is None:
            return tau**2 * x[0] ** 2
        n = min(len(x), len(self.terms))     # the first n terms (x may be longer than a model without slopes needs)
        sd = [take(tau, self.terms_dim, k) * x[k] for k in range(n)]
        var = sum(v**2 for v in sd)
        if self.has_corr:
            corr = post[self.corr]
            for p, (k, m) in enumerate(combinations(range(len(self.terms)), 2)):
                if m < n:
                    var = var + 2 * take(corr, f"{self.terms_dim}_pair", p) * sd[k] * sd[m]
        return var


MEASUREMENT_ERROR = ("auto", "items", "estimate", "none")


@dataclass(frozen=True)
class MeasurementError:
    """Item measurement error of a scale score: observed score = latent value + e_tij, e_tij ~ N(0, theta / n_tij),
    theta the unique variance of one item (:func:`~lcbayes.data.scoring.unique_variance`, parallel items) and n_tij
    the items answered in the cell. With ``estimate``, theta is a parameter (``theta_items``) whose data are the items'
    pooled within-row sum of squares, SS / theta ~ chi^2(df); otherwise it is fixed at SS / df."""

    ss: float
    df: int
    n_items: int
    inv_answered: np.ndarray   # (P, T) 1 / items answered; 1 / n_items where unobserved
    estimate: bool

    @property
    def theta_hat(self) -> float:
        return self.ss / self.df

    @classmethod
    def of(cls, panel: Panel, name: str, mode: str) -> MeasurementError | None:
        """The measurement error of measure ``name`` under option ``mode`` (see :data:`MEASUREMENT_ERROR`):
        ``auto`` uses the items when the measure has them, ``none`` (or a single score under ``auto``) gives None."""
        if mode not in MEASUREMENT_ERROR:
            raise ConfigError(f"option measurement_error must be one of {', '.join(MEASUREMENT_ERROR)}, got {mode!r}.")
        items = panel.study.items.get(name)
        if mode == "none" or (items is None and mode == "auto"):
            return None
        if items is None:
            raise ConfigError(f"measurement_error = '{mode}' needs the items of '{name}', which is a single score. "
                              "Fix: declare it as a scale with its items in the roles, or set measurement_error = "
                              "'none'.")
        ss, df = within_row_ss(items)
        if df == 0:
            raise ConfigError(f"scale '{name}': no row has two or more answered items, so the item error variance "
                              "cannot be estimated. Fix: set measurement_error = 'none'.")
        return cls.from_items(panel, items, ss, df, mode == "estimate")

    def on(self, panel: Panel, name: str) -> MeasurementError:
        """This error (its theta, fitted elsewhere) for the cells of ``panel``'s study, whose items of ``name`` give
        the items answered per cell (new data for prediction: a cell without items counts all of them)."""
        items = panel.study.items.get(name)
        if items is None:
            inv = np.full(panel.shape, 1.0 / self.n_items)
            return MeasurementError(self.ss, self.df, self.n_items, inv, self.estimate)
        return MeasurementError.from_items(panel, items, self.ss, self.df, self.estimate)

    @classmethod
    def from_items(cls, panel: Panel, items: Any, ss: float, df: int, estimate: bool) -> MeasurementError:
        """The error with pooled within-row sum of squares ``ss`` on ``df`` degrees of freedom, and items answered
        per cell of ``panel`` from ``items`` (a table of the scale's items aligned with the study's table)."""
        inv = np.full(panel.shape, 1.0 / items.shape[1])
        answered = items.notna().sum(axis=1).to_numpy()
        ok = answered > 0
        study = panel.study
        inv[study.idx["participant"][ok], study.idx["session"][ok]] = 1.0 / answered[ok]
        return cls(ss, df, items.shape[1], inv, estimate)

    def theta_prior(self, null_variance: float) -> dict[str, Prior]:
        """theta ~ half-normal(sigma_E^2 of the random-response null): weak, from the response scale alone."""
        return {"theta_items": Prior("HalfNormal", {"sigma": null_variance})} if self.estimate else {}

    def variance(self, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        """theta / n_tij, (P, T), in the model in context (with ``estimate``, theta and its item likelihood)."""
        inv = pm.Data("inv_items_answered", self.inv_answered, dims=("participant", "session"))
        if not self.estimate:
            return self.theta_hat * inv
        theta = priors["theta_items"].create("theta_items")
        pm.Potential("items_likelihood", -0.5 * self.df * pt.log(theta) - self.ss / (2 * theta))
        return theta * inv

    def theta(self, post: xr.Dataset) -> Any:
        """theta per draw (``estimate``) or the constant."""
        return post["theta_items"] if self.estimate else self.theta_hat


def fill_missing(name: str, values: np.ndarray, latent) -> pt.TensorVariable:
    """``values`` as model data ``name`` with its NaN entries replaced by new latent parameters (``latent(dim)`` creates
    them over the model dimension ``dim``, ``<name>_missing``, whose labels are the positions "i,j" of the missing
    entries). The observed values are swappable ``pm.Data``; the positions of the missing ones are part of the graph."""
    missing = np.isnan(values)
    data = pm.Data(name, np.where(missing, 0.0, values))
    if not missing.any():
        return data
    dim = f"{name}_missing"
    pm.modelcontext(None).add_coord(dim, [",".join(map(str, at)) for at in zip(*np.nonzero(missing), strict=True)])
    return pt.set_subtensor(data[np.nonzero(missing)], latent(dim))
