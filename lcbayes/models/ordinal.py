"""Ordinal measurement of a latent score: Likert responses as ordered categories (``docs/models.md``, section 2.6).

Each answered item k of participant i at session t is a coarsened latent response, a cumulative probit (the normal-ogive
graded response model)::

    y*_tijk = eta_tij + psi_k eps_tijk,   eps ~ N(0, 1)
    y_tijk = c  <=>  kappa_k,c-1 < y*_tijk <= kappa_k,c          (kappa_k,0 = -inf, kappa_k,C = +inf)
    P(y_tijk = c) = Phi((kappa_k,c - eta_tij) / psi_k) - Phi((kappa_k,c-1 - eta_tij) / psi_k)

with C categories (the declared range low..high). eta is on the response scale: the thresholds are anchored, on average
over the items, at the reference cut points g_c = low + c - 1/2 (1.5, 2.5, 3.5, 4.5 on a 1-5 scale)::

    kappa_k,c = m + delta_k + w exp(zeta_k) (pi_k,c - 1/2),     w = C - 2 = g_C-1 - g_1
    sum_k delta_k = 0,   sum_k zeta_k = 0,   pi_k = (0, cumulative sums of a simplex of C - 2 increments)

so the average item's thresholds are centred on the middle m of the range and span what g spans; items differ in
location (delta_k), spread (zeta_k) and spacing (pi_k) around that. This fixes the origin and unit of eta, so its growth
parameters are in response units, comparable with the scale-mean model's. psi_k is item k's SD around eta, the inverse
of its discrimination a_k = 1 / psi_k (its probit loading per response unit). Data simulated as a latent value plus
N(0, psi^2) noise, rounded and clipped to low..high (:mod:`lcbayes.data.simulate`), have exactly kappa_k,c = g_c.

With thresholds per session (option ``thresholds = "session"``), delta, zeta and pi are per session, each session's
zero sums holding over its items: the average item keeps the reference thresholds at every session (without such an
anchor a change of eta could not be told from a change of all thresholds), and what is freed is how the items'
locations, spreads and spacings move against each other. For one item (J = 1) delta = zeta = 0 and only the spacing pi
is free (C >= 4), and psi is the model's residual SD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy.special import ndtr

from lcbayes.errors import ConfigError, StudyValidationError, problem_at
from lcbayes.models.panel import Panel
from lcbayes.models.priors import MEAN, Prior, create

ITEM_SD = 1 / 3         # item SD psi_k: LogNormal around h/3 (0.67 on a 1-5 scale), the spread of one Likert item
LOG_SPAN_SD = 0.3       # SD of the items' log threshold spans around the reference (zero sum)
SHAPE_CONCENTRATION = 2.0   # Dirichlet(2, ..., 2) on the threshold spacing: equal spacing most likely
Z_LIMIT = 40.0          # standardised thresholds beyond +-40 stand for +-infinity (finite, so gradients stay finite)
SENTINEL = 1e6          # the outermost thresholds kappa_0 and kappa_C, in response units


def log_ndtr(z: Any) -> Any:
    """log Phi(z), stable for any z in [-Z_LIMIT, Z_LIMIT] (each branch gets an argument where it is finite, so that
    neither the value nor the gradient of the branch not taken can be NaN)."""
    neg, pos = pt.minimum(z, 0.0), pt.maximum(z, 0.0)
    below = pt.log(pt.erfcx(-neg / np.sqrt(2.0)) / 2) - neg**2 / 2
    above = pt.log1p(-pt.erfcx(pos / np.sqrt(2.0)) / 2 * pt.exp(-(pos**2) / 2))
    return pt.switch(z < 0, below, above)


def log_interval(lower: Any, upper: Any) -> Any:
    """log(Phi(upper) - Phi(lower)) for lower < upper (standardised), computed in the tail where it is accurate: when
    both lie above 0, as log(Phi(-lower) - Phi(-upper))."""
    flip = lower > 0
    a, b = pt.switch(flip, -upper, lower), pt.switch(flip, -lower, upper)
    la, lb = log_ndtr(a), log_ndtr(b)
    return lb + pt.log1mexp(la - lb)


def interval_probability(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Phi(upper) - Phi(lower) in NumPy, accurate in both tails."""
    flip = lower > 0
    return np.where(flip, ndtr(-lower) - ndtr(-upper), ndtr(upper) - ndtr(lower))


