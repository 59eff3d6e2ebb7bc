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
from dataclasses import dataclass, replace
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


WITHIN = ("Sw", "Ew", "Mw", "Kw")              # model C's within-person states, in this order
INNOVATIONS = ("nu_S", "nu_E", "zeta", "eps")   # their innovations, in this order


@dataclass(frozen=True)
class SharingDynamics:
    """Model C's within-person dynamics of (Sw, Ew, Mw, Kw)::

        Sw_t = nuS_t,   Ew_t = nuE_t                                                 (white noise)
        Mw_t = phiM Mw_(t-1) + delta Kw_(t-1) + theta Sw_t + zeta_t
        Kw_t = phi Kw_(t-1) + betaM Mw_(t-1) + b_t Sw_t + betaE Ew_t + betaSE Sw_t Ew_t + eps_t

    with innovation variances ``q`` = (var nuS, var nuE, var zeta, var eps) and b_t the session's support effect
    (:func:`support_slope`). Coefficients are scalars (0 for a path switched off). Only (Mw, Kw) carry over from one
    session to the next; A = [[phiM, delta], [betaM, phi]] is their lag matrix."""

    phi: Any
    beta_m: Any
    delta: Any
    phi_m: Any
    theta: Any
    beta_e: Any
    beta_se: Any
    q: tuple[Any, Any, Any, Any]
    q_mk: Any = 0.0   # covariance of zeta and eps (0 for one unit of time; :meth:`over` a longer gap makes it non-zero)

    def step(self, lags: tuple[Any, Any], nu: Any, b: Any) -> tuple[Any, Any]:
        """(Mw_t, Kw_t) from the lagged (Mw, Kw) and the session's innovations ``nu`` (nuS, nuE, zeta, eps)."""
        m, k = self.predict_mean(*lags)
        return (m + self.theta * nu[0] + nu[2],
                k + b * nu[0] + self.beta_e * nu[1] + self.beta_se * nu[0] * nu[1] + nu[3])

    def predict_mean(self, m: Any, k: Any) -> tuple[Any, Any]:
        """A (m, k)."""
        return self.phi_m * m + self.delta * k, self.beta_m * m + self.phi * k

    def predict_cov(self, pmm: Any, pmk: Any, pkk: Any) -> tuple[Any, Any, Any]:
        """A P A' for P = [[pmm, pmk], [pmk, pkk]], as (MM, MK, KK)."""
        a11, a12, a21, a22 = self.phi_m, self.delta, self.beta_m, self.phi
        t11, t12 = a11 * pmm + a12 * pmk, a11 * pmk + a12 * pkk
        t21, t22 = a21 * pmm + a22 * pmk, a21 * pmk + a22 * pkk
        return t11 * a11 + t12 * a12, t11 * a21 + t12 * a22, t21 * a21 + t22 * a22

    def input_moments(self, b: Any, s: Any, vs: Any, e: Any, ve: Any) -> tuple[Any, Any, Any, Any, Any]:
        """Mean (uM, uK) and covariance (MM, MK, KK) of the session's input u = (theta Sw, b Sw + betaE Ew + betaSE
        Sw Ew) for independent Sw ~ N(s, vs) and Ew ~ N(e, ve) (exact; u is not normal when betaSE != 0)."""
        bs, be = b + self.beta_se * e, self.beta_e + self.beta_se * s      # the slopes on Sw and Ew at the means
        return (self.theta * s, b * s + self.beta_e * e + self.beta_se * s * e,
                self.theta**2 * vs, self.theta * bs * vs, bs**2 * vs + be**2 * ve + self.beta_se**2 * vs * ve)

    def stationary(self, b: Any, doublings: int = 6) -> tuple[Any, Any, Any]:
        """Covariance (var Mw, cov, var Kw) of the stationary distribution with support effect ``b``:
        Sigma = A Sigma A' + Q, summed as sum_k A^k Q A'^k over 2^doublings terms by doubling (finite, and large, where
        the system is not stable)."""
        _, _, s11, s12, s22 = self.input_moments(b, 0.0, self.q[0], 0.0, self.q[1])
        s11, s12, s22 = s11 + self.q[2], s12 + self.q_mk, s22 + self.q[3]
        power = self
        for _ in range(doublings):   # Sigma += A^k Sigma A^k';  A^k = A^k A^k
            t11, t12, t22 = power.predict_cov(s11, s12, s22)
            s11, s12, s22 = s11 + t11, s12 + t12, s22 + t22
            b11, b12, b21, b22 = power.phi_m, power.delta, power.beta_m, power.phi
            power = replace(power, phi_m=b11 * b11 + b12 * b21, delta=b11 * b12 + b12 * b22,
                            beta_m=b21 * b11 + b22 * b21, phi=b21 * b12 + b22 * b22)
        return s11, s12, s22

    def over(self, gap: Any, xp: Any = np) -> SharingDynamics:
        """The dynamics from one session to the next ``gap`` units of time later (a discrete-time view of a
        continuous-time process; ``gap`` = 1: these dynamics): the lag matrix A^gap (:func:`lag_power`) and the
        innovations of (Mw, Kw) accumulated over the gap, Q_gap = Sigma - A^gap Sigma A^gap', where Sigma solves
        Sigma = A Sigma A' + Q (:func:`lyapunov`; the stationary covariance the innovations alone sustain where A is
        stable). Whole gaps are exact whatever A (Q_1 = Q, Q_2 = Q + A Q A', ...); fractional gaps interpolate, and
        where A has an eigenvalue of 1 or negative ones the result may fail to be a covariance (a NaN log density).
        Sw and Ew happen at the session and act once, whatever the gap. ``gap``: a scalar or an array (one per
        participant); the coefficients of A become arrays of its shape."""
        a11, a12, a21, a22 = lag_power(self.phi_m, self.delta, self.beta_m, self.phi, gap, xp)
        s11, s12, s22 = lyapunov(self.phi_m, self.delta, self.beta_m, self.phi, self.q[2], self.q_mk, self.q[3])
        t11, t12, t22 = replace(self, phi_m=a11, delta=a12, beta_m=a21, phi=a22).predict_cov(s11, s12, s22)
        return replace(self, phi_m=a11, delta=a12, beta_m=a21, phi=a22, q=(*self.q[:2], s11 - t11, s22 - t22),
                       q_mk=s12 - t12)


