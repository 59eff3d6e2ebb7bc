"""Participant-level likelihood of ordinal scores with the participant effects, and for item responses the latent
scores, integrated out: what LOO leaves out is a participant with all their sessions, as for the Gaussian models, whose
participant effects :mod:`lcbayes.models.marginal` integrates in closed form. For participant i with effects
r = (r0, r1) ~ N(0, Sigma_r) and cell means m_t = mu_t + r0 + r1 s_t::

    p(y_i | theta) = integral of prod_t f_t(m_t) N(r; 0, Sigma_r) dr
    one rated item:   f_t(m) = P(y_t | m), the response's SD sigma
    items, scored:    f_t(m) = integral of P(answered items sum to the observed sum | eta) N(eta; m, sigma) d eta

The outer integral uses adaptive Gauss-Hermite quadrature (lme4's nAGQ; Pinheiro & Bates 1995): the nodes are centred
and scaled at each participant's posterior of r under a Gaussian approximation of the scores (score ~ N(m, sigma^2 +
mean psi^2 / n_answered)), widened by :data:`WIDEN`. For items, P(sum | eta) is tabulated once per draw on a fine eta
grid (by convolving the answered items' category probabilities), the inner integral over eta is a Gaussian kernel
smoothing of that table, and f_t is interpolated from it. Model comparison of latent-variable models needs this
marginal likelihood, not one conditional on the latent values (Merkle, Furr & Rabe-Hesketh 2019).

Items are scored by their sum, so the likelihood is of the same observations as the scale-mean model's: that model's
density times the score's resolution 1 / n_answered is the probability of the observed score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import logsumexp

from lcbayes.models.marginal import _moments, _solve
from lcbayes.models.ordinal import Responses, category_probabilities, interval_probability, padded, threshold_sets

NODES = 7          # nodes per participant-effect dimension (49 with random slopes)
WIDEN = 1.2        # the outer nodes' scale relative to the Gaussian approximation's posterior SD
GRID_STEP = 0.02   # eta grid spacing for P(sum | eta), in half ranges
CHUNK = 32         # draws per block (memory: about CHUNK x P x 49 x T doubles, and CHUNK x G x G)
TINY = 1e-300


def _gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) for expectations under N(0, 1)."""
    x, w = hermegauss(n)
    return x, w / w.sum()


def integrated_loglik(responses: Responses, mu: np.ndarray, log_sigma: np.ndarray, s: np.ndarray, tau0: np.ndarray,
                      tau1: np.ndarray | None, rho: np.ndarray, kappa: np.ndarray, psi: np.ndarray | None = None,
                      nodes: int = NODES) -> np.ndarray:
    """log p(y_i | theta) per draw and participant, (D, P).

    ``mu`` (D, P, T) cell means without participant effects; ``log_sigma`` (D,) the latent scores' log SD (one item:
    the response's); ``s`` (P, T) time; ``tau0``, ``tau1`` (None: intercepts only), ``rho`` (D,) the participant
    effects' SDs and correlation; ``kappa`` (D, S, K, C - 1) thresholds; ``psi`` (D, K) item SDs (None: one rated item,
    no latent score per cell)."""
    keys = None if psi is None else _SumKeys.of(responses, kappa.shape[1] > 1)
    out = np.empty(mu.shape[:2])
    for start in range(0, len(mu), CHUNK):
        part = slice(start, start + CHUNK)
        out[part] = _block(responses, keys, mu[part], np.exp(log_sigma[part]), s, tau0[part],
                           None if tau1 is None else tau1[part], rho[part], kappa[part],
                           None if psi is None else psi[part], nodes)
    return out


def _block(resp: Responses, keys, mu, sigma, s, tau0, tau1, rho, kappa, psi, nodes) -> np.ndarray:
    mask = resp.cells
    a, chol = _proposal(resp, mu, sigma, s, tau0, tau1, rho, psi)
    z, w = _gauss_hermite(nodes)
    if tau1 is None:
        zq, wq = z[:, None], w
    else:
        zq = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
        wq = np.outer(w, w).ravel()
    # nodes r = a + L z per draw, participant and node: (d, P, Q) each
    r0 = a[0][..., None] + chol[0][..., None] * zq[:, 0]
    log_q = -0.5 * (zq**2).sum(-1) - np.log(chol[0])[..., None]
    log_prior = -0.5 * (r0 / tau0[:, None, None]) ** 2 - np.log(tau0)[:, None, None]
    m = mu[:, :, None, :] + r0[..., None]
    if tau1 is not None:
        r1 = a[1][..., None] + chol[1][..., None] * zq[:, 0] + chol[2][..., None] * zq[:, 1]
        log_q = log_q - np.log(chol[2])[..., None]
        t0, t1, c = tau0[:, None, None], tau1[:, None, None], rho[:, None, None]
        one_minus = np.maximum(1 - c**2, 1e-12)
        quad = ((r0 / t0) ** 2 - 2 * c * (r0 / t0) * (r1 / t1) + (r1 / t1) ** 2) / one_minus
        log_prior = -0.5 * quad - np.log(t0 * t1 * np.sqrt(one_minus))
        m = m + r1[..., None] * s[None, :, None, :]
    cells = _rated_item(resp, m, sigma, kappa) if psi is None else keys.probability(m, sigma, kappa, psi)
    log_f = (mask[None, :, None, :] * np.log(np.maximum(cells, TINY))).sum(-1)
    return logsumexp(np.log(wq) + log_prior - log_q + log_f, axis=-1)