@dataclass(frozen=True)
class Responses:
    """The answered ordinal responses of one measure, one entry per answered (cell, item): codes ``participant``,
    ``session``, ``item`` and ``category`` (0 = the lowest response ``low``, C - 1 the highest), (N,) each. ``cells``
    (P, T): 1 where the measure is observed (a scale score exists: at least the scale's ``min_share`` of its items
    answered); only responses in those cells enter. ``answered`` (P, T, K): which items were answered; ``total`` (P, T):
    the sum of the answered categories."""

    participant: np.ndarray
    session: np.ndarray
    item: np.ndarray
    category: np.ndarray
    items: tuple[str, ...]
    low: int
    categories: int
    cells: np.ndarray
    answered: np.ndarray
    total: np.ndarray

    @classmethod
    def of(cls, panel: Panel, name: str) -> Responses:
        """The responses of measure ``name``: a scale's items, or a single rated variable as one item. They must be
        whole numbers in the declared range (a typed error names the column and rows otherwise)."""
        study = panel.study
        scale = study.response_range(name)
        if not scale.declared:
            raise ConfigError(f"'{name}' has no declared response range, which ordinal measurement needs (its "
                              f"categories). Fix: give it a range in the roles, e.g. range = [1, 5].")
        low, high = int(round(scale.low)), int(round(scale.high))
        if (low, high) != (scale.low, scale.high) or high - low < 2:
            raise ConfigError(f"'{name}': ordinal measurement needs whole-number categories, at least three, got the "
                              f"range {scale.low:g}-{scale.high:g}. Fix: declare the items' range, e.g. [1, 5].")
        frame = study.items.get(name)
        if frame is None:
            frame = pd.DataFrame({name: study.values(name)}, index=study.table.index)
        values = frame.to_numpy(dtype=float)
        scored = ~np.isnan(study.values(name))
        bad = ~np.isnan(values) & ((values != np.round(values)) | (values < low) | (values > high))
        if bad.any():
            problems = [problem_at(col, f"ordinal measurement needs whole numbers from {low} to {high}; these rows "
                                        "have other values", "correct the values, or model the measure as a scale "
                                        "mean (measurement = \"scale\", family = \"gaussian\")",
                                   frame.index[bad[:, k]].tolist())
                        for k, col in enumerate(frame.columns) if bad[:, k].any()]
            raise StudyValidationError(problems)
        answered = ~np.isnan(values) & scored[:, None]
        row, item = np.nonzero(answered)
        pi, ti = study.idx["participant"], study.idx["session"]
        shape = panel.shape
        cells, total = np.zeros(shape), np.zeros(shape, dtype=np.int64)
        grid = np.zeros(shape + (values.shape[1],), dtype=bool)
        cells[pi[scored], ti[scored]] = 1.0
        grid[pi, ti] = answered
        category = (values[row, item] - low).astype(np.int64)
        np.add.at(total, (pi[row], ti[row]), category)
        return cls(pi[row], ti[row], item, category, tuple(frame.columns), low, high - low + 1, cells, grid, total)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def score(self) -> np.ndarray:
        """(P, T) mean answered response (the scale score) in response units; 0 where unobserved."""
        n = self.answered.sum(-1)
        return np.where(n > 0, self.low + self.total / np.maximum(n, 1), 0.0)


