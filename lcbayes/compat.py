"""Adapters to dependencies: guarded access to the private APIs lcbayes relies on (one
wrapper each), and matplotlib's backend switched for figures written to files.

Each wrapper raises :class:`DependencyChangedError`, naming the library, its installed version and what is missing, when
the internal it needs is gone (instead of an ``AttributeError`` deep inside a fit). ``tests/test_compat.py`` exercises
every wrapper, so a dependency update that moves one of these internals fails there, loudly, and names the wrapper to
fix. Importing lcbayes never changes the matplotlib backend."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np

from lcbayes.errors import LcbayesError, MissingExtraError


class DependencyChangedError(LcbayesError, RuntimeError):
    """A dependency no longer offers an internal lcbayes relies on (see :mod:`lcbayes.compat`)."""


def _changed(package: str, what: str, pin: str) -> DependencyChangedError:
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = "not installed"
    return DependencyChangedError(f"{package} {version} no longer provides {what}, which lcbayes needs. Fix: install "
                                  f"{package}{pin} (the versions lcbayes is tested with), or update lcbayes/compat.py.")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:     # a parent package is missing
        return False


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, which ``feature`` needs and the extra ``lcbayes[extra]`` installs; a
    :class:`~lcbayes.errors.MissingExtraError` naming the install line when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{feature} needs {module.partition('.')[0]}, which is not installed. Fix: pip install "
                                f"'lcbayes[{extra}]'.") from None


def nutpie_data_names(compiled: Any) -> set[str]:
    """Names of the ``pm.Data`` variables a nutpie-compiled model reads (and takes in ``with_data``): the variables
    keyed in ``shared_var_keys`` of Numba models (nutpie 0.16.11 keys their values by random ids), the keys of the
    private ``_shared_data`` of JAX-compiled ones (``PyFuncModel``)."""
    keys = getattr(compiled, "shared_var_keys", None)
    if isinstance(keys, dict):
        return {variable.name for variable in keys}
    data = getattr(compiled, "_shared_data", None)
    if isinstance(data, dict):
        return set(data)
    raise _changed("nutpie", f"the data of a compiled model ({type(compiled).__name__}.shared_var_keys or "
                             "._shared_data)", ">=0.16.11,<0.17")


def ecdf_confidence_band(n: int, cdf: np.ndarray, prob: float = 0.95,
                         simulations: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous ``prob`` band of the ECDF of ``n`` uniform draws at the points where the uniform CDF takes the
    values ``cdf`` (shape ``(k,)``, increasing in (0, 1)): binomial pointwise bands at the level that ``simulations``
    simulated ECDFs need to stay inside everywhere with probability ``prob`` (Saeilynoja, Buerkner & Vehtari 2022;
    ArviZ's ``arviz_stats.ecdf_utils``, not re-exported by ``arviz``; a fixed seed, so the same inputs give the same
    band). Returns ``(lower, upper)``, each of shape ``(k,)``, in [0, 1]."""
    try:
        from arviz_stats.ecdf_utils import get_pointwise_confidence_band, simulate_confidence_bands
    except ImportError:
        raise _changed("arviz-stats", "arviz_stats.ecdf_utils.simulate_confidence_bands", ">=1.3,<2") from None
    cdf = np.asarray(cdf, dtype=float)
    pointwise = simulate_confidence_bands(n, 1, cdf, prob, simulations, np.random.default_rng(0))
    lower, upper = get_pointwise_confidence_band(pointwise, n, cdf)
    return np.asarray(lower), np.asarray(upper)


@contextmanager
def agg_backend() -> Iterator[None]:
    """Inside the block, pyplot draws with the non-interactive Agg backend (figures made to be saved to files: no
    windows, works without a display); afterwards the backend in use before is back. Matplotlib closes the open pyplot
    figures when it switches backends, so this switches only when the backend in use is not Agg already."""
    import matplotlib
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    if previous.lower() == "agg":
        yield
        return
    plt.switch_backend("agg")
    try:
        yield
    finally:
        plt.switch_backend(previous)
