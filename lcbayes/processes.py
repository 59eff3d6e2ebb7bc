"""The generative equations, each written once (see ``docs/models.md``).

Every function here is plain arithmetic on its arguments, so the same code builds the PyMC graph (PyTensor tensors),
simulates studies (NumPy arrays) and computes derived quantities from posterior draws (xarray DataArrays, aligned by
dimension name). The study simulator (:mod:`lcbayes.data.simulate`), the models' graphs and their prior and posterior
predictive simulations all call these functions, so changing an equation is a change here.

An argument that is ``None`` is a path switched off: its term is left out (no zero
constants in model graphs, where they would cost evaluations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lcbayes.errors import ConfigError

TRENDS = ("linear", "quadratic", "piecewise")


def _sum(*terms: Any) -> Any:
    """Sum of the terms that are not None, left to right."""
    present = [t for t in terms if t is not None]
    return sum(present[1:], present[0])


def _times(coef: Any, x: Any) -> Any:
    return None if coef is None else coef * x


def time_basis(s: np.ndarray, session: np.ndarray, trend: str, breakpoint: int = 0) -> tuple[list[str], np.ndarray]:
    """Columns B_k(s) of the fixed time trend, shape (K, ...) like ``s``.

    linear: s; quadratic: s, s^2; piecewise (discontinuous growth, Bliese & Lang 2016): s,
    transition = 1[session > breakpoint], recovery = (s - s_b) * transition, where s_b is the time of the first session
    after the breakpoint (a level shift and a change of slope). ``session``: each cell's session label, shaped like s.
    """
    if trend == "linear":
        return ["time"], s[None]
    if trend == "quadratic":
        return ["time", "time_sq"], np.stack([s, s**2])
    if trend == "piecewise":
        if not breakpoint or breakpoint >= session.max() or breakpoint < session.min():
            raise ConfigError(f"piecewise trend needs breakpoint = the last session before the transition, between "
                              f"{int(session.min())} and {int(session.max()) - 1}; got {breakpoint!r}.")
        after = (session > breakpoint).astype(float)
        s_b = np.min(np.where(after > 0, s, np.inf))
        return ["time", "transition", "recovery"], np.stack([s, after, (s - s_b) * after])
    raise ConfigError(f"trend must be one of {', '.join(TRENDS)}, got {trend!r}.")


def climate_strength(beta0: Any, trend: list[tuple[Any, Any]], u0: Any, u1: Any, s: Any) -> Any:
    """Latent community mean (climate *strength*) at time s: beta0 + sum_k beta_k B_k(s) + u0j + u1j s.

    ``trend`` lists (beta_k, B_k(s)) pairs; ``u1 = None`` means no community slopes."""
    return _sum(beta0, *[beta * basis for beta, basis in trend], u0, _times(u1, s))


def climate_log_sd(alpha0: Any, s: Any, alpha1: Any = None, composition: Any = None,
                   composition_time: Any = None, trait: Any = None, v0: Any = None, v1: Any = None,
                   trait_time: Any = None) -> Any:
    """Log latent residual SD of the climate (the scale part of model B):
    log sigma = alpha0 + alpha1 s + alpha2 z_j + alpha3 z_j s + alpha4 w_i + alpha5 w_i s + v0j + v1j s.

    ``composition`` = alpha2 . z_j and ``composition_time`` = alpha3 . z_j (the dot products
    over composition predictors), ``trait`` = alpha4 . w_i, ``trait_time`` = alpha5 . w_i (traits that speed up or
    slow down emergence); model A is alpha0 alone."""
    return _sum(alpha0, _times(alpha1, s), composition, _times(composition_time, s), trait, _times(trait_time, s),
                v0, _times(v1, s))


def within_community_variance(participant: Any, organization: Any, residual: Any, predictors: Any = None) -> Any:
    """V_jt, the latent within-community variance of climate perceptions (the consensus estimand):

        V_jt = tau_r0^2 + 2 rho tau_r0 tau_r1 s + tau_r1^2 s^2      (participant part, ``participant``)
             + tau_o^2 (1 - sum_o p_jo^2)                            (organization part, p_jo the members' shares)
             + mean over members of sigma_tij^2                       (latent residual part, ``residual``)
             [+ variance over members of Gamma x_tij]                 (predictor part, ``predictors``)

    Each part is given already computed (they need different data); ``organization`` may be None (no organizations).
    sqrt(V_jt) is ``consensus_sd``; sqrt(residual) is ``transient_sd``."""
    return _sum(participant, organization, residual, predictors)


def consensus_indices(V: Any, theta: Any, null_variance: float, n_items: int) -> dict[str, Any]:
    """Agreement indices implied by the latent within-community variance ``V`` (squared scale points), for a scale of
    ``n_items`` items with unique item variance ``theta`` and random-response null variance ``null_variance`` of one
    item (sigma_E^2):

    - ``rstar``: 1 - (V + theta) / sigma_E^2, the r*_wg(J) of Lindell, Brandt & Whitney (1999): one minus the expected
      within-community variance of an item over the null's; does not grow with J;
    - ``rwg_j``: J (1 - q) / (J (1 - q) + q), q = (V + theta) / sigma_E^2 (0 where q >= 1), the r_wg(J) of James,
      Demaree & Wolf (1984), inflated by J (Spearman-Brown);
    - ``scale``: 1 - V_y / (sigma_E^2 / J), the scale-level index on the variance of the scale score,
      V_y = V + theta / J (``theta`` None: V is that of the score, measurement error included): conservative, it
      counts true-score disagreement J-fold.
    Values of pure random responding are near 0 for ``rstar`` and ``scale``."""
    if theta is None:
        return {"scale": 1 - V / (null_variance / n_items)}
    q = (V + theta) / null_variance
    agree = 1 - q
    return {"rstar": agree, "rwg_j": (n_items * agree / (n_items * agree + q)) * (q < 1),
            "scale": 1 - (V + theta / n_items) / (null_variance / n_items)}


def learning_mean(eta: tuple[Any, Any, Any, Any], strength: Any, consensus: Any) -> Any:
    """Expected learning outcome of a member of a community with climate ``strength`` and ``consensus`` (on the scale
    the caller chooses; model B uses the log of ``consensus_sd``): eta0 + eta1 S + eta2 C + eta3 S C."""
    eta0, eta1, eta2, eta3 = eta
    return eta0 + eta1 * strength + eta2 * consensus + eta3 * strength * consensus


def normal_logpdf(x: Any, sigma: Any, log: Callable[[Any], Any] = np.log) -> Any:
    """log N(x; 0, sigma), elementwise (``log``: ``np.log`` or ``pytensor.tensor.log``)."""
    return -0.5 * (x / sigma) ** 2 - log(sigma) - 0.5 * float(np.log(2 * np.pi))


def support_slope(gamma0: Any, f: Any = None, gamma1_e: Any = None, u_beta: Any = None) -> Any:
    """Person- and session-specific support effect betaS_i(t) = gamma0 + f(t) + gamma1 (muE_i - mE)
    + ubeta_i, with ``gamma1_e`` = gamma1 (muE_i - mE) already multiplied out."""
    return _sum(gamma0, f, gamma1_e, u_beta)


def sharing_step(Sw: Any, Ew: Any, k_lag: Any, m_lag: Any, beta_s: Any, beta_e: Any, theta: Any, phi: Any = None,
                 beta_se: Any = None, beta_m: Any = None, phi_m: Any = None, delta: Any = None) -> tuple[Any, Any]:
    """Expected within-person sharing and motivation at a session from its predictors and lags:

        Kw_hat = phi Kw_(t-1) + betaS Sw + betaE Ew + betaSE Sw Ew + betaM Mw_(t-1)
        Mw_hat = phiM Mw_(t-1) + delta Kw_(t-1) + theta Sw

    Kw = Kw_hat + eps, Mw = Mw_hat + zeta. ``k_lag``/``m_lag`` are the previous session's
    Kw and Mw (0 before the first)."""
    interaction = None if beta_se is None else beta_se * Sw * Ew
    k_hat = _sum(_times(phi, k_lag), beta_s * Sw, beta_e * Ew, interaction, _times(beta_m, m_lag))
    m_hat = _sum(_times(phi_m, m_lag), _times(delta, k_lag), theta * Sw)
    return k_hat, m_hat


def sharing_paths(Sw: np.ndarray, Ew: np.ndarray, eps: np.ndarray, zeta: np.ndarray, beta_s: np.ndarray,
                  **coefficients: Any) -> tuple[np.ndarray, np.ndarray]:
    """Within-person sharing Kw and motivation Mw, (n, T), by running :func:`sharing_step`
    forward from zero lags at the first session, with innovations ``eps`` and ``zeta``
    (n, T) and the support effect ``beta_s`` (n, T). ``coefficients`` as in :func:`sharing_step`."""
    n, T = Sw.shape
    Kw, Mw = np.zeros((n, T)), np.zeros((n, T))
    for t in range(T):
        k_lag, m_lag = (Kw[:, t - 1], Mw[:, t - 1]) if t else (0.0, 0.0)
        k_hat, m_hat = sharing_step(Sw[:, t], Ew[:, t], k_lag, m_lag, beta_s[:, t], **coefficients)
        Mw[:, t] = m_hat + zeta[:, t]
        Kw[:, t] = k_hat + eps[:, t]
    return Kw, Mw


def spectral_radius(phi: np.ndarray, beta_m: np.ndarray, delta: np.ndarray, phi_m: np.ndarray) -> np.ndarray:
    """Largest |eigenvalue| of the lag matrix of (Kw, Mw), [[phi, betaM], [delta, phiM]],
    elementwise over draws; the K-M system is stable (shocks die out) when it is below 1."""
    trace, det = phi + phi_m, phi * phi_m - beta_m * delta
    root = np.sqrt((trace**2 - 4 * det).astype(complex))
    return np.maximum(np.abs((trace + root) / 2), np.abs((trace - root) / 2))
