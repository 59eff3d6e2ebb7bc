"""Participant random effects integrated out of a Gaussian likelihood, in closed form.

For participant p with cells t (mask m_t), residuals e_t = y_t - mu_t, residual SDs sigma_t,
time s_t and random intercept and slope r_p = (r0, r1) ~ N(0, Sigma_r),

    y_p ~ N(mu_p, V_p),   V_p = Z_p Sigma_r Z_p' + diag(sigma_t^2),   Z_p = [1, s_t].

With W = diag(m_t / sigma_t^2), G = Z'WZ, b = Z'We, c = e'We and M = I + Sigma_r G (2 x 2),
the matrix determinant lemma and the Woodbury identity give

    log|V_p| = sum_t m_t log sigma_t^2 + log det M
    e'V_p^-1 e = c - b' M^-1 Sigma_r b

so the marginal log likelihood needs only per-participant sums and a 2 x 2 solve, and stays finite when Sigma_r is
singular (e.g. a zero slope SD); a random intercept alone has its own scalar form (M = 1 + tau0^2 sum_t w_t), which
keeps zero constants out of model graphs (PyTensor's algebraic rewrites stall on them). Sampling the ~2P participant
effects is replaced by this exact integral, which removes the hierarchical funnel at the participant level; their
posterior draws are recovered exactly afterwards from r_p | rest ~ N(M^-1 Sigma_r b, M^-1 Sigma_r).

The same algebra serves PyTensor graphs (inside models) and NumPy arrays (post-processing).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOG_2PI = float(np.log(2 * np.pi))


def _moments(e: Any, w: Any, s: Any, tau0: Any, tau1: Any, rho: Any):
    """Per-participant (last axis summed) pieces: M, Sigma_r b and c."""
    a00, a01, a11 = w.sum(-1), (w * s).sum(-1), (w * s * s).sum(-1)
    b0, b1, c = (w * e).sum(-1), (w * s * e).sum(-1), (w * e * e).sum(-1)
    s00, s11, s01 = tau0**2, tau1**2, rho * tau0 * tau1
    m = ((1 + s00 * a00 + s01 * a01, s00 * a01 + s01 * a11), (s01 * a00 + s11 * a01, 1 + s01 * a01 + s11 * a11))
    sb = (s00 * b0 + s01 * b1, s01 * b0 + s11 * b1)
    return m, (b0, b1), sb, c, (s00, s01, s11)


def _solve(m, v):
    """M^-1 v for the 2 x 2 matrices M (elementwise over participants); also det M."""
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    return ((m[1][1] * v[0] - m[0][1] * v[1]) / det, (m[0][0] * v[1] - m[1][0] * v[0]) / det), det


def marginal_loglik(e: Any, mask: Any, log_sigma: Any, s: Any, tau0: Any, tau1: Any, rho: Any, xp: Any = np) -> Any:
    """Log likelihood per participant, shape (..., P), random intercept and slope integrated out.

    ``e`` residuals y - mu and ``mask`` (1 = observed) are (..., P, T); ``log_sigma`` is the log residual SD per cell
    (broadcastable to e); ``s`` the time per cell; ``tau0``, ``tau1``, ``rho`` the SDs and correlation of (r0, r1),
    broadcastable to (..., P); ``tau1 = None`` means a random intercept only (then M = 1 + tau0^2 sum w, a scalar).
    ``xp`` is ``numpy`` or ``pytensor.tensor`` (for ``exp`` and ``log``).
    """
    w = mask * xp.exp(-2 * log_sigma)
    e = e * mask
    if tau1 is None:
        s00 = tau0**2
        a00, b0, c = w.sum(-1), (w * e).sum(-1), (w * e * e).sum(-1)
        det = 1 + s00 * a00
        quad = c - s00 * b0**2 / det
    else:
        m, b, sb, c, _ = _moments(e, w, s, tau0, tau1, rho)
        x, det = _solve(m, sb)
        quad = c - (b[0] * x[0] + b[1] * x[1])
    logdet = (mask * 2 * log_sigma).sum(-1) + xp.log(det)
    return -0.5 * (mask.sum(-1) * LOG_2PI + logdet + quad)


def intercept_posterior(e: Any, mask: Any, log_sigma: Any, s: Any, tau0: Any, tau1: Any, rho: Any,
                        xp: Any = np) -> tuple[Any, Any]:
    """Mean and variance of each participant's random intercept r0 given the data and the other parameters, (..., P)
    each: the first element of M^-1 Sigma_r b and of M^-1 Sigma_r (inputs as in :func:`marginal_loglik`)."""
    w = mask * xp.exp(-2 * log_sigma)
    e = e * mask
    if tau1 is None:
        s00 = tau0**2
        a00, b0 = w.sum(-1), (w * e).sum(-1)
        return s00 * b0 / (1 + s00 * a00), s00 / (1 + s00 * a00)
    m, _, sb, _, (s00, s01, _) = _moments(e, w, s, tau0, tau1, rho)
    (mean, _), _ = _solve(m, sb)
    (c00, _), _ = _solve(m, (s00, s01))
    return mean, c00


def draw_effects(e: np.ndarray, mask: np.ndarray, log_sigma: np.ndarray, s: np.ndarray, tau0: np.ndarray,
                 tau1: np.ndarray, rho: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exact draws of (r0, r1) per participant from their conditional posterior.

    Inputs as in :func:`marginal_loglik` (NumPy, leading sample axes allowed; ``tau0``,
    ``tau1``, ``rho`` shaped (..., 1) to broadcast over participants). Returns (..., P, 2).
    A participant without observed cells gets a draw from N(0, Sigma_r).
    """
    w = mask * np.exp(-2 * log_sigma)
    m, _, sb, _, (s00, s01, s11) = _moments(e * mask, w, s, tau0, tau1, rho)
    mean, _ = _solve(m, sb)
    # covariance C = M^-1 Sigma_r, symmetric positive semi-definite
    (c00, c01), _ = _solve(m, (s00, s01))
    (_, c11), _ = _solve(m, (s01, s11))
    l00 = np.sqrt(np.maximum(c00, 0))
    l10 = np.where(l00 > 0, c01 / np.where(l00 > 0, l00, 1), 0)
    l11 = np.sqrt(np.maximum(c11 - l10**2, 0))
    z0, z1 = rng.standard_normal(mean[0].shape), rng.standard_normal(mean[0].shape)
    return np.stack([mean[0] + l00 * z0, mean[1] + l10 * z0 + l11 * z1], axis=-1)
