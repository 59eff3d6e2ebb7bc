"""The elementwise Kalman filter against the exact multivariate normal density of the same observations."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from scipy import stats

from lcbayes.kalman import Observation, Step, run

N, T = 5, 4      # state components, steps


def random_system(rng: np.random.Generator):
    """A sparse system with one persisting (static) component, memoryless ones and autoregressive ones."""
    A = [{0: {0: 1.0}, 3: {3: 0.5, 4: 0.2}, 4: {3: -0.3, 4: 0.4}} for _ in range(T)]
    G = [{1: {0: 1.0}, 2: {1: 1.0}, 3: {0: 0.3, 2: 1.0}, 4: {0: rng.normal(), 1: 0.2, 3: 1.0}} for _ in range(T)]
    q = [rng.uniform(0.2, 1.0, 4) for _ in range(T)]
    loadings = [{0: 1.0, 1: 1.0}, {2: 1.0}, {0: 0.5, 3: 1.0}, {4: 1.0}]
    return A, G, q, loadings


def dense(sparse: dict, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols))
    for i, row in sparse.items():
        for j, c in row.items():
            out[i, j] = c
    return out


def test_filter_log_density_is_the_exact_joint_density_with_missing_values():
    rng = np.random.default_rng(3)
    A, G, q, loadings = random_system(rng)
    a0 = rng.normal(size=N)
    L = rng.normal(size=(N, N)) * 0.3
    P0 = L @ L.T + np.diag([1.0, 0.0, 0.0, 0.5, 0.5])
    r = rng.uniform(0.1, 0.5, (T, len(loadings)))
    offset = rng.normal(size=(T, len(loadings)))
    y = rng.normal(size=(T, len(loadings)))
    mask = rng.random((T, len(loadings))) > 0.3
    # exact: every x_t as a linear map of z = (x0, nu_1..nu_T); y = offset + H x_t + e
    dim = N + 4 * T
    maps = np.zeros((N, dim))
    maps[:, :N] = np.eye(N)
    means, rows = [], []
    for t in range(T):
        Gt = np.zeros((N, dim))
        Gt[:, N + 4 * t: N + 4 * t + 4] = dense(G[t], N, 4)
        maps = dense(A[t], N, N) @ maps + Gt
        for v, h in enumerate(loadings):
            if mask[t, v]:
                hv = dense({0: h}, 1, N)[0]
                rows.append((hv @ maps, t, v))
    cov_z = np.zeros((dim, dim))
    cov_z[:N, :N] = P0
    cov_z[N:, N:] = np.diag(np.concatenate(q))
    mean_z = np.concatenate([a0, np.zeros(4 * T)])
    M = np.array([m for m, _, _ in rows])
    cov_y = M @ cov_z @ M.T + np.diag([r[t, v] for _, t, v in rows])
    mean_y = M @ mean_z + np.array([offset[t, v] for _, t, v in rows])
    exact = stats.multivariate_normal(mean_y, cov_y).logpdf(np.array([y[t, v] for _, t, v in rows]))

    P = {(i, j): P0[i, j] for i in range(N) for j in range(i, N) if P0[i, j] != 0}
    steps = [Step(A[t], G[t], list(q[t]), [Observation(h, y[t, v] if mask[t, v] else 0.0, offset[t, v], r[t, v],
                                                       float(mask[t, v])) for v, h in enumerate(loadings)])
             for t in range(T)]
    total, per_step, _, _, _ = run(list(a0), P, steps)
    np.testing.assert_allclose(total, exact, rtol=1e-10)
    np.testing.assert_allclose(sum(per_step), exact, rtol=1e-10)


def test_the_same_code_builds_a_pytensor_graph_with_the_same_value_over_a_batch():
    rng = np.random.default_rng(4)
    A, G, q, loadings = random_system(rng)
    batch = 3
    y = rng.normal(size=(T, len(loadings), batch))
    phi = pt.dscalar("phi")
    A_sym = [{**At, 3: {3: phi, 4: 0.2}} for At in A]
    P0 = {(i, i): np.ones(batch) for i in range(N)}

    def steps(a_matrix, ys):
        return [Step(a_matrix[t], G[t], list(q[t]), [Observation(h, ys[t, v], 0.0, 0.3, np.ones(batch))
                                                     for v, h in enumerate(loadings)]) for t in range(T)]

    total, *_ = run([np.zeros(batch)] * N, P0, steps(A_sym, y), log=pt.log)
    fn = pytensor.function([phi], [total, pytensor.grad(total.sum(), phi)])
    value, grad = fn(0.5)
    expected, *_ = run([np.zeros(batch)] * N, P0, steps(A, y))
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    eps = 1e-6
    numeric = (fn(0.5 + eps)[0].sum() - fn(0.5 - eps)[0].sum()) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5)