def lag_power(a11: Any, a12: Any, a21: Any, a22: Any, x: Any, xp: Any = np) -> tuple[Any, Any, Any, Any]:
    """Entries (11, 12, 21, 22) of A^x for the real 2 x 2 matrix A = [[a11, a12], [a21, a22]] and a real power
    x >= 0: the real part of the principal power (A^x exactly for whole x; for fractional x, where A has a negative
    eigenvalue lambda, |lambda|^x cos(pi x) stands for lambda^x: the oscillation that a negative autoregression implies
    in continuous time). By Cayley-Hamilton, A^x = c1 A + c0 I with c1, c0 from the eigenvalues: real ones l1 != l2
    give c1 = (f(l1) - f(l2)) / (l1 - l2), c0 = (l1 f(l2) - l2 f(l1)) / (l1 - l2); a complex pair r e^(+-iw) gives
    c1 = r^(x-1) sin(w x) / sin(w), c0 = -r^x sin(w (x - 1)) / sin(w); a repeated eigenvalue l gives c1 = x f(l) / l,
    c0 = (1 - x) f(l). Branches are computed on guarded arguments, so values and gradients stay finite (``xp``: numpy
    or pytensor.tensor, elementwise)."""
    tiny = 1e-12
    half = (a11 + a22) / 2
    disc = half * half - (a11 * a22 - a12 * a21)                  # (l1 - l2)^2 / 4
    repeated = xp.abs(disc) < 1e-10

    def power(lam: Any) -> Any:                                     # Re(lam^x), lam real
        size = xp.maximum(xp.abs(lam), tiny)
        return xp.exp(x * xp.log(size)) * xp.where(lam < 0, xp.cos(np.pi * x), 1.0)

    # two real eigenvalues
    root = xp.sqrt(xp.maximum(disc, tiny))
    f1, f2 = power(half + root), power(half - root)
    real_c1, real_c0 = (f1 - f2) / (2 * root), ((half + root) * f2 - (half - root) * f1) / (2 * root)
    # a complex pair r e^(+-iw), sin(w) = sqrt(-disc) / r
    imag = xp.sqrt(xp.maximum(-disc, tiny))
    r = xp.sqrt(half * half + imag * imag)
    w = xp.arctan2(imag, half)
    r_x = xp.exp(x * xp.log(r))
    complex_c1, complex_c0 = r_x * xp.sin(w * x) / imag, -r_x * xp.sin(w * (x - 1)) * r / imag
    # a repeated eigenvalue
    safe = xp.where(xp.abs(half) < tiny, tiny, half)
    f = power(safe)
    c1 = xp.where(repeated, x * f / safe, xp.where(disc > 0, real_c1, complex_c1))
    c0 = xp.where(repeated, (1 - x) * f, xp.where(disc > 0, real_c0, complex_c0))
    return c1 * a11 + c0, c1 * a12, c1 * a21, c1 * a22 + c0


