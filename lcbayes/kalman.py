"""Model C's Kalman filter: the within-person states integrated out, one participant per entry of the batch.

The states follow :class:`~lcbayes.processes.SharingDynamics`, and each score is its state plus measurement error,
r_vt = state_vt + e_vt with e_vt ~ N(0, h_vt) (``residual``: the score minus everything the model adds to the state:
person mean, session effect, shocks). Only (Mw, Kw) carry over from one session to the next, and Sw_t, Ew_t are
white noise, independent of the past, so the filter's state is (Mw, Kw, cK), where cK, the participant's deviation of
the person mean muK from its expected value (variance tauK^2), persists: muK is integrated out too. Each session it

1. conditions Sw_t and Ew_t on their scores (each a scalar normal-normal update, independent of the past);
2. adds the session's input u = (theta Sw, b Sw + betaE Ew + betaSE Sw Ew) to the predicted (Mw, Kw), with the exact
   mean and covariance of u given the two scores (Sw and Ew are independent normals there). The product term makes
   u non-normal; the filter carries its first two moments (assumed-density filtering), which is exact when
   betaSE = 0;
3. conditions on the M score, then on the K score (which loads on Kw + cK), one scalar at a time (the univariate
   treatment of Durbin & Koopman 2012, 6.4).

Missing scores have ``observed`` 0 and change nothing. The lagged (Mw, Kw) before the first session are drawn from
the stationary distribution of the first session's dynamics. The arithmetic is elementwise on arrays of shape (P,),
so one step function serves NumPy (``xp=np``: tests, simulation checks) and PyTensor (``xp=pt``: the model graph,
where :func:`scan_filter` runs it as a ``scan``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor

from lcbayes.processes import SharingDynamics

LOG_2PI = float(np.log(2 * np.pi))


def _observe_white(r: Any, h: Any, q: Any, seen: Any, xp: Any) -> tuple[Any, Any, Any]:
    """A white-noise state N(0, q) seen as r = state + N(0, h) where ``seen``: its posterior mean and variance and
    the log density of r (0 where not seen)."""
    F = q + h
    gain = seen * q / F
    return gain * r, q - gain * q, -0.5 * seen * (LOG_2PI + xp.log(F) + r * r / F)


def _observe(x: list, P: dict, load: tuple[int, ...], r: Any, h: Any, seen: Any, xp: Any) -> Any:
    """Condition the state (means ``x``, covariance ``P`` as {(i, j): value} for i <= j, both updated in place) on a
    score r = sum_i load_i x_i + N(0, h) where ``seen``; ``load`` holds 0/1 constants. Returns the log density of r
    given what was seen before (0 where not seen)."""
    n = len(x)

    def cov(i: int, j: int) -> Any:
        return P[(min(i, j), max(i, j))]

    v = [sum(cov(i, j) for j in range(n) if load[j]) for i in range(n)]    # cov(state, r)
    F = sum(v[i] for i in range(n) if load[i]) + h
    innovation = r - sum(x[i] for i in range(n) if load[i])
    gain = seen / F
    for i in range(n):
        x[i] = x[i] + v[i] * gain * innovation
    for i, j in P:
        P[(i, j)] = P[(i, j)] - v[i] * v[j] * gain
    return -0.5 * seen * (LOG_2PI + xp.log(F) + innovation * innovation / F)


def session_step(state: tuple, r: Any, h: Any, o: Any, b: Any, dyn: SharingDynamics,
                 xp: Any) -> tuple[tuple, Any, Any, Any]:
    """One session. ``state`` = (m, k, c, pmm, pmk, pkk, pmc, pkc, pcc): the filtered mean and covariance of
    (Mw, Kw, cK) after the previous session, cK the participant's deviation of muK from its expected value (it
    persists); ``r``, ``h``, ``o``: the session's residuals, error variances and observed flags of S, E, M, K (sequences
    of 4 arrays (P,)); ``b``: the support effect (P,). Returns the new state, the log density of the session's scores
    given the past, and the expected Kw + cK and its predictive variance before the K score."""
    m, k, c, pmm, pmk, pkk, pmc, pkc, pcc = state
    s, vs, ll_s = _observe_white(r[0], h[0], dyn.q[0], o[0], xp)
    e, ve, ll_e = _observe_white(r[1], h[1], dyn.q[1], o[1], xp)
    um, uk, vmm, vmk, vkk = dyn.input_moments(b, s, vs, e, ve)
    (m, k), (pmm, pmk, pkk), (pmc, pkc) = dyn.predict_mean(m, k), dyn.predict_cov(pmm, pmk, pkk), \
        dyn.predict_mean(pmc, pkc)
    x = [m + um, k + uk, c]
    P = {(0, 0): pmm + vmm + dyn.q[2], (0, 1): pmk + vmk + dyn.q_mk, (1, 1): pkk + vkk + dyn.q[3], (0, 2): pmc,
         (1, 2): pkc, (2, 2): pcc}
    ll_m = _observe(x, P, (1, 0, 0), r[2], h[2], o[2], xp)
    expected, variance = x[1] + x[2], P[(1, 1)] + 2 * P[(1, 2)] + P[(2, 2)] + h[3]
    ll_k = _observe(x, P, (0, 1, 1), r[3], h[3], o[3], xp)
    return (*x, P[(0, 0)], P[(0, 1)], P[(1, 1)], P[(0, 2)], P[(1, 2)], P[(2, 2)]), ll_s + ll_e + ll_m + ll_k, \
        expected, variance


def start(slope1: Any, dyn: SharingDynamics, person_variance: Any = 0.0) -> tuple:
    """The filter's state before the first session: (Mw, Kw) with mean 0 and the stationary covariance of the first
    session's dynamics (``slope1``: the support effect there, (P,)); cK with mean 0 and variance
    ``person_variance`` (tauK^2; 0: muK given)."""
    s11, s12, s22 = dyn.stationary(slope1)
    zero = 0.0 * s11
    return zero, zero, zero, s11, s12, s22, zero, zero, zero + person_variance


def _session_dynamics(dyn: SharingDynamics, gap: Any, t: int, xp: Any) -> SharingDynamics:
    """The dynamics into session ``t``: over ``gap[:, t]`` (P,), except at the first session (its lags are drawn from
    the stationary start) or without gaps (None: equal spacing)."""
    return dyn if gap is None or t == 0 else dyn.over(gap[:, t], xp)


def sharing_filter(residual: Any, error: Any, observed: Any, slope: Any, dyn: SharingDynamics, xp: Any,
                   sessions: int, person_variance: Any = 0.0, gap: Any = None) -> tuple[Any, list, list]:
    """Run the filter over ``sessions`` sessions (a Python loop: unrolled in a graph).

    ``residual``, ``error``, ``observed``: per measure (S, E, M, K), indexable ``[v][:, t]`` to arrays of shape (P,):
    the score minus its expected value given the person mean and offsets (0 where missing), the error variance
    theta_v / n_vti, and 1 where observed; ``slope`` (P, T): the support effect b_ti without the betaSE term.
    ``person_variance``: the variance of cK (tauK^2; 0 where muK is in the residual). ``gap`` (P, T): the time since
    the previous session in units of the typical gap (:meth:`~lcbayes.processes.SharingDynamics.over`; column 0
    unused); None: every gap is 1 (equal spacing). Returns each participant's log
    density of all their scores (P,), and per session the one-step-ahead expected Kw + cK given the past and the
    session's S, E, M scores, and its predictive variance (score error included), lists of T arrays (P,).
    """
    state, loglik, expected, variance = start(slope[:, 0], dyn, person_variance), 0.0, [], []
    for t in range(sessions):
        r, h, o = ([x[v][:, t] for v in range(4)] for x in (residual, error, observed))
        state, ll, k, F = session_step(state, r, h, o, slope[:, t], _session_dynamics(dyn, gap, t, xp), xp)
        loglik = loglik + ll
        expected.append(k)
        variance.append(F)
    return loglik, expected, variance


def _as_arguments(dyn: SharingDynamics) -> list:
    """The dynamics as a flat list of tensors (a scan's non-sequences); :func:`_from_arguments` rebuilds them."""
    import pytensor.tensor as pt

    return [pt.as_tensor(c, dtype="float64") for c in
            (dyn.phi, dyn.beta_m, dyn.delta, dyn.phi_m, dyn.theta, dyn.beta_e, dyn.beta_se, *dyn.q)]


def _from_arguments(c: Any, gap: Any = None) -> SharingDynamics:
    """The dynamics of :func:`_as_arguments` over ``gap`` (None: one unit)."""
    dyn = SharingDynamics(c[0], c[1], c[2], c[3], c[4], c[5], c[6], q=(c[7], c[8], c[9], c[10]))
    if gap is None:
        return dyn
    import pytensor.tensor as pt

    return dyn.over(gap, pt)


def _gap_sequence(gap: Any, shape: tuple[int, int]) -> list:
    """``gap`` (P, T) as a scan sequence over sessions (T, P), the first session's gap set to 1 (the start is
    stationary); [] for None (equal spacing)."""
    if gap is None:
        return []
    import pytensor.tensor as pt

    gap = pt.specify_shape(pt.as_tensor(gap, dtype="float64"), shape)
    return [pt.set_subtensor(gap[:, 0], 1.0).T]


def scan_filter(residual: Any, error: Any, observed: Any, slope: Any, dyn: SharingDynamics,
                shape: tuple[int, int], person_variance: Any = 0.0, gap: Any = None) -> tuple[Any, Any, Any]:
    """:func:`sharing_filter` in a PyTensor graph as a ``scan`` over sessions (the graph and its gradient stay the
    size of one session; with the JAX backend 4-5x faster per gradient than the unrolled loop at the reference design,
    and compiled in a quarter of the time). Arguments are tensors: ``residual``, ``error``, ``observed`` (4, P, T),
    ``slope`` (P, T), with ``shape`` = (P, T) (static shapes, which JAX needs for the scan's gradient); ``gap`` (P, T)
    or None as in :func:`sharing_filter`. Returns the log density per participant (P,) and the expected K state and
    its predictive variance (P, T)."""
    import pytensor.tensor as pt

    coefficients = _as_arguments(dyn)
    gaps = _gap_sequence(gap, shape)

    def session(r: Any, h: Any, o: Any, b: Any, *carried: Any) -> tuple:
        g = carried[0] if gaps else None
        state, c = carried[len(gaps):len(gaps) + 9], carried[len(gaps) + 9:]
        state, ll, expected, variance = session_step(state, r, h, o, b, _from_arguments(c, g), pt)
        return (*state, ll, expected, variance)

    n, sessions = shape
    slope = pt.specify_shape(slope, shape)
    first = [pt.as_tensor(x, dtype="float64") + pt.zeros(n) for x in start(slope[:, 0], dyn, person_variance)]
    by_session = [pt.specify_shape(pt.as_tensor(x, dtype="float64"), (4, n, sessions)).transpose(2, 0, 1)
                  for x in (residual, error, observed)]
    outputs = pytensor.scan(session, sequences=[*by_session, slope.T, *gaps], outputs_info=[*first, None, None, None],
                            non_sequences=coefficients, n_steps=sessions, strict=True, return_updates=False)
    loglik, expected, variance = outputs[9:]
    return loglik.sum(0), expected.T, variance.T


# ---- the marginal filter: every participant-level quantity integrated out (for leave-one-participant-out) ----------
# state: person-level dS, dE, dM, cK, ubeta (persist), the lagged Mw, Kw (carry), the session's Sw, Ew (fresh)
PERSON, MW, KW, SW, EW = 5, 5, 6, 7, 8
N_MARGINAL = 9


def marginal_start(person_cov: Any, slope_variance: Any, lags: tuple[Any, Any, Any], q: tuple, xp: Any) -> tuple:
    """Mean (P, 9) and covariance (P, 9, 9) before the first session: ``person_cov`` (4, 4), the covariance of
    (muS, muE, muM, muK) around their population expectations; ``slope_variance`` tau_beta^2; ``lags`` the stationary
    (var Mw, cov, var Kw), arrays (P,); Sw, Ew fresh with variances q[0], q[1]."""
    n = lags[0].shape[0]
    zero = xp.zeros(n)
    diag = [zero + slope_variance, lags[0], lags[2], zero + q[0], zero + q[1]]

    def entry(i: int, j: int) -> Any:
        if i < 4 and j < 4:
            return zero + person_cov[i][j]
        if i == j:
            return diag[i - 4]
        if {i, j} == {MW, KW}:
            return lags[1]
        return zero

    cov = xp.stack([xp.stack([entry(i, j) for j in range(N_MARGINAL)], axis=-1) for i in range(N_MARGINAL)], axis=-2)
    return xp.zeros((n, N_MARGINAL)), cov


def _observe_dense(mean: Any, cov: Any, load: np.ndarray, r: Any, h: Any, seen: Any, xp: Any) -> tuple:
    """Condition N(mean (P, n), cov (P, n, n)) on r = load' x + N(0, h) where ``seen``; log density of r."""
    v = xp.matmul(cov, load)                        # (P, n)
    F = xp.matmul(v, load) + h
    innovation = r - xp.matmul(mean, load)
    gain = seen / F
    mean = mean + v * (gain * innovation)[:, None]
    cov = cov - v[:, :, None] * v[:, None, :] * gain[:, None, None]
    return mean, cov, -0.5 * seen * (LOG_2PI + xp.log(F) + innovation * innovation / F)


def marginal_step(mean: Any, cov: Any, r: Any, h: Any, o: Any, b: Any, gamma1: Any, dyn: SharingDynamics,
                  xp: Any) -> tuple[Any, Any, Any]:
    """One session of the marginal filter (``b``: the population support effect gamma0 + f(t), scalar; the person's
    part gamma1 dE + ubeta is in the state): condition on S and E, move (Mw, Kw) on with the exact first two moments
    of the quadratic input (gamma1 dE + ubeta + betaSE Ew) Sw (assumed-density filtering), then condition on M and K.
    Returns the new mean and covariance (Sw, Ew fresh again) and the log density of the session's scores."""
    eye = np.eye(N_MARGINAL)
    mean, cov, ll_s = _observe_dense(mean, cov, eye[0] + eye[SW], r[0], h[0], o[0], xp)
    mean, cov, ll_e = _observe_dense(mean, cov, eye[1] + eye[EW], r[1], h[1], o[1], xp)
    # linear part F (P, 2, n) (its lag coefficients are arrays (P,) over a gap) and the quadratic form z'Bz of Kw's
    # input
    n = mean.shape[0]
    nil = xp.zeros(n)

    def row(entries: dict, zero: Any) -> Any:
        return xp.stack([zero + entries.get(i, 0.0) for i in range(N_MARGINAL)], axis=-1)

    F = xp.stack([row({MW: dyn.phi_m, KW: dyn.delta, SW: dyn.theta}, nil),
                  row({KW: dyn.phi, MW: dyn.beta_m, SW: b, EW: dyn.beta_e}, nil)], axis=1)
    half = {(1, SW): gamma1 / 2, (4, SW): 0.5, (SW, EW): dyn.beta_se / 2}
    B = xp.stack([row({j: v for (a, c), v in half.items() for i2, j in ((a, c), (c, a)) if i2 == i}, 0.0 * gamma1)
                  for i in range(N_MARGINAL)])
    SB = xp.matmul(cov, B)                                         # (P, n, n)
    SBm = xp.matmul(SB, mean[:, :, None])[:, :, 0]                 # Sigma B mu, (P, n)
    q_mean = xp.einsum("pii->p", SB) + xp.einsum("pi,ij,pj->p", mean, B, mean)
    q_var = 2 * xp.einsum("pij,pji->p", SB, SB) + 4 * xp.einsum("pi,ij,pj->p", mean, B, SBm)
    linear_mean = xp.einsum("pi,pki->pk", mean, F)                  # (P, 2)
    cross = xp.einsum("pij,pkj->pik", cov, F)                       # Cov(z, F z), (P, n, 2)
    cov_q = 2 * SBm                                                 # Cov(z, q), (P, n)
    new_mean = [linear_mean[:, 0], linear_mean[:, 1] + q_mean]
    c_m, c_k = cross[:, :, 0], cross[:, :, 1] + cov_q               # Cov(z, new M), Cov(z, new K)
    v_mm = (c_m * F[:, 0]).sum(-1) + dyn.q[2]
    v_mk = (cross[:, :, 0] * F[:, 1]).sum(-1) + (cov_q * F[:, 0]).sum(-1) + dyn.q_mk
    v_kk = (cross[:, :, 1] * F[:, 1]).sum(-1) + 2 * (cov_q * F[:, 1]).sum(-1) + q_var + dyn.q[3]
    # the new state: the person-level part kept, (Mw, Kw) replaced, Sw and Ew fresh
    mean = xp.concatenate([mean[:, :PERSON], xp.stack(new_mean + [nil, nil], axis=-1)], axis=-1)

    def entry(i: int, j: int) -> Any:
        if i < PERSON and j < PERSON:
            return cov[:, i, j]
        lookup = {(MW, MW): v_mm, (MW, KW): v_mk, (KW, MW): v_mk, (KW, KW): v_kk,
                  (SW, SW): nil + dyn.q[0], (EW, EW): nil + dyn.q[1]}
        if (i, j) in lookup:
            return lookup[(i, j)]
        if i < PERSON and j in (MW, KW):
            return (c_m if j == MW else c_k)[:, i]
        if j < PERSON and i in (MW, KW):
            return (c_m if i == MW else c_k)[:, j]
        return nil

    cov = xp.stack([xp.stack([entry(i, j) for j in range(N_MARGINAL)], axis=-1) for i in range(N_MARGINAL)], axis=-2)
    mean, cov, ll_m = _observe_dense(mean, cov, eye[2] + eye[MW], r[2], h[2], o[2], xp)
    mean, cov, ll_k = _observe_dense(mean, cov, eye[3] + eye[KW], r[3], h[3], o[3], xp)
    return mean, cov, ll_s + ll_e + ll_m + ll_k


def marginal_filter(residual: Any, error: Any, observed: Any, slope: Any, gamma1: Any, person_cov: Any,
                    slope_variance: Any, dyn: SharingDynamics, xp: Any, sessions: int, gap: Any = None) -> Any:
    """Each participant's log density of all their scores with every participant-level quantity integrated out:
    the person means (covariance ``person_cov`` of (muS, muE, muM, muK) around their population expectations, which
    ``residual`` has taken off), the support slope ubeta (variance ``slope_variance``) and the within states.
    ``slope`` (T,): the population support effect gamma0 + f(t). The lags before session 1 are stationary at the
    population support effect (slope heterogeneity left out of that start). ``gap`` (P, T) or None as in
    :func:`sharing_filter`. A Python loop (unrolled in a graph; forward only: it is evaluated once per draw, never
    differentiated). Returns (P,)."""
    lags = dyn.stationary(slope[0] + 0.0 * residual[0][:, 0])
    mean, cov = marginal_start(person_cov, slope_variance, lags, dyn.q, xp)
    loglik = 0.0
    for t in range(sessions):
        r, h, o = ([x[v][:, t] for v in range(4)] for x in (residual, error, observed))
        mean, cov, ll = marginal_step(mean, cov, r, h, o, slope[t], gamma1, _session_dynamics(dyn, gap, t, xp), xp)
        loglik = loglik + ll
    return loglik


def scan_marginal(residual: Any, error: Any, observed: Any, slope: Any, gamma1: Any, person_cov: Any,
                  slope_variance: Any, dyn: SharingDynamics, shape: tuple[int, int], gap: Any = None) -> Any:
    """:func:`marginal_filter` in a PyTensor graph as a ``scan`` over sessions (tensors; ``slope`` (T,),
    ``person_cov`` (4, 4), ``gap`` (P, T) or None); returns the log density per participant (P,)."""
    import pytensor.tensor as pt

    n, sessions = shape
    coefficients = [*_as_arguments(dyn), pt.as_tensor(gamma1, dtype="float64")]
    gaps = _gap_sequence(gap, shape)

    def session(r: Any, h: Any, o: Any, b: Any, *carried: Any) -> tuple:
        g = carried[0] if gaps else None
        mean, cov, c = carried[len(gaps)], carried[len(gaps) + 1], carried[len(gaps) + 2:]
        return marginal_step(mean, cov, r, h, o, b, c[11], _from_arguments(c, g), pt)

    residual0 = pt.as_tensor(residual, dtype="float64")
    lags = dyn.stationary(slope[0] + pt.zeros(n))
    mean, cov = marginal_start(person_cov, slope_variance, lags, dyn.q, pt)
    by_session = [pt.specify_shape(pt.as_tensor(x, dtype="float64"), (4, n, sessions)).transpose(2, 0, 1)
                  for x in (residual0, error, observed)]
    outputs = pytensor.scan(session, sequences=[*by_session, pt.as_tensor(slope, dtype="float64"), *gaps],
                            outputs_info=[mean, cov, None], non_sequences=coefficients, n_steps=sessions,
                            strict=True, return_updates=False)
    return outputs[2].sum(0)