@dataclass(frozen=True)
class Thresholds:
    """Item thresholds kappa (see the module docstring): ``items`` K, ``categories`` C, the range's ``low`` end,
    ``per_session`` (one set per session, the option ``thresholds = "session"``)."""

    items: tuple[str, ...]
    categories: int
    low: float
    per_session: bool

    @property
    def mid(self) -> float:
        return self.low + (self.categories - 1) / 2

    @property
    def reference(self) -> np.ndarray:
        """The reference cut points g_c = low + c - 1/2, c = 1..C-1."""
        return self.low + np.arange(1, self.categories) - 0.5

    @property
    def dims(self) -> tuple[str, ...]:
        return ("session", "item") if self.per_session else ("item",)

    def coords(self) -> dict[str, list]:
        cuts = [f"{self.low + c:g}|{self.low + c + 1:g}" for c in range(self.categories - 1)]
        out: dict[str, list] = {"item": list(self.items), "cut": cuts}
        if self.categories > 3:
            out["increment"] = cuts[1:]
        return out

    def priors(self, half: float) -> dict[str, Prior]:
        """Item locations ZeroSumNormal(h/4) and log spans ZeroSumNormal(0.3) around the reference (J >= 2), spacings
        Dirichlet(2, ..., 2) (C >= 4)."""
        out: dict[str, Prior] = {}
        if len(self.items) > 1:
            out["threshold_location"] = Prior("ZeroSumNormal", {"sigma": MEAN * half})
            out["threshold_log_span"] = Prior("ZeroSumNormal", {"sigma": LOG_SPAN_SD})
        if self.categories > 3:
            out["threshold_shape"] = Prior("Dirichlet", {"a": [SHAPE_CONCENTRATION] * (self.categories - 2)})
        return out

    def build(self, priors: Mapping[str, Prior]) -> pt.TensorVariable:
        """kappa, (S, K, C - 1) with S = T sessions or 1, in the model in context (stored as ``thresholds``)."""
        delta: Any = 0.0
        zeta: Any = 0.0
        if len(self.items) > 1:
            delta = create(priors, "threshold_location", dims=self.dims)[..., None]
            zeta = create(priors, "threshold_log_span", dims=self.dims)[..., None]
        if self.categories > 3:
            path = pt.cumsum(create(priors, "threshold_shape", dims=(*self.dims, "increment")), axis=-1)
            pi = pt.concatenate([pt.zeros_like(path[..., :1]), path], axis=-1)
        else:
            pi = pt.as_tensor(np.array([0.0, 1.0]))
        kappa = self.mid + delta + (self.categories - 2.0) * pt.exp(zeta) * (pi - 0.5)
        sessions = (len(pm.modelcontext(None).coords["session"]),) if self.per_session else ()
        kappa = pt.broadcast_to(kappa, (*sessions, len(self.items), self.categories - 1))
        stored = pm.Deterministic("thresholds", kappa, dims=(*self.dims, "cut"))
        return stored if self.per_session else stored[None]


def threshold_sets(sessions: int, per_session: bool) -> np.ndarray:
    """Which set of thresholds each of ``sessions`` sessions uses, (T,): its own (``per_session``) or the one shared
    set."""
    return np.arange(sessions) if per_session else np.zeros(sessions, dtype=np.int64)


def padded(kappa: Any, xp: Any = pt) -> Any:
    """Thresholds with the sentinels kappa_0 = -SENTINEL and kappa_C = +SENTINEL added on the last axis."""
    edge = xp.ones_like(kappa[..., :1]) * SENTINEL
    return xp.concatenate([-edge, kappa, edge], axis=-1)


def response_logp(responses: Responses, eta: Any, kappa: Any, sd: Any) -> Any:
    """log P(y_n = c_n) of every answered response n, (N,): ``eta`` the latent value per response, (N,); ``kappa`` the
    thresholds (S, K, C - 1) (S = 1: the same at every session); ``sd`` psi per response, (N,) or a scalar."""
    kap = padded(kappa)
    s = responses.session if kappa.type.shape[0] != 1 else np.zeros_like(responses.session)
    upper = kap[s, responses.item, responses.category + 1]
    lower = kap[s, responses.item, responses.category]
    z = [pt.clip((bound - eta) / sd, -Z_LIMIT, Z_LIMIT) for bound in (lower, upper)]
    return log_interval(*z)


