"""Run a plan's replicates: compile once per cell, refit per replicate, store as they finish.

A worker compiles a cell's model once, from the data of the cell's replicate 0 (whose data-scaled priors then hold for
the whole cell), and refits it to every replicate of that cell it is given by swapping data; a replicate whose data
differ in structure (e.g. another number of organizations) gets a model compiled for it, with the same priors, and is
flagged ``recompiled``. This process writes finished replicates as they arrive, so killing the run loses only the
replicates in flight."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from lcbayes.compat import installed, require
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
    """(data seed, sampler seed) of one replicate, from the root seed and its position (cell
    key, replicate number) through ``numpy.random.SeedSequence``, so results do not depend on
    the order of execution or the number of workers."""
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
        self.design, self.truths = plan.design_of(cell), plan.truth_of(cell)
        base = create(plan.spec, self.simulate(0))
        self.priors = {k: p.to_dict() for k, p in base.priors.items()}
        self.settings = base.spec.sampler
        self.compiled = CompiledModel(base.model, self.settings, base.stored_vars())

    def simulate(self, replicate: int) -> Study:
        return simulate_replicate(self.plan, self.cell, replicate)

    def model(self, study: Study) -> BayesModel:
        """The plan's model on ``study``, with the priors of the cell's compiled model."""
        return create({**self.plan.spec, "priors": self.priors}, study)

    def fit(self, study: Study, seed: int) -> tuple[BayesModel, xr.DataTree, bool]:
        """(model, raw InferenceData, recompiled) for one study."""
        model = self.model(study)
        try:
            data = self.compiled.data_of(model.model)
        except ValueError:
            compiled = CompiledModel(model.model, self.settings, model.stored_vars())
            return model, compiled.sample(seed=seed, cores=self.cores), True
        return model, self.compiled.sample(data, seed=seed, cores=self.cores), False


class FitterCache:
    """Compiled models of one process, the ``size`` most recently used kept (compiling costs
    seconds to a minute, so a worker reuses a cell's model for all its replicates, and a
    cross-validation's model for all its folds)."""

    def __init__(self, size: int = KEEP):
        self.size = size
        self._fitters: OrderedDict[tuple[str, ...], Any] = OrderedDict()   # most recent last

    def __len__(self) -> int:
        return len(self._fitters)

    def get(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        """The object cached under ``key``, made by ``make()`` on first use."""
        if key not in self._fitters:
            self._fitters[key] = make()
            while len(self._fitters) > self.size:
                self._fitters.popitem(last=False)
        self._fitters.move_to_end(key)
        return self._fitters[key]

    def fitter(self, plan: Plan, cell: Cell, cores: int | None = None) -> CellFitter:
        """The compiled fitter of ``cell`` (built on first use)."""
        return self.get((plan.hash(), cell.key), lambda: CellFitter(plan, cell, cores))


def worker_cache(cache: FitterCache | None = None) -> FitterCache:
    """``cache`` if given; else the cache of the Dask worker running this task (kept on the
    worker object, not in a module global; made on first use); outside a worker, a new one."""
    if cache is not None:
        return cache
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):   # not in a Dask worker
        return FitterCache()
    cache = getattr(worker, "lcbayes_fitters", None)
    if not isinstance(cache, FitterCache):
        cache = worker.lcbayes_fitters = FitterCache()  # type: ignore[attr-defined]  # our attribute on dask's Worker
    return cache


def target_draws(post, target):
    """Posterior draws of a target (its element selected by label), a (chain, draw) DataArray."""
    if target.variable not in post:
        raise ConfigError(f"target {target.parameter!r}: the model has no parameter or derived quantity "
                          f"{target.variable!r}. Known: {', '.join(sorted(post.data_vars))}. Fix: name one of these "
                          "in the plan's [[targets]] parameter.")
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
    model, idata, recompiled = fit.fit(fit.simulate(replicate), sampler_seed)
    seconds = time.perf_counter() - t0
    post = model.posterior_with(idata, [t.variable for t in plan.targets])
    verdict = diagnose(idata, [v for v in model.population if v in post], min_ess=plan.min_ess)
    rows = []
    for target in plan.targets:
        draws = target_draws(post, target)
        flat, single = draws.values.ravel(), draws.to_dataset(name="x")
        truth = target.true_value(fit.truths, fit.design)
        lo, hi = central_interval(flat, plan.interval)
        rows.append({
            "cell": cell.key, **cell.design, "scenario": cell.scenario, "replicate": replicate,
            "seed": sampler_seed, "target": target.parameter, "truth": truth, "mean": flat.mean(),
            "sd": flat.std(ddof=1), "lower": lo, "upper": hi, "covered": lo <= truth <= hi, "width": hi - lo,
            "r_hat": float(az.rhat(single)["x"]), "ess_bulk": float(az.ess(single, method="bulk")["x"]),
            "ess_tail": float(az.ess(single, method="tail")["x"]), "divergences": verdict.divergences,
            "diagnostics_passed": verdict.passed, "recompiled": recompiled, "fit_seconds": seconds,
            **{f"rule_{rule.name}": rule.decide(flat) for rule in target.rules}})
    return pd.DataFrame(rows)


def run(plan: Plan, out: str, workers: int | None = None, scheduler: str | None = None, progress: bool = True,
        task: Callable[..., pd.DataFrame] = power_replicate, kind: str = "power") -> ResultStore:
    """Run every unfinished replicate of ``plan`` into the results folder ``out``, ``task`` (given the parsed plan,
    pickled to Dask workers) computing one replicate's rows; ``kind`` (``"power"`` or ``"sbc"``) marks the folder,
    ``progress`` shows a progress bar. ``workers``: local processes (None: cores // chains, at least 1, so each fit runs
    its chains in parallel; 1: this process; more: a local Dask cluster, one process per worker); ``scheduler``: the
    address of an existing Dask cluster (``"tcp://host:8786"``; SLURM: see the README). Returns the store;
    ``store.load()`` gives all finished replicates (this run's and earlier)."""
    if workers is None:
        workers = default_workers(plan.spec.get("sampler", {}).get("chains", 4))
    if kind == "power":
        check_targets(plan)
    store = ResultStore(out, plan.to_json(), plan.hash(), kind)
    todo = [(cell, r) for cell in plan.cells() for r in range(plan.replicates) if not store.done(cell.key, r)]
    if not todo:
        return store
    from tqdm.auto import tqdm

    with tqdm(total=len(todo), disable=not progress, unit="fit", smoothing=0.1,
              desc=f"{kind}: {len(plan.cells())} cells x {plan.replicates} replicates") as bar:
        for (_, cell, r), rows in finished([(plan, cell, r) for cell, r in todo], workers, scheduler, task):
            store.write(cell.key, r, rows)
            bar.update()
    return store


def check_targets(plan: Plan) -> None:
    """Refuse, before anything is compiled, fitted or written, a target that names neither a parameter of the plan's
    model nor a quantity its :meth:`~lcbayes.models.base.BayesModel.quantities` adds (looked up on two prior draws in
    place of a posterior), or an element label that the parameter lacks. Raises :class:`ConfigError` listing the
    known names."""
    model = create(plan.spec, simulate_replicate(plan, plan.cells()[0], 0))
    graph = model.model
    names = [v.name for v in graph.free_RVs + graph.deterministics]
    known = {name: graph.named_vars_to_dims.get(name) or () for name in names}
    coords = {dim: [str(c) for c in values] for dim, values in graph.coords.items() if values is not None}
    if any(t.variable not in known for t in plan.targets):
        prior = model.sample_prior_predictive(draws=2, seed=0)["prior"].to_dataset()
        derived = model.quantities(xr.DataTree.from_dict({"posterior": prior}))
        known |= {name: tuple(d for d in derived[name].dims if d not in ("chain", "draw"))
                  for name in derived.data_vars}
        coords |= {dim: [str(c) for c in derived[dim].values] for dim in derived.dims if dim in derived.coords}
    for target in plan.targets:
        if target.variable not in known:
            raise ConfigError(f"target {target.parameter!r}: the {model.name} model has no parameter or derived "
                              f"quantity {target.variable!r}. Known: {', '.join(sorted(known))}. Fix: name one of "
                              "these in the plan's [[targets]] parameter.")
        dims = known[target.variable]
        if target.label is None:
            continue
        labels = coords.get(dims[0], []) if dims else []
        if target.label not in labels:
            raise ConfigError(f"target {target.parameter!r}: {target.variable} has no "
                              + (f"{dims[0]} {target.label!r}; its labels are {', '.join(labels)}" if dims
                                 else "elements (it is a scalar)")
                              + f". Fix: write {target.variable}" + ("[<label>] with one of its labels." if dims
                                                                       else " without a label."))


def default_workers(chains: int) -> int:
    """Local worker processes that let each fit run its chains in parallel: cores // chains, at least 1; 1 (this
    process) without Dask (the extra ``lcbayes[dask]``)."""
    return max(1, (os.cpu_count() or 1) // int(chains)) if installed("dask.distributed") else 1


def finished(jobs: list[tuple], workers: int, scheduler: str | None,
             task: Callable[..., Any]) -> Iterator[tuple[tuple, Any]]:
    """(job, result) of ``task(*job, cores, cache)`` for every job (a tuple of arguments), in the order they finish:
    in this process (``workers`` <= 1, no scheduler; one :class:`FitterCache` for all jobs), on a local Dask cluster
    of ``workers`` processes (``cores`` = this machine's cores // workers) or on the Dask cluster at ``scheduler``
    (each worker keeps its own cache: :func:`worker_cache`)."""
    if workers <= 1 and scheduler is None:
        cache = FitterCache()
        yield from ((job, task(*job, None, cache)) for job in jobs)
        return
    distributed = require("dask.distributed", "dask", "running replicates on several workers (--workers > 1 or "
                          "--scheduler)")
    Client, LocalCluster, as_completed = distributed.Client, distributed.LocalCluster, distributed.as_completed

    cluster = None if scheduler is not None else LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    cores = None if cluster is None else max(1, (os.cpu_count() or 1) // workers)   # chains at once per local worker
    client = Client(scheduler if cluster is None else cluster)
    try:
        futures = {client.submit(task, *job, cores, pure=False): job for job in jobs}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
