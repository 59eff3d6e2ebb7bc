"""Run a plan's replicates: compile once per cell, refit per replicate, store as they finish.

Each replicate's seeds derive from the plan's root seed and the replicate's position
(cell key, replicate number) through ``numpy.random.SeedSequence``, so results do not
depend on the order of execution or the number of workers. A worker compiles a cell's model
once, from the data of the cell's replicate 0 (whose data-scaled priors then hold for the
whole cell), and refits it to every replicate of that cell it is given by swapping data. A
replicate whose data differ in structure (e.g. another number of organizations) gets a
model compiled for it, with the same priors, and is flagged ``recompiled``.

Execution: local and parallel by default (as many worker processes as the cores allow with
each fit's chains in parallel); ``workers = 1`` runs in this process, more start a local
Dask cluster (one process per worker); ``scheduler = "tcp://host:8786"`` uses an existing Dask cluster
(for SLURM, see the README's power section). Finished replicates are written by this process as
they arrive, so killing the run loses only the replicates in flight.

Tasks receive the parsed :class:`Plan` (pickled to Dask workers) and a :class:`FitterCache` of
compiled cells: :func:`run` makes one for a serial run; a Dask worker keeps its own on the
worker object, so no compiled model lives in a module global.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from lcbayes.data.simulate import simulate_study
from lcbayes.data.study import Study
from lcbayes.diagnostics import diagnose
from lcbayes.errors import ConfigError
from lcbayes.models import BayesModel, create
from lcbayes.power.plan import Cell, Plan
from lcbayes.power.rules import central_interval
from lcbayes.power.store import ResultStore
from lcbayes.sampling import CompiledModel

KEEP = 2   # compiled cells a FitterCache holds (a worker is given the replicates of a cell or two at once)


def replicate_seeds(root: int, cell_key: str, replicate: int) -> tuple[int, int]:
    """(data seed, sampler seed) of one replicate, from the root seed and its position."""
    state = np.random.SeedSequence(entropy=root, spawn_key=(int(cell_key, 16), replicate)).generate_state(2)
    return int(state[0]), int(state[1])


def simulate_replicate(plan: Plan, cell: Cell, replicate: int) -> Study:
    """The simulated study of one replicate (its data seed from :func:`replicate_seeds`)."""
    data_seed, _ = replicate_seeds(plan.seed, cell.key, replicate)
    sim = simulate_study(plan.design_of(cell), **plan.truth_of(cell), seed=data_seed)
    return Study.from_frame(sim.table, sim.roles)


class CellFitter:
    """The compiled model of one cell, and how to build a replicate's model with its priors."""

    def __init__(self, plan: Plan, cell: Cell, cores: int | None = None):
        self.plan, self.cell, self.cores = plan, cell, cores
        self.design = plan.design_of(cell)
        self.truths = plan.truth_of(cell)
        base = create(plan.spec, self.simulate(0))
        self.priors = {k: p.to_dict() for k, p in base.priors.items()}
        self.settings = base.spec.sampler
        self.compiled = CompiledModel(base.model, self.settings, base.stored_vars())

    def simulate(self, replicate: int) -> Study:
        return simulate_replicate(self.plan, self.cell, replicate)

    def model(self, study: Study) -> BayesModel:
        """The plan's model on ``study``, with the priors of the cell's compiled model."""
        return create({**self.plan.spec, "priors": self.priors}, study)

    def fit(self, study: Study, seed: int) -> tuple[BayesModel, az.InferenceData, bool]:
        """(model, raw InferenceData, recompiled) for one study."""
        model = self.model(study)
        try:
            data = self.compiled.data_of(model.model)
        except ValueError:
            compiled = CompiledModel(model.model, self.settings, model.stored_vars())
            return model, compiled.sample(seed=seed, cores=self.cores), True
        return model, self.compiled.sample(data, seed=seed, cores=self.cores), False


class FitterCache:
    """Compiled cells of one process, the ``size`` most recently used kept (compiling costs
    seconds to a minute, so a worker reuses a cell's model for all its replicates)."""

    def __init__(self, size: int = KEEP):
        self.size = size
        self._fitters: OrderedDict[tuple[str, str], CellFitter] = OrderedDict()   # most recent last

    def __len__(self) -> int:
        return len(self._fitters)

    def fitter(self, plan: Plan, cell: Cell, cores: int | None = None) -> CellFitter:
        """The compiled fitter of ``cell`` (built on first use)."""
        key = (plan.hash(), cell.key)
        if key not in self._fitters:
            self._fitters[key] = CellFitter(plan, cell, cores)
            while len(self._fitters) > self.size:
                self._fitters.popitem(last=False)
        self._fitters.move_to_end(key)
        return self._fitters[key]