def category_probabilities(kappa: np.ndarray, eta: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """P(y = c | eta) for every category c on a new last axis (NumPy): ``kappa`` (..., C - 1) and ``eta``, ``sd``
    broadcastable to its leading axes."""
    z = (padded(kappa, np)[..., :] - np.asarray(eta)[..., None]) / np.asarray(sd)[..., None]
    z = np.clip(z, -Z_LIMIT, Z_LIMIT)
    return interval_probability(z[..., :-1], z[..., 1:])


def coarsen(latent: np.ndarray, kappa: np.ndarray) -> np.ndarray:
    """Category codes 0..C-1 of latent responses: the number of thresholds below each value (``kappa``, (..., C - 1),
    broadcastable to ``latent`` with the cut axis last)."""
    return (latent[..., None] > kappa).sum(-1)


ORDINAL_OPTIONS: dict[str, Any] = {"measurement": "scale", "family": "gaussian", "thresholds": "invariant"}


@dataclass(frozen=True)
class OrdinalOutcome:
    """An outcome measured ordinally: its ``responses`` and ``thresholds``; ``items`` is true for a scale's items as
    indicators of a latent score (``measurement = "items"``), false for one rated item (``family = "ordinal"``)."""

    responses: Responses
    thresholds: Thresholds
    items: bool

    @classmethod
    def from_options(cls, panel: Panel, name: str, options: Mapping[str, Any]) -> OrdinalOutcome | None:
        """The ordinal measurement the options ask for (see :data:`ORDINAL_OPTIONS`), or None for the Gaussian model
        of the scale score."""
        choices = {"measurement": ("scale", "items"), "family": ("gaussian", "ordinal"),
                   "thresholds": ("invariant", "session")}
        for key, allowed in choices.items():
            if options[key] not in allowed:
                raise ConfigError(f"option {key} must be one of {', '.join(map(repr, allowed))}, got "
                                  f"{options[key]!r}.")
        items, ordinal = options["measurement"] == "items", options["family"] == "ordinal"
        if not (items or ordinal):
            if options["thresholds"] != "invariant":
                raise ConfigError("option thresholds applies to ordinal measurement only. Fix: set measurement = "
                                  "\"items\" or family = \"ordinal\", or leave thresholds at \"invariant\".")
            return None
        n_items = len(panel.study.items[name].columns) if name in panel.study.items else 1
        if items and n_items < 2:
            raise ConfigError(f"measurement = \"items\" needs a scale of two or more items; '{name}' has {n_items}. "
                              "Fix: for one rated item set family = \"ordinal\" and measurement = \"scale\".")
        if ordinal and not items and n_items > 1:
            raise ConfigError(f"family = \"ordinal\" models one rated item, but '{name}' is the mean of {n_items} "
                              "items. Fix: set measurement = \"items\" to model its items as ordinal indicators.")
        responses = Responses.of(panel, name)
        return cls(responses, Thresholds(responses.items, responses.categories, responses.low,
                                         options["thresholds"] == "session"), items)

    def priors(self, half: float) -> dict[str, Prior]:
        """The thresholds' priors and, for items, the item SDs psi_k ~ LogNormal(log(h/3), 0.5) (0.29-1.5 on a 1-5
        scale, 5-95%)."""
        out = self.thresholds.priors(half)
        if self.items:
            out["item_sd"] = Prior("LogNormal", {"mu": float(np.log(ITEM_SD * half)), "sigma": 0.5})
        return out

    @property
    def population(self) -> list[str]:
        return ["thresholds"] + (["item_sd"] if self.items else [])

    def coords(self) -> dict[str, list]:
        cells = {"cell": list(range(int(self.responses.cells.sum())))} if self.items else {}
        return {**self.thresholds.coords(), **cells}

    def cell_logp(self, kappa: Any) -> Any:
        """For one rated item: the cell log probability of the observed response given its mean and SD, (P, T) (a
        ``cell_logp`` of :meth:`~lcbayes.models.climate.Participants.likelihood`)."""
        resp = self.responses
        T = resp.cells.shape[1]
        sess = threshold_sets(T, self.thresholds.per_session)
        kap = padded(kappa)[:, 0]                                    # (S, C + 1)
        lower, upper = kap[sess[None, :], resp.total], kap[sess[None, :], resp.total + 1]

        def logp(mean: Any, sd: Any) -> Any:
            z = [pt.clip((bound - mean) / sd, -Z_LIMIT, Z_LIMIT) for bound in (lower, upper)]
            return log_interval(*z)
        return logp

    def simulate(self, mean: np.ndarray, sigma: np.ndarray, kappa: np.ndarray, psi: np.ndarray | None,
                 rng: np.random.Generator) -> np.ndarray:
        """Replicated scores per cell (..., P, T) in response units: the mean of the answered items' replicated
        responses (one item: its response). ``mean`` (..., P, T) expected latent score; ``sigma`` (...) its SD (one
        item: the response's); ``kappa`` (..., S, K, C - 1); ``psi`` (..., K) item SDs or None."""
        resp = self.responses
        T = resp.cells.shape[1]
        sess = threshold_sets(T, kappa.shape[-3] > 1)
        latent = mean + sigma[..., None, None] * rng.standard_normal(mean.shape)
        if psi is None:
            return resp.low + coarsen(latent, kappa[..., sess, 0, :][..., None, :, :])
        total = np.zeros(mean.shape)
        for k in range(resp.n_items):
            response = latent + psi[..., k, None, None] * rng.standard_normal(mean.shape)
            total += resp.answered[..., k] * coarsen(response, kappa[..., sess, k, :][..., None, :, :])
        return resp.low + total / np.maximum(resp.answered.sum(-1), 1)