def lyapunov(a11: Any, a12: Any, a21: Any, a22: Any, q11: Any, q12: Any, q22: Any) -> tuple[Any, Any, Any]:
    """(S11, S12, S22) of the solution of S = A S A' + Q for 2 x 2 A and symmetric Q: the stationary covariance of
    x_t = A x_(t-1) + N(0, Q) where A is stable; solved exactly (Cramer's rule on the 3 x 3 linear system)."""
    k = [[1 - a11 * a11, -2 * a11 * a12, -a12 * a12],
         [-a11 * a21, 1 - (a11 * a22 + a12 * a21), -a12 * a22],
         [-a21 * a21, -2 * a21 * a22, 1 - a22 * a22]]
    q = [q11, q12, q22]

    def det(m: list) -> Any:
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))

    d = det(k)
    return tuple(det([[q[i] if c == col else k[i][c] for c in range(3)] for i in range(3)]) / d for col in range(3))


def sharing_paths(slope: np.ndarray, innovations: np.ndarray, lags: tuple[np.ndarray, np.ndarray],
                  dynamics: SharingDynamics, gaps: np.ndarray | None = None) -> np.ndarray:
    """Within-person states (Sw, Ew, Mw, Kw), shape (4, n, T), run forward by ``dynamics`` from the lagged (Mw, Kw)
    ``lags`` before the first session, with ``innovations`` (4, n, T) in the order of :data:`INNOVATIONS` (those of one
    unit of time) and the support effect ``slope`` (n, T). ``gaps`` (n, T): the time since the previous session in
    units (column 0 unused): the dynamics over each gap (:meth:`SharingDynamics.over`), the (zeta, eps) innovations
    rescaled to their accumulated covariance; None: every gap is 1."""
    _, n, T = innovations.shape
    out = np.zeros((4, n, T))
    out[:2] = innovations[:2]
    for t in range(T):
        nu = innovations[:, :, t]
        step = dynamics
        if gaps is not None and t > 0:
            step = dynamics.over(gaps[:, t])
            z = nu[2:] / np.sqrt(np.array(dynamics.q[2:], dtype=float))[:, None]     # standard normal
            zeta = np.sqrt(step.q[2]) * z[0]
            eps = step.q_mk / np.sqrt(step.q[2]) * z[0] + np.sqrt(step.q[3] - step.q_mk**2 / step.q[2]) * z[1]
            nu = np.stack([nu[0], nu[1], zeta, eps])
        lags = step.step(lags, nu, slope[:, t])
        out[2:, :, t] = lags
    return out


def spectral_radius(phi: np.ndarray, beta_m: np.ndarray, delta: np.ndarray, phi_m: np.ndarray) -> np.ndarray:
    """Largest |eigenvalue| of the lag matrix of (Kw, Mw), [[phi, betaM], [delta, phiM]],
    elementwise over draws; the K-M system is stable (shocks die out) when it is below 1."""
    trace, det = phi + phi_m, phi * phi_m - beta_m * delta
    root = np.sqrt((trace**2 - 4 * det).astype(complex))
    return np.maximum(np.abs((trace + root) / 2), np.abs((trace - root) / 2))
