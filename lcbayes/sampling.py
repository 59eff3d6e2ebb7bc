"""Sampler back ends behind one argument, and a compile-once handle for repeated fits.

Back ends (``SamplerSettings.backend``):

- ``"nutpie"``: nutpie's Rust NUTS on a Numba-compiled log density. Slowest to compile
  (tens of seconds cold, a few warm from PyTensor's cache), fastest per draw, and its
  compiled model takes new data without recompiling: the power-analysis engine.
- ``"nutpie-jax"``: nutpie on a JAX-compiled log density; compiles in seconds, slower per draw. Its chains take
  turns on Python's interpreter lock (one core, however many chains), so each chain is sampled on its own with a seed
  of its own (:func:`chain_seeds`), and where sampling would take over a minute (timed from the compiled log density)
  the chains are shared among processes, one per core: same seed, same draws, in one process or several.
- ``"numpyro"``: NumPyro's NUTS through ``pymc.sample(nuts_sampler="numpyro")``.
- ``"pymc"``: PyMC's own NUTS, the reference implementation.

``benchmarks/RESULTS.md`` has the measurements behind the default."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pymc as pm

from lcbayes.compat import nutpie_data_names, nutpie_jax_gradient_seconds
from lcbayes.errors import ConfigError, reject_unknown

BACKENDS = ("nutpie", "nutpie-jax", "numpyro", "pymc")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample: back end (see :data:`BACKENDS`), chains, draws and tuning steps per
    chain, target acceptance rate, seed; ``progress`` shows a progress bar."""

    backend: str = "nutpie"
    chains: int = 4
    draws: int = 2000
    tune: int = 1000
    target_accept: float = 0.9
    seed: int = 1
    progress: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"sampler backend '{self.backend}' unknown. Valid: {', '.join(BACKENDS)}.")
        if min(self.chains, self.draws) < 1 or self.tune < 0:
            raise ConfigError("sampler chains and draws must be >= 1 and tune >= 0.")
        if not 0.5 <= self.target_accept < 1:
            raise ConfigError(f"target_accept must lie in [0.5, 1), got {self.target_accept}.")

    def updated(self, **changes: Any) -> SamplerSettings:
        """A copy with ``changes`` (setting name -> value); unknown names are a :class:`ConfigError`."""
        reject_unknown(changes, [f.name for f in fields(self)], "sampler setting")
        return replace(self, **changes)


