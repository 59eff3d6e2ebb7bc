"""A Kalman filter for many small linear-Gaussian state-space models at once (one per participant), written with
elementwise operations only, so that the same code runs on NumPy arrays and in a PyTensor graph (and its gradient).

The state x_t has ``n`` named components; each is an array over participants, shape (P,) (or any common shape). A
step is

    x_t = A_t x_(t-1) + G_t nu_t,   nu_t ~ N(0, diag(q_t))          (transition; sparse A, G as nested dicts)
    y_vt = c_vt + h_v' x_t + e_vt,   e_vt ~ N(0, r_vt)              (observations, one scalar at a time)

Observations are taken one at a time (the univariate treatment of Durbin & Koopman 2012, section 6.4), so that no
matrix is inverted: with F = h' P h + r and k = P h / F, the update is a += k (y - c - h' a), P -= k k' F, and the
log density of y given the past is N(y - c - h' a; 0, F). A missing value has mask 0 and changes nothing.

Covariances are stored as their upper triangles, ``{(i, j): array}`` with i <= j over component positions; absent
entries of A, G and h are zero, which keeps the graph as small as the model's structure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Cov = dict[tuple[int, int], Any]
Sparse = Mapping[int, Mapping[int, Any]]      # row -> {column: coefficient}

LOG_2PI = float(np.log(2 * np.pi))


def cov_get(P: Cov, i: int, j: int) -> Any:
    return P.get((i, j) if i <= j else (j, i), 0.0)


@dataclass
class Observation:
    """One scalar observation of a step: y = offset + sum_i loading[i] x_i + e, e ~ N(0, variance); ``mask`` 1 where
    the value is observed, 0 where it is missing (then ``value`` may hold any finite placeholder)."""

    loading: Mapping[int, Any]
    value: Any
    offset: Any
    variance: Any
    mask: Any


def predict(a: list[Any], P: Cov, A: Sparse, G: Sparse, q: Sequence[Any]) -> tuple[list[Any], Cov]:
    """Mean and covariance of x_t = A x_(t-1) + G nu, nu ~ N(0, diag(q)), from those of x_(t-1); rows of A that are
    absent are zero (components without memory), so the identity must be written out for a component that persists."""
    n = len(a)
    mean = [sum((c * a[j] for j, c in A.get(i, {}).items()), 0.0) for i in range(n)]
    new: Cov = {}
    for i in range(n):
        for j in range(i, n):
            acc: Any = 0.0
            for k, cik in A.get(i, {}).items():
                for m, cjm in A.get(j, {}).items():
                    p = cov_get(P, k, m)
                    if not _is_zero(p):
                        acc = acc + cik * cjm * p
            for k, gik in G.get(i, {}).items():
                gjk = G.get(j, {}).get(k)
                if gjk is not None:
                    acc = acc + gik * gjk * q[k]
            if not _is_zero(acc):
                new[(i, j)] = acc
    return mean, new


def update(a: list[Any], P: Cov, obs: Observation, log: Callable[[Any], Any]) -> tuple[list[Any], Cov, Any]:
    """Condition on one scalar observation; returns the new mean, covariance and the log density of the observation
    given the past (0 where masked)."""
    n = len(a)
    Ph = [sum((h * cov_get(P, i, j) for j, h in obs.loading.items()), 0.0) for i in range(n)]
    F = sum((h * Ph[j] for j, h in obs.loading.items()), 0.0) + obs.variance
    e = obs.value - obs.offset - sum((h * a[j] for j, h in obs.loading.items()), 0.0)
    gain = obs.mask / F
    a = [a[i] + Ph[i] * gain * e if not _is_zero(Ph[i]) else a[i] for i in range(n)]
    new: Cov = {}
    for i in range(n):
        for j in range(i, n):
            p = cov_get(P, i, j)
            if not (_is_zero(Ph[i]) or _is_zero(Ph[j])):
                p = p - Ph[i] * Ph[j] * gain
            if not _is_zero(p):
                new[(i, j)] = p
    loglik = -0.5 * obs.mask * (LOG_2PI + log(F) + e * e / F)
    return a, new, loglik


@dataclass
class Step:
    """One session: the transition from the previous state and the observations made at it."""

    A: Sparse
    G: Sparse
    q: Sequence[Any]
    observations: Sequence[Observation]


def run(a: list[Any], P: Cov, steps: Sequence[Step], log: Callable[[Any], Any] = np.log
        ) -> tuple[Any, list[Any], list[list[Any]], list[Any], Cov]:
    """Filter through ``steps`` from the state (``a``, ``P``) before the first. Returns the total log density of all
    observations (per participant), the log density of each step, the one-step-ahead predicted mean of each step
    (before its observations), and the filtered mean and covariance after the last step."""
    total: Any = 0.0
    per_step, predicted = [], []
    for step in steps:
        a, P = predict(a, P, step.A, step.G, step.q)
        predicted.append(list(a))
        lp: Any = 0.0
        for obs in step.observations:
            a, P, ll = update(a, P, obs, log)
            lp = lp + ll
        per_step.append(lp)
        total = total + lp
    return total, per_step, predicted, a, P


def _is_zero(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == 0.0


def scan(a: list[Any], P: Cov, sequences: Sequence[Any], params: Mapping[str, Any],
         step: Callable[..., tuple[list[Any], Cov, list[Any]]], size: Any, outputs: int) -> list[Any]:
    """``step(a, P, *slices, params) -> (a, P, [output, ...])`` (``outputs`` of them) run over the leading axis of
    ``sequences`` (one slice per session) by ``pytensor.scan``, carrying the mean and every covariance entry as
    arrays of shape ``size`` (participants). ``params`` (by name) are what the step reads besides its slices; they
    enter the scan as its non-sequences (the step must not reach outside for a model's random variables). The graph
    holds one step, whatever the number of sessions (an unrolled filter makes PyTensor's rewrites quadratic in the
    number of steps). Returns each output stacked over the steps."""
    import pytensor
    import pytensor.tensor as pt

    n = len(a)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    zeros = pt.zeros(size)

    def carry(a: list[Any], P: Cov) -> list[Any]:
        return [x + zeros for x in a] + [P.get(p, 0.0) + zeros for p in pairs]

    names = list(params)

    def inner(*args: Any) -> list[Any]:
        k = len(sequences)
        slices, state, values = args[:k], args[k: k + n + len(pairs)], args[k + n + len(pairs):]
        new_a, new_P, out = step(list(state[:n]), dict(zip(pairs, state[n:], strict=True)), *slices,
                                 dict(zip(names, values, strict=True)))
        return carry(new_a, new_P) + list(out)

    results, _ = pytensor.scan(inner, sequences=list(sequences), outputs_info=carry(a, P) + [None] * outputs,
                               non_sequences=[pt.as_tensor_variable(params[k]) for k in names], return_list=True)
    return results[n + len(pairs):]
