"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import xarray as xr

from lcbayes.models.base import DRAW_PRECISION


@pytest.fixture
def same_draws() -> Callable[..., None]:
    """A check that two arrays of draws, (chain, draw, ...), agree as a fit and the same fit saved and loaded may:
    each element within ``shares`` x :data:`DRAW_PRECISION` of its posterior SD (a saved draw is off by at most half
    of DRAW_PRECISION; quantities computed from several saved draws, such as predictions, a few times that)."""
    def check(loaded: xr.DataArray | np.ndarray, fitted: xr.DataArray | np.ndarray, shares: float = 20.0) -> None:
        a, b = np.asarray(loaded, dtype=float), np.asarray(fitted, dtype=float)
        assert a.shape == b.shape, (a.shape, b.shape)
        sd = b.reshape(-1, *b.shape[2:]).std(axis=0)
        ratio = np.abs(a - b) / (DRAW_PRECISION * sd + 1e-12)
        assert ratio.max() <= shares, f"a draw is off by {ratio.max():.3g} x DRAW_PRECISION of its SD (> {shares})"
    return check