def _proposal(resp: Responses, mu, sigma, s, tau0, tau1, rho, psi):
    """Centre and Cholesky factor of each participant's Gaussian-approximation posterior of r, widened: ((a0[, a1]),
    (l00[, l10, l11])), each (d, P)."""
    mask = resp.cells
    n = np.maximum(resp.answered.sum(-1), 1)
    var = sigma[:, None, None] ** 2 + (0.0 if psi is None else (psi**2).mean(-1)[:, None, None] / n)
    e, w = (resp.score - mu) * mask, mask / var
    if tau1 is None:
        s00 = tau0[:, None] ** 2
        denom = 1 + s00 * w.sum(-1)
        return (s00 * (w * e).sum(-1) / denom,), (WIDEN * np.sqrt(s00 / denom),)
    t0, t1, c = tau0[:, None], tau1[:, None], rho[:, None]
    m, _, sb, _, (s00, s01, s11) = _moments(e, w, s, t0, t1, c)
    mean, _ = _solve(m, sb)
    (c00, c01), _ = _solve(m, (s00, s01))
    (_, c11), _ = _solve(m, (s01, s11))
    l00 = np.sqrt(np.maximum(c00, 1e-12))
    l10 = c01 / l00
    l11 = np.sqrt(np.maximum(c11 - l10**2, 1e-12))
    return mean, (WIDEN * l00, WIDEN * l10, WIDEN * l11)


def _rated_item(resp: Responses, m, sigma, kappa) -> np.ndarray:
    """One rated item: P(y_t | m) with SD sigma at the node means ``m`` (d, P, Q, T)."""
    sess = threshold_sets(resp.cells.shape[1], kappa.shape[1] > 1)
    kap = padded(kappa[:, :, 0], np)                       # (d, S, C + 1)
    lower = kap[:, sess[None, :], resp.total][:, :, None, :]   # (d, P, 1, T): resp.total is the one item's category
    upper = kap[:, sess[None, :], resp.total + 1][:, :, None, :]
    sd = sigma[:, None, None, None]
    return interval_probability(np.clip((lower - m) / sd, -40, 40), np.clip((upper - m) / sd, -40, 40))


@dataclass(frozen=True)
class _SumKeys:
    """The distinct (threshold set, answered items, observed sum) of the observed cells: ``sets``, ``patterns``
    (n, K) and ``totals`` per key, ``key`` (P, T) per cell (0 where unobserved)."""

    resp: Responses
    sets: np.ndarray
    patterns: np.ndarray
    totals: np.ndarray
    key: np.ndarray

    @classmethod
    def of(cls, resp: Responses, per_session: bool) -> _SumKeys:
        P, T = resp.cells.shape
        obs = resp.cells > 0
        sess = np.broadcast_to(threshold_sets(T, per_session), (P, T))
        rows = np.column_stack([sess[obs], resp.total[obs], resp.answered[obs].astype(np.int64)])
        unique, which = np.unique(rows, axis=0, return_inverse=True)
        key = np.zeros((P, T), dtype=np.int64)
        key[obs] = which.ravel()
        return cls(resp, unique[:, 0], unique[:, 2:].astype(bool), unique[:, 1], key)

    def probability(self, m: np.ndarray, sigma: np.ndarray, kappa: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """f_t(m) at the node means ``m`` (d, P, Q, T): P(sum | eta) on an eta grid, smoothed by N(0, sigma) (a
        row-normalised Gaussian kernel, so that no mass leaves the grid), interpolated at m."""
        resp = self.resp
        step = GRID_STEP * (resp.categories - 1) / 2
        width = resp.categories - 1             # the grid spans the range and half its width beyond either end
        grid = resp.low - width / 2 + step * np.arange(int(round(2 * width / step)) + 1)
        table = self._table(kappa, psi, grid)                                      # (d, keys, G)
        kernel = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / sigma[:, None, None]) ** 2)   # (d, G, G)
        kernel /= kernel.sum(-1, keepdims=True)
        smooth = table @ np.swapaxes(kernel, 1, 2)
        pos = np.clip((m - grid[0]) / step, 0, len(grid) - 1.000001)
        lo = pos.astype(np.int64)
        flat = (self.key[None, :, None, :] * len(grid) + lo).reshape(len(m), -1)
        smooth = smooth.reshape(len(m), -1)
        left = np.take_along_axis(smooth, flat, axis=-1).reshape(m.shape)
        right = np.take_along_axis(smooth, flat + 1, axis=-1).reshape(m.shape)
        return left + (pos - lo) * (right - left)

    def _table(self, kappa: np.ndarray, psi: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """P(answered items sum to the key's total | eta = grid), (d, keys, G), by convolving the items' category
        probabilities."""
        C = self.resp.categories
        probs = category_probabilities(kappa[:, :, :, None, :], grid[None, None, None, :], psi[:, None, :, None])
        out = np.empty((len(kappa), len(self.totals), len(grid)))
        for (set_, pattern), index in _groups(self.sets, self.patterns).items():
            dist = np.ones((len(kappa), len(grid), 1))
            for k in np.flatnonzero(pattern):
                new = np.zeros(dist.shape[:-1] + (dist.shape[-1] + C - 1,))
                for c in range(C):
                    new[..., c:c + dist.shape[-1]] += dist * probs[:, set_, k, :, c:c + 1]
                dist = new
            out[:, index] = np.moveaxis(dist[:, :, self.totals[index]], 1, -1)
        return out


def _groups(sets: np.ndarray, patterns: np.ndarray) -> dict[tuple[int, tuple[bool, ...]], np.ndarray]:
    """Key indices by (threshold set, answered pattern)."""
    out: dict[tuple[int, tuple[bool, ...]], list[int]] = {}
    for i, (set_, pattern) in enumerate(zip(sets, patterns, strict=True)):
        out.setdefault((int(set_), tuple(bool(x) for x in pattern)), []).append(i)
    return {k: np.array(v) for k, v in out.items()}
