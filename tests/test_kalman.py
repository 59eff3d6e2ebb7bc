"""The batched Kalman filter against the exact multivariate normal density of the same observations."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from scipy import stats

from lcbayes.kalman import dense, predict, update

N, K, T = 5, 4, 4      # state components, innovations, steps


def system(rng: np.random.Generator):
    """A sparse system with one persisting (static) component, memoryless ones and autoregressive ones."""
    A = {0: {0: 1.0}, 3: {3: 0.5, 4: 0.2}, 4: {3: -0.3, 4: 0.4}}
    G = [{1: {0: 1.0}, 2: {1: 1.0}, 3: {0: 0.3, 2: 1.0}, 4: {0: rng.normal(), 1: 0.2, 3: 1.0}} for _ in range(T)]
    q = rng.uniform(0.2, 1.0, K)
    loadings = [{0: 1.0, 1: 1.0}, {2: 1.0}, {0: 0.5, 3: 1.0}, {4: 1.0}]
    return A, G, q, [dense({0: h}, 1, N).eval()[0] for h in loadings]


def exact_logpdf(A, G, q, H, a0, P0, y, offset, r, mask) -> float:
    """Every x_t as a linear map of z = (x0, nu_1..nu_T): the joint normal of the observed y, by brute force."""
    dim = N + K * T
    maps = np.zeros((N, dim))
    maps[:, :N] = np.eye(N)
    rows = []
    for t in range(T):
        Gt = np.zeros((N, dim))
        Gt[:, N + K * t: N + K * (t + 1)] = dense(G[t], N, K).eval()
        maps = dense(A, N, N).eval() @ maps + Gt
        rows += [(h @ maps, t, v) for v, h in enumerate(H) if mask[t, v]]
    cov_z = np.zeros((dim, dim))
    cov_z[:N, :N] = P0
    cov_z[N:, N:] = np.diag(np.tile(q, T))
    M = np.array([m for m, _, _ in rows])
    cov = M @ cov_z @ M.T + np.diag([r[t, v] for _, t, v in rows])
    mean = M @ np.concatenate([a0, np.zeros(K * T)]) + np.array([offset[t, v] for _, t, v in rows])
    return stats.multivariate_normal(mean, cov).logpdf(np.array([y[t, v] for _, t, v in rows]))


def test_filter_log_density_is_the_exact_joint_density_with_missing_values_over_a_batch():
    rng = np.random.default_rng(3)
    A, G, q, H = system(rng)
    B = 3
    a0 = rng.normal(size=(B, N))
    L = rng.normal(size=(B, N, N)) * 0.3
    P0 = L @ L.transpose(0, 2, 1) + np.diag([1.0, 0.0, 0.0, 0.5, 0.5])
    r = rng.uniform(0.1, 0.5, (B, T, len(H)))
    offset = rng.normal(size=(B, T, len(H)))
    y = rng.normal(size=(B, T, len(H)))
    mask = (rng.random((B, T, len(H))) > 0.3).astype(float)
    phi = pt.dscalar("phi")                   # one coefficient symbolic: the gradient is checked too
    a, P, total = pt.as_tensor(a0), pt.as_tensor(P0), 0.0
    for t in range(T):
        a, P = predict(a, P, dense({**A, 3: {3: phi, 4: 0.2}}, N, N), dense(G[t], N, K, B), q)
        for v, h in enumerate(H):
            a, P, ll = update(a, P, h, y[:, t, v] * mask[:, t, v], offset[:, t, v], r[:, t, v], mask[:, t, v])
            total = total + ll
    fn = pytensor.function([phi], [total, pytensor.grad(total.sum(), phi)])
    value, grad = fn(0.5)
    exact = [exact_logpdf(A, G, q, H, a0[b], P0[b], y[b], offset[b], r[b], mask[b]) for b in range(B)]
    np.testing.assert_allclose(value, exact, rtol=1e-10)
    eps = 1e-6
    numeric = (fn(0.5 + eps)[0].sum() - fn(0.5 - eps)[0].sum()) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5)