def worker_cache(cache: FitterCache | None = None) -> FitterCache:
    """``cache`` if given; else the cache of the Dask worker running this task (kept on the
    worker object, made on first use); outside a worker, a new one."""
    if cache is not None:
        return cache
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):   # not in a Dask worker
        return FitterCache()
    cache = getattr(worker, "lcbayes_fitters", None)
    if not isinstance(cache, FitterCache):
        cache = FitterCache()
        worker.lcbayes_fitters = cache  # type: ignore[attr-defined]  # our own attribute on dask's Worker, by design
    return cache


def target_draws(post, target):
    """Posterior draws of a target (its element selected by label), a (chain, draw) DataArray."""
    draws = post[target.variable]
    if target.label is not None:
        dim = next(d for d in draws.dims if d not in ("chain", "draw"))
        labels = [str(c) for c in draws.coords[dim].values]
        if target.label not in labels:
            raise ConfigError(f"target {target.parameter!r}: {target.variable} has no {dim} {target.label!r}; "
                              f"its labels are {', '.join(labels)}.")
        draws = draws.isel({dim: labels.index(target.label)})
    return draws


def power_replicate(plan: Plan, cell: Cell, replicate: int, cores: int | None = None,
                    cache: FitterCache | None = None) -> pd.DataFrame:
    """Simulate, fit and judge one replicate; one row per target (runs in a worker).
    ``cores``: chains sampled at once; ``cache``: compiled cells (default: the worker's)."""
    fit = worker_cache(cache).fitter(plan, cell, cores)
    _, sampler_seed = replicate_seeds(plan.seed, cell.key, replicate)
    t0 = time.perf_counter()
    study = fit.simulate(replicate)
    model, idata, recompiled = fit.fit(study, sampler_seed)
    seconds = time.perf_counter() - t0
    post = idata.posterior
    if any(t.variable not in post for t in plan.targets):
        post = post.merge(model.derived(idata))
    verdict = diagnose(idata, [v for v in model.population if v in post], min_ess=plan.min_ess)
    rows = []
    for target in plan.targets:
        draws = target_draws(post, target)
        flat = draws.values.ravel()
        truth = target.true_value(fit.truths, fit.design)
        lo, hi = central_interval(flat, plan.interval)
        single = draws.to_dataset(name="x")
        row: dict[str, Any] = {
            "cell": cell.key, **cell.design, "scenario": cell.scenario, "replicate": replicate,
            "seed": sampler_seed, "target": target.parameter, "truth": truth, "mean": flat.mean(),
            "sd": flat.std(ddof=1), "lower": lo, "upper": hi, "covered": lo <= truth <= hi, "width": hi - lo,
            "r_hat": float(az.rhat(single)["x"]), "ess_bulk": float(az.ess(single, method="bulk")["x"]),
            "ess_tail": float(az.ess(single, method="tail")["x"]), "divergences": verdict.divergences,
            "diagnostics_passed": verdict.passed, "recompiled": recompiled, "fit_seconds": seconds,
        }
        for rule in target.rules:
            row[f"rule_{rule.name}"] = rule.decide(flat)
        rows.append(row)
    return pd.DataFrame(rows)


def run(plan: Plan, out: str, workers: int | None = None, scheduler: str | None = None, progress: bool = True,
        task: Callable[..., pd.DataFrame] = power_replicate, kind: str = "power") -> ResultStore:
    """Run every unfinished replicate of ``plan`` into the results folder ``out``.

    ``workers``: local processes; None = as many as the cores allow with each fit running its
    chains in parallel (cores // chains, at least 1). Returns the store; ``store.load()``
    gives all finished replicates (this run's and earlier)."""
    if workers is None:
        chains = int(plan.spec.get("sampler", {}).get("chains", 4))
        workers = max(1, (os.cpu_count() or 1) // chains)
    store = ResultStore(out, plan.to_json(), plan.hash(), kind)
    todo = [(cell, r) for cell in plan.cells() for r in range(plan.replicates) if not store.done(cell.key, r)]
    if not todo:
        return store
    bar = _progress(len(todo), progress, f"{kind}: {len(plan.cells())} cells x {plan.replicates} replicates")
    if workers <= 1 and scheduler is None:
        cache = FitterCache()
        for cell, r in todo:
            store.write(cell.key, r, task(plan, cell, r, None, cache))
            bar.update()
    else:
        _run_dask(plan, todo, store, workers, scheduler, bar, task)
    bar.close()
    return store


def _run_dask(plan: Plan, todo: list, store: ResultStore, workers: int, scheduler: str | None, bar,
              task: Callable[..., pd.DataFrame]) -> None:
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler is None:
        cores = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    else:
        cores, cluster, client = None, None, Client(scheduler)
    try:
        futures = {client.submit(task, plan, cell, r, cores, pure=False): (cell, r) for cell, r in todo}
        for future in as_completed(futures):
            cell, r = futures[future]
            store.write(cell.key, r, future.result())
            bar.update()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _progress(total: int, show: bool, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not show, desc=description, unit="fit", smoothing=0.1)
