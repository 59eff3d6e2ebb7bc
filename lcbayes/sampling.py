"""Sampler back ends behind one argument, and a compile-once handle for repeated fits.

Back ends (``SamplerSettings.backend``):

- ``"nutpie"``: nutpie's Rust NUTS on a Numba-compiled log density. Slowest to compile
  (tens of seconds cold, a few warm from PyTensor's cache), fastest per draw, and its
  compiled model takes new data without recompiling: the power-analysis engine.
- ``"nutpie-jax"``: nutpie on a JAX-compiled log density; compiles in about a second, slower per draw.
- ``"numpyro"``: NumPyro's NUTS through ``pymc.sample(nuts_sampler="numpyro")``.
- ``"pymc"``: PyMC's own NUTS, the reference implementation.

``benchmarks/RESULTS.md`` has the measurements behind the default."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from numbers import Integral, Real
from typing import Any

import numpy as np
import pymc as pm
import xarray as xr

from lcbayes.compat import installed, nutpie_data_names, require
from lcbayes.errors import ConfigError, SamplingInterrupted, reject_unknown, surfaced_interrupts

BACKENDS = ("nutpie", "nutpie-jax", "numpyro", "pymc")
JAX_BACKENDS = {"nutpie-jax": "jax", "numpyro": "numpyro"}   # back end -> what it imports (extra lcbayes[jax])


def fastest_compiling_backend() -> str:
    """``"nutpie-jax"`` where JAX is installed (``lcbayes[jax]``: compiles large graphs in seconds), else
    ``"nutpie"`` (Numba, in the core install: minutes for a large ``scan``)."""
    return "nutpie-jax" if installed("jax") else "nutpie"


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
        whole = (Integral, "a whole number")
        kinds = {"backend": (str, "text"), "chains": whole, "draws": whole, "tune": whole, "seed": whole,
                 "target_accept": (Real, "a number"), "progress": (bool, "true or false")}
        for name, (kind, text) in kinds.items():
            value = getattr(self, name)
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                default = getattr(SamplerSettings, name)
                raise ConfigError(f"sampler setting {name} must be {text}, got {value!r}. Fix: e.g. {name} = "
                                  f"{str(default).lower() if isinstance(default, bool) else repr(default)}.")
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
        if settings.backend in JAX_BACKENDS:
            require(JAX_BACKENDS[settings.backend], "jax", f"the {settings.backend} back end")
        if settings.backend.startswith("nutpie"):
            import nutpie

            jax = settings.backend == "nutpie-jax"
            with surfaced_interrupts("compiling the model"):
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
               cores: int | None = None) -> xr.DataTree:
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
            return complete(nutpie.sample(compiled, draws=s.draws, tune=s.tune, chains=s.chains, cores=cores,
                                          seed=seed, target_accept=s.target_accept, progress_bar=s.progress,
                                          save_warmup=False), s)
        with self.model:
            if data:
                pm.set_data(data)
            kwargs = {"nuts_sampler": "numpyro", "nuts": {"chain_method": "parallel"}} \
                if s.backend == "numpyro" else {}
            return complete(pm.sample(draws=s.draws, tune=s.tune, chains=s.chains, cores=cores,
                                      random_seed=seed, target_accept=s.target_accept, progressbar=s.progress,
                                      var_names=self.var_names, compute_convergence_checks=False, **kwargs), s)


def complete(idata: xr.DataTree, settings: SamplerSettings) -> xr.DataTree:
    """``idata`` if every chain holds every requested draw; else (an interrupted run: nutpie and PyMC return the draws
    so far, shorter chains padded with NaN) raise :class:`~lcbayes.errors.SamplingInterrupted`."""
    post = idata["posterior"].to_dataset()
    first = next(iter(post.data_vars.values())).values
    done = np.isfinite(first.reshape(first.shape[:2] + (-1,))).all(-1) if first.size else np.ones(first.shape[:2])
    wanted = settings.chains * settings.draws
    if post.sizes["chain"] != settings.chains or post.sizes["draw"] != settings.draws or not done.all():
        raise SamplingInterrupted(f"sampling stopped after {int(done.sum())} of {wanted} draws; the partial draws "
                                  "were discarded and nothing was saved from them. Rerun to sample in full.")
    return idata


def _observed(model: pm.Model, rv) -> np.ndarray:
    value = model.rvs_to_values[rv]
    return np.asarray(value.data if hasattr(value, "data") else value.eval())


def sample(model: pm.Model, settings: SamplerSettings, var_names: Sequence[str] | None = None) -> xr.DataTree:
    """Compile ``model`` for ``settings.backend`` and draw from its posterior once."""
    return CompiledModel(model, settings, var_names).sample()
