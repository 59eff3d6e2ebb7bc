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
    """Names of the ``pm.Data`` variables a nutpie-compiled model reads (and takes in ``with_data``): ``shared_data`` of
    Numba models, only the private ``_shared_data`` of JAX-compiled ones (``PyFuncModel``, nutpie 0.16)."""
    for attribute in ("shared_data", "_shared_data"):
        data = getattr(compiled, attribute, None)
        if isinstance(data, dict):
            return set(data)
    raise _changed("nutpie", f"the data of a compiled model ({type(compiled).__name__}.shared_data or "
                             "._shared_data)", ">=0.16,<0.17")


def ecdf_confidence_band(n: int, eval_points: np.ndarray, cdf: np.ndarray,
                         prob: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Simultaneous ``prob`` band of the ECDF of ``n`` draws at ``eval_points`` (shape ``(k,)``, increasing) where the
    true CDF takes the values ``cdf`` (shape ``(k,)``), by ArviZ's optimisation method (Saeilynoja, Buerkner & Vehtari
    2022; from ``arviz.stats.ecdf_utils``, not re-exported by ``arviz``). Returns ``(lower, upper)``, each of shape
    ``(k,)``, in [0, 1]."""
    try:
        from arviz.stats.ecdf_utils import ecdf_confidence_band as band
    except ImportError:
        raise _changed("arviz", "arviz.stats.ecdf_utils.ecdf_confidence_band", ">=0.23.4,<0.24") from None
    lower, upper = band(n, eval_points, cdf, prob=prob, method="optimized")
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
