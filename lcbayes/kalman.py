"""A Kalman filter for many small linear-Gaussian state-space models at once (one per participant): the batch is the
leading axis of every array, and the filter is a few batched matrix products per observation, so that the PyTensor
graph (and its gradient) stays small and its rewrites fast.

The state x_t has ``n`` components. A step is

    x_t = A_t x_(t-1) + G_t nu_t,   nu_t ~ N(0, diag(q))             (transition)
    y_vt = c_vt + h_v' x_t + e_vt,   e_vt ~ N(0, r_vt)               (observations, one scalar at a time)

Observations are taken one at a time (the univariate treatment of Durbin & Koopman 2012, section 6.4), so that no
matrix is inverted: with F = h' P h + r and k = P h / F, the update is a += k (y - c - h' a), P -= k k' F, and the
log density of y given the past is N(y - c - h' a; 0, F). A missing value has mask 0 and changes nothing.

Shapes: ``a`` (B, n); ``P`` (B, n, n); ``A`` (n, n) or (B, n, n); ``G`` (B, n, k); ``q`` (k,); ``h`` (n,) constant;
``y``, ``c``, ``r``, ``mask`` (B,). Model code describes A and G sparsely (``{row: {column: coefficient}}``, see
:func:`~lcbayes.processes.sharing_transition`) and turns them into arrays with :func:`dense`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytensor.tensor as pt

LOG_2PI = float(np.log(2 * np.pi))


def dense(sparse: Mapping[int, Mapping[int, Any]], rows: int, cols: int, batch: int | None = None) -> Any:
    """The (rows, cols) matrix of a sparse ``{row: {col: value}}`` (absent entries 0); with ``batch``, values may be
    (batch,) arrays and the result is (batch, rows, cols)."""
    zero = pt.zeros(()) if batch is None else pt.zeros(batch)

    def entry(i: int, j: int) -> Any:
        value = sparse.get(i, {}).get(j)
        return zero if value is None else value + zero

    matrix = pt.stack([pt.stack([entry(i, j) for j in range(cols)]) for i in range(rows)])
    return matrix if batch is None else matrix.transpose(2, 0, 1)


def predict(a: Any, P: Any, A: Any, G: Any, q: Any) -> tuple[Any, Any]:
    """Mean and covariance of x_t = A x_(t-1) + G nu, nu ~ N(0, diag(q)), from those of x_(t-1)."""
    At = A.swapaxes(-1, -2)
    return pt.matmul(a[:, None, :], At)[:, 0, :], pt.matmul(pt.matmul(A, P), At) + pt.matmul(G * q, G.swapaxes(-1, -2))


def update(a: Any, P: Any, h: np.ndarray, y: Any, offset: Any, variance: Any, mask: Any) -> tuple[Any, Any, Any]:
    """Condition on one scalar observation y = offset + h' x + e, e ~ N(0, variance), where ``mask`` is 1; returns the
    new mean and covariance and the log density of the observation given the past (0 where masked)."""
    Ph = pt.matmul(P, h)                                   # (B, n)
    F = pt.matmul(Ph, h) + variance                        # (B,)
    e = y - offset - pt.matmul(a, h)
    gain = mask / F
    a = a + Ph * (gain * e)[:, None]
    P = P - Ph[:, :, None] * Ph[:, None, :] * gain[:, None, None]
    return a, P, -0.5 * mask * (LOG_2PI + pt.log(F) + e * e / F)
