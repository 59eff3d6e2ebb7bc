"""Exact K-fold cross-validation that leaves out whole communities (``lcbayes cv``, ``model.kfold``).

PSIS-LOO (``az.loo`` on a fit) leaves out one participant at a time. Members of a community share its effects, so
LOO answers "how well does the model predict a new participant of a *known* community". K-fold cross-validation by
community answers "how well does it predict a *new* community", and it is exact (no importance sampling, no Pareto k).

The communities are split into K folds of (nearly) equal size at random (seeded). For each fold the model is refitted
with every observation of the fold's participants removed (:meth:`~lcbayes.models.BayesModel.without_participants`:
their observed flags set to 0), so the effects of the left-out communities are drawn from their population
distribution (as brms' ``kfold`` with ``sample_new_levels = "gaussian"``). The refits reuse one compiled model (the
data are swapped; the priors stay those of the full data) and run in this process or on Dask workers, as the power
runner's replicates do (:func:`lcbayes.power.runner.finished`). For each left-out community j the expected log
predictive density is

    elpd_j = log (1/S) sum_s exp( sum_{i in j} log p(y_i | theta_s) )

with log p(y_i | theta_s) the model's per-participant log likelihood (participant-level quantities integrated out,
as for LOO) evaluated at the full data with draw s of the fold's posterior: the community's participants are judged
jointly, since they share the community's new effects in each draw. What is scored is what LOO scores (model B: the
climate outcome; its learning outcome is left out of the refit with the rest of the community's data, not scored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

from lcbayes.errors import ConfigError

if TYPE_CHECKING:
    from lcbayes.data.study import Study
    from lcbayes.models.base import BayesModel
    from lcbayes.power.runner import FitterCache


@dataclass(frozen=True)
class KFold:
    """The result of :func:`kfold`: ``pointwise`` has one row per community (``community``, ``fold``,
    ``participants``, ``elpd``, and the refit's ``divergences`` and ``max_r_hat``)."""

    pointwise: pd.DataFrame
    folds: int
    seed: int

    @property
    def elpd(self) -> float:
        """Expected log predictive density of new communities, summed over the study's communities."""
        return float(self.pointwise["elpd"].sum())

    @property
    def se(self) -> float:
        """Its standard error: sqrt(J) x SD of the communities' elpd (as ArviZ computes it for LOO)."""
        return float(np.sqrt(len(self.pointwise)) * self.pointwise["elpd"].std(ddof=1))

    def __str__(self) -> str:
        p = self.pointwise
        fits = p.drop_duplicates("fold")
        return (f"{self.folds}-fold cross-validation by community ({len(p)} communities, seed {self.seed}): "
                f"elpd {self.elpd:.1f} (SE {self.se:.1f}); refits with divergences: "
                f"{int((fits['divergences'] > 0).sum())} of {len(fits)}, max R-hat {fits['max_r_hat'].max():.3f}")


def community_folds(communities: int, k: int, seed: int) -> np.ndarray:
    """The fold (0..k-1) of each community code, (communities,): a seeded random permutation dealt out in turn, so
    fold sizes differ by at most one."""
    if not 2 <= k <= communities:
        raise ConfigError(f"folds must be between 2 and the number of communities ({communities}); got {k}. "
                          f"Fix: --folds {min(10, communities)}.")
    order = np.random.default_rng(seed).permutation(communities)
    folds = np.empty(communities, dtype=int)
    folds[order] = np.arange(communities) % k
    return folds


def fold_seed(seed: int, fold: int) -> int:
    """The sampler seed of one fold's refit (independent of the order the folds run in)."""
    return int(np.random.SeedSequence(entropy=seed, spawn_key=(fold,)).generate_state(1)[0])


def fold_elpd(spec: Mapping[str, Any], study: Study, folds: np.ndarray, fold: int, seed: int,
              cores: int | None = None, cache: FitterCache | None = None) -> pd.DataFrame:
    """Refit without the communities of ``fold`` and score them (runs in a worker): one row per left-out community.
    ``spec`` carries the full data's priors, so every fold's model is the same compiled graph (kept in ``cache``,
    default the worker's)."""
    from lcbayes.diagnostics import diagnose
    from lcbayes.models import create
    from lcbayes.power.runner import worker_cache
    from lcbayes.sampling import CompiledModel

    def compile_model() -> tuple[BayesModel, CompiledModel]:
        model = create(spec, study)
        return model, CompiledModel(model.model, model.spec.sampler, model.stored_vars())

    model, compiled = worker_cache(cache).get(("cv", model_key(spec, study)), compile_model)
    community = model.panel.community                               # (P,) community code of each participant
    left_out = folds[community] == fold
    data = model.without_participants(compiled.data_of(model.model), ~left_out)
    idata = compiled.sample(data, seed=fold_seed(seed, fold), cores=cores)
    loglik = model.pointwise_loglik(idata)                          # at the full data: (chain, draw, participant)
    values = loglik.stack(sample=("chain", "draw")).transpose("participant", "sample").values
    verdict = diagnose(idata, [v for v in model.population if v in idata["posterior"]])
    max_r_hat = float(np.nanmax(verdict.table["max_r_hat"]))
    rows = []
    for j in np.flatnonzero(folds == fold):
        members = community == j
        joint = values[members].sum(axis=0)                          # (S,) sum over the community's participants
        rows.append({"community": model.coords["community"][j], "fold": fold, "participants": int(members.sum()),
                     "elpd": float(logsumexp(joint) - np.log(joint.size)), "divergences": verdict.divergences,
                     "max_r_hat": max_r_hat})
    return pd.DataFrame(rows)


def model_key(spec: Mapping[str, Any], study: Study) -> str:
    """A key for the compiled model of ``spec`` on ``study`` (the spec's JSON and the study's table)."""
    import hashlib
    import json

    text = json.dumps(dict(spec), sort_keys=True, default=str) + study.table.to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()


def kfold(model: BayesModel, k: int = 10, seed: int = 0, workers: int | None = 1, scheduler: str | None = None,
          progress: bool = True) -> KFold:
    """Exact K-fold cross-validation of ``model`` (fitted or not) leaving out whole communities; see the module doc.
    ``k`` folds of communities (seeded by ``seed``); ``workers``: 1 runs the refits in this process, more on a local
    Dask cluster (None: cores // chains), ``scheduler`` the address of a running one."""
    from tqdm.auto import tqdm

    from lcbayes.power.runner import default_workers, finished

    communities = len(model.coords["community"])
    folds = community_folds(communities, k, seed)
    spec = {**model.spec.to_dict(), "priors": {name: p.to_dict() for name, p in model.priors.items()}}
    if workers is None:
        workers = default_workers(model.spec.sampler.chains)
    jobs = [(spec, model.study, folds, fold, seed) for fold in range(k)]
    parts = []
    with tqdm(total=k, disable=not progress, unit="fold", desc=f"{model.name}: {k}-fold CV") as bar:
        for _, rows in finished(jobs, workers, scheduler, fold_elpd):
            parts.append(rows)
            bar.update()
    pointwise = pd.concat(parts).sort_values(["fold", "community"]).reset_index(drop=True)
    return KFold(pointwise, k, seed)


def compare_loo(fits: Mapping[str, xr.DataTree]) -> pd.DataFrame:
    """PSIS-LOO comparison of fits of the same study (ArviZ's ``compare``), best first, unrounded: ``elpd`` (of each
    model), ``se``, ``p`` (effective number of parameters), ``elpd_diff`` (to the best: 0 for it, negative for the
    others), ``dse`` (SE of that difference), ``weight`` (stacking), and ArviZ's diagnostic notes."""
    import arviz as az

    return az.compare(dict(fits), round_to="none")


def compare(results: Mapping[str, KFold]) -> pd.DataFrame:
    """K-fold results of several models on the same study and folds, best first: ``elpd``, ``se``, ``elpd_diff``
    (to the best: 0 for it, negative for the others) and ``dse`` (SE of the difference, from the paired community
    differences), the columns and signs of :func:`compare_loo`."""
    names = list(results)
    if len(names) < 2:
        raise ConfigError("compare needs the K-fold results of at least two models.")
    first = results[names[0]]
    for name in names[1:]:
        other = results[name]
        same = (other.folds, other.seed) == (first.folds, first.seed) and \
            set(other.pointwise["community"]) == set(first.pointwise["community"])
        if not same:
            raise ConfigError(f"'{name}' was cross-validated on other folds or communities than '{names[0]}'; "
                              "run every model with the same study, folds and seed.")
    by = {name: r.pointwise.set_index("community")["elpd"] for name, r in results.items()}
    best = max(names, key=lambda n: results[n].elpd)
    rows = []
    for name in names:
        diff = by[name].reindex(by[best].index) - by[best]
        rows.append({"model": name, "elpd": results[name].elpd, "se": results[name].se,
                     "elpd_diff": float(diff.sum()), "dse": float(np.sqrt(len(diff)) * diff.std(ddof=1))})
    return pd.DataFrame(rows).set_index("model").sort_values("elpd", ascending=False)