class CompiledModel:
    """A PyMC model compiled once for a back end; :meth:`sample` may swap ``pm.Data`` values.
    With the nutpie back ends, new data of the same shapes reuse the compiled log density.
    The PyMC and NumPyro back ends set the data on the model and sample it (NumPyro traces
    the model again). ``var_names`` limits what is stored (free variables are always kept)."""

    def __init__(self, model: pm.Model, settings: SamplerSettings, var_names: Sequence[str] | None = None):
        self.model, self.settings = model, settings
        self.var_names = list(var_names) if var_names is not None else None
        self._nutpie = None
        if settings.backend.startswith("nutpie"):
            import nutpie

            jax = settings.backend == "nutpie-jax"
            self._nutpie = nutpie.compile_pymc_model(
                model, backend="jax" if jax else "numba", gradient_backend="jax" if jax else "pytensor",
                var_names=self.var_names, freeze_model=False)  # keep pm.Data swappable

    def data_of(self, other: pm.Model) -> dict[str, np.ndarray]:
        """The ``pm.Data`` values of ``other``, a model built the same way on new data, checked to fit this compiled
        model (same data names and shapes, same free variables, same observed constants). Prior parameters are constants
        of the compiled graph: a refit keeps the compiled model's priors, so build ``other`` with the same priors."""
        mine = {v.name: v.get_value().shape for v in self.model.data_vars}
        theirs = {v.name: v.get_value() for v in other.data_vars}
        same_rvs = [(v.name, tuple(v.shape.eval())) for v in self.model.free_RVs] == \
            [(v.name, tuple(v.shape.eval())) for v in other.free_RVs]
        same_observed = len(self.model.observed_RVs) == len(other.observed_RVs) and all(
            np.array_equal(_observed(self.model, a), _observed(other, b))  # constants of the compiled graph
            for a, b in zip(self.model.observed_RVs, other.observed_RVs, strict=True))
        same_data = set(mine) == set(theirs) and all(mine[k] == theirs[k].shape for k in mine)
        if not (same_data and same_rvs and same_observed):
            raise ValueError("the new model differs in structure (data shapes, missing-value pattern or "
                             "parameters) from the compiled one; compile it anew")
        return theirs

    def sample(self, data: Mapping[str, np.ndarray] | None = None, seed: int | None = None,
               cores: int | None = None) -> az.InferenceData:
        """Draw from the posterior (with ``data`` swapped in, if given); same seed, same draws.
        ``cores``: chains run at once (default: as many as the machine has, up to ``chains``)."""
        s = self.settings
        seed = s.seed if seed is None else seed
        cores = cores or max(1, min(s.chains, os.cpu_count() or 1))
        if self._nutpie is not None:
            import nutpie

            # data the compiled functions never read (pruned from the graph) is not theirs to take
            known = nutpie_data_names(self._nutpie)
            used = {k: v for k, v in (data or {}).items() if k in known}
            compiled = self._nutpie.with_data(**used) if used else self._nutpie
            if s.backend == "nutpie-jax":
                return self._sample_jax(compiled, used, seed, cores)
            return nutpie.sample(compiled, draws=s.draws, tune=s.tune, chains=s.chains, cores=cores, seed=seed,
                                 target_accept=s.target_accept, progress_bar=s.progress, save_warmup=False)
        with self.model:
            if data:
                pm.set_data(data)
            kwargs = {"nuts_sampler": "numpyro", "nuts_sampler_kwargs": {"chain_method": "parallel"}} \
                if s.backend == "numpyro" else {}
            return pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, cores=cores,
                             random_seed=seed, target_accept=s.target_accept, progressbar=s.progress,
                             var_names=self.var_names, compute_convergence_checks=False, **kwargs)


    def _sample_jax(self, compiled: Any, data: dict[str, np.ndarray], seed: int, cores: int) -> az.InferenceData:
        """nutpie-jax: chain c sampled alone with seed ``chain_seeds(seed, chains)[c]``; where sampling is long, the
        chains are split among ``cores`` processes (this one and spawned workers that compile the model anew)."""
        s = self.settings
        seeds = chain_seeds(seed, s.chains)
        processes = min(cores, s.chains) if cores > 1 and self._expected_sampling_s(compiled) > LONG_SAMPLING_S else 1
        groups = [list(g) for g in np.array_split(np.arange(s.chains), processes)]
        if processes == 1:
            return _join_chains(_sample_chains(compiled, [seeds[c] for c in groups[0]], s))
        import cloudpickle

        with tempfile.TemporaryDirectory(prefix="lcbayes-chains-") as folder:
            workers = []
            try:
                for k, group in enumerate(groups[1:]):
                    job, out = Path(folder) / f"job{k}.pkl", Path(folder) / f"chains{k}.pkl"
                    job.write_bytes(cloudpickle.dumps({"model": self.model, "var_names": self.var_names, "data": data,
                                                       "seeds": [seeds[c] for c in group], "settings": s}))
                    workers.append((subprocess.Popen([sys.executable, "-m", "lcbayes.sampling", str(job), str(out)],
                                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out))
                mine = _sample_chains(compiled, [seeds[c] for c in groups[0]], s)
                theirs = []
                for worker, out in workers:
                    _, err = worker.communicate()
                    if worker.returncode != 0:
                        raise RuntimeError(f"a process sampling nutpie-jax chains failed (exit {worker.returncode}): "
                                           f"{err.decode(errors='replace')[-2000:]}")
                    theirs += pickle.loads(out.read_bytes())
            finally:
                for worker, _ in workers:
                    if worker.poll() is None:
                        worker.kill()
        return _join_chains(mine + theirs)

    def _expected_sampling_s(self, compiled: Any) -> float:
        """Seconds all chains would take on one core: chains x (tune + draws) x 15 gradient evaluations per draw (a
        typical tree) x the time of one evaluation (the median of 20 at the origin of the unconstrained space)."""
        s = self.settings
        return s.chains * (s.tune + s.draws) * 15 * nutpie_jax_gradient_seconds(compiled)


LONG_SAMPLING_S = 60.0   # nutpie-jax chains are shared among processes when they would sample longer than this


def chain_seeds(seed: int, chains: int) -> list[int]:
    """The seed of each chain, from the fit's ``seed`` (independent streams of one ``SeedSequence``)."""
    return [int(x) for x in np.random.SeedSequence(seed).generate_state(chains)]


def _sample_chains(compiled: Any, seeds: list[int], s: SamplerSettings) -> list[az.InferenceData]:
    import nutpie

    return [nutpie.sample(compiled, draws=s.draws, tune=s.tune, chains=1, cores=1, seed=seed,
                          target_accept=s.target_accept, progress_bar=s.progress, save_warmup=False) for seed in seeds]


def _sample_chains_in_worker(job: Path, out: Path) -> None:
    """In a process of its own (``python -m lcbayes.sampling JOB OUT``): the pickled PyMC model of ``job`` compiled for
    nutpie-jax, its data swapped in, one fit per seed, the fits pickled to ``out``."""
    import nutpie

    task = pickle.loads(job.read_bytes())
    model = task["model"]
    # compiling in the parent gave variables dims nutpie names but PyMC holds no lengths of: dropped to compile anew
    for name in [n for n, dims in model.named_vars_to_dims.items() if not set(dims) <= set(model.dim_lengths)]:
        del model.named_vars_to_dims[name]
    compiled = nutpie.compile_pymc_model(model, backend="jax", gradient_backend="jax",
                                         var_names=task["var_names"], freeze_model=False)
    if task["data"]:
        compiled = compiled.with_data(**task["data"])
    out.write_bytes(pickle.dumps(_sample_chains(compiled, task["seeds"], task["settings"])))


def _join_chains(fits: list[az.InferenceData]) -> az.InferenceData:
    """One-chain fits as the chains 0, 1, ... of one InferenceData."""
    if len(fits) == 1:
        return fits[0]
    joined = az.concat([fit.assign_coords(chain=[c]) for c, fit in enumerate(fits)], dim="chain")
    return joined


def _observed(model: pm.Model, rv) -> np.ndarray:
    value = model.rvs_to_values[rv]
    return np.asarray(value.data if hasattr(value, "data") else value.eval())


def sample(model: pm.Model, settings: SamplerSettings, var_names: Sequence[str] | None = None) -> az.InferenceData:
    """Compile ``model`` for ``settings.backend`` and draw from its posterior once."""
    return CompiledModel(model, settings, var_names).sample()


if __name__ == "__main__":
    _sample_chains_in_worker(Path(sys.argv[1]), Path(sys.argv[2]))
