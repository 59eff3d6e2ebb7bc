"""Study simulator: synthetic learning-community studies drawn from the models' equations (:mod:`lcbayes.processes`;
``docs/models.md``).

:func:`simulate_study` draws one complete study (the long table, its roles and the truth) from a :class:`Design` and
true parameter values (:class:`ClimateTruth` for models A and B, :class:`SharingTruth` for model C). All randomness
flows from one integer seed through ``numpy.random.SeedSequence``, split into independent streams per stage, so the
same seed gives the same table bit for bit.

Metric and defaults
-------------------
Every construct lives on the metric of a 1..5 rating scale. Defaults are chosen to be plausible for field studies of
work teams (not estimates from any one study):

- climate: grand mean 3.4 at the first session, +0.05 per session; participant intercept SD 0.5 and residual SD 0.5
  at the first session give a person-level ICC near .5; a community intercept SD of 0.2 gives a community-level ICC
  near .07 (the .05-.10 typical of climate perceptions in teams);
- consensus emergence: the within-community residual SD starts at exp(alpha0) = 0.5 and shrinks by 8% per session
  (alpha1 = -0.08); more diverse goal orientation (z_j = +1 SD) raises the spread by 10% and slows emergence
  (alpha3 = 0.03);
- knowledge sharing: support effect 0.30 at the first session, weakening by 0.04 per session, weaker for participants
  with higher self-efficacy (gamma1 = -0.20 per unit); reciprocal spiral gain delta * beta_M = 0.2 * 0.15 = 0.03.

Time in the models is ``s = session - 1`` (0 at the first session). Composition ``z_j`` is the standardised (mean 0,
SD 1 over communities, ddof=0) within-community SD (ddof=1) of the *observed* learning-goal-orientation scores of the
community's members; the trait ``w_i`` is the standardised observed psychological-safety score. Both are what an
analyst sees, so a fitted model targets exactly the simulated alpha values when the data are continuous. With
``likert`` set, each construct is also measured by k-point items (latent value plus item noise, rounded and clipped),
so the observed scale scores carry measurement error and truth refers to the latent values.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcbayes.data.roles import Roles
from lcbayes.processes import (
    SharingDynamics,
    climate_log_sd,
    climate_strength,
    learning_mean,
    sharing_paths,
    support_slope,
    time_basis,
    within_community_variance,
)

STREAMS = ("design", "traits", "climate", "sharing", "outcome", "measurement", "missingness")
TRAITS = ("lgo", "help_seeking", "help_giving", "psych_safety")
TRAIT_MEAN = np.array([3.8, 3.4, 3.7, 3.6])
TRAIT_SD = np.array([0.6, 0.7, 0.6, 0.6])
TRAIT_CORR = np.array([[1.00, 0.30, 0.30, 0.20], [0.30, 1.00, 0.40, 0.35],
                       [0.30, 0.40, 1.00, 0.25], [0.20, 0.35, 0.25, 1.00]])
# scales: name -> (number of items, indices of reverse-keyed items)
SCALE_ITEMS = {"climate": (4, (2,)), "lgo": (3, ()), "help_seeking": (3, ()), "help_giving": (3, ()),
               "psych_safety": (3, (1,)), "support": (3, ()), "self_efficacy": (3, ()), "motivation": (3, ()),
               "sharing": (3, ()), "learning": (3, ())}
PARTICIPANT_LEVEL = TRAITS + ("learning",)
TIME_VARYING_PREDICTORS = ("support", "self_efficacy", "motivation")


def _count(value: int | tuple[int, int], rng: np.random.Generator, size: int) -> np.ndarray:
    """Fixed count or uniform integers in the inclusive range (lo, hi)."""
    if isinstance(value, int):
        return np.full(size, value)
    lo, hi = value
    return rng.integers(lo, hi + 1, size=size)


@dataclass(frozen=True)
class Design:
    """Shape of a study.

    ``participants`` and ``orgs_per_community`` are a fixed number or an inclusive range ``(lo, hi)`` drawn uniformly
    per community. Rates are probabilities: ``attrition`` is the per-session hazard of leaving for good after one's
    first session, ``late_join`` the share of participants who join at session 2 or 3, ``missed`` the chance of
    skipping a session in between, ``predictor_missing`` the chance that a present row lacks a time-varying predictor
    value (support, self-efficacy, motivation; each independently). ``likert`` = k gives k-point items per construct
    (None: continuous scores); the truth is on the 1-5 reference scale, and a k-point design maps the latent values and
    the item noise linearly onto 1..k (1 + (x - 1)(k - 1)/4: unchanged for k = 5). ``items`` sets the number of items
    of every scale (reverse-keyed ones kept where they exist).
    """

    communities: int = 20
    participants: int | tuple[int, int] = 12
    sessions: int = 6
    organizations: int = 30
    orgs_per_community: int | tuple[int, int] = (3, 5)
    attrition: float = 0.05
    late_join: float = 0.10
    missed: float = 0.10
    predictor_missing: float = 0.0
    weeks_between_sessions: float = 4.0
    gap_spread: float = 1.0                  # gaps: weeks_between_sessions +- up to this many weeks (rounded, >= 1)
    likert: int | None = None
    item_sd: float = 0.6
    items: int | None = None                 # items per scale (None: each scale's own number, SCALE_ITEMS)

    def __post_init__(self) -> None:
        checks = [
            (self.communities >= 2, "communities must be at least 2"),
            (np.min(self.participants) >= 2, "each community needs at least 2 participants"),
            (self.sessions >= 2, "sessions must be at least 2"),
            (1 <= np.min(self.orgs_per_community) and np.max(self.orgs_per_community) <= self.organizations,
             "orgs_per_community must lie in 1..organizations"),
            (all(0 <= r < 1 for r in (self.attrition, self.late_join, self.missed, self.predictor_missing)),
             "rates must lie in [0, 1)"),
            (self.likert is None or self.likert >= 2, "likert must be None or at least 2"),
            (self.items is None or self.items >= 2, "items must be None or at least 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Design: {message}")


@dataclass(frozen=True)
class ClimateTruth:
    """True values of the climate models (A: location; B: scale and outcome).

    Location: y = beta0 + beta1*s + beta2*s^2 + gamma_lgo*lgo_z + gamma_support_within*Sw
    + gamma_support_between*(muS - mean muS) + u0j + u1j*s + r0ij + r1ij*s + o_org + e.
    Scale: log sigma = alpha0 + alpha1*s + alpha2*z_j + alpha3*z_j*s + alpha4*w_i + alpha5*w_i*s + v0j + v1j*s.
    Outcome: learning_i = eta0 + eta_strength*S_jT + eta_consensus*log C_jT + eta_interaction*S_jT*log C_jT + b_j + e_i
    (participants present at the last session), S_jT the latent strength and C_jT the consensus_sd (the square root of
    the whole latent within-community variance, :func:`~lcbayes.processes.within_community_variance`) at the last
    session, b_j ~ N(0, tau_learning) a community residual.
    """

    beta0: float = 3.4
    beta1: float = 0.05
    beta2: float = 0.0
    gamma_lgo: float = 0.15
    gamma_support_within: float = 0.10
    gamma_support_between: float = 0.20
    tau_u: tuple[float, float] = (0.20, 0.03)
    rho_u: float = 0.0
    tau_r: tuple[float, float] = (0.50, 0.05)
    rho_r: float = -0.2
    tau_o: float = 0.10
    alpha0: float = float(np.log(0.5))
    alpha1: float = -0.08
    alpha2: float = 0.10
    alpha3: float = 0.03
    alpha4: float = -0.10
    alpha5: float = 0.0
    tau_v: tuple[float, float] = (0.0, 0.0)
    eta0: float = 1.0
    eta_strength: float = 0.6
    eta_consensus: float = -0.5
    eta_interaction: float = 0.0
    tau_learning: float = 0.15
    sigma_learning: float = 0.5

    def field_value(self, name: str, design: Design) -> Any:
        """The true value of field ``name`` (the same for every design)."""
        return getattr(self, name)


@dataclass(frozen=True)
class SharingTruth:
    """True values of model C (knowledge sharing K, support S, self-efficacy E, motivation M).

    ``f`` is the random-walk deviation of the support effect per session (f[0] = 0); when None it is
    ``f_slope * (t - 1)``. Person means are centred at ``mu`` before entering the between-person and cross-level terms.
    """

    mu: tuple[float, float, float] = (3.5, 3.6, 3.8)          # means of muS, muE, muM
    sd_mu: tuple[float, float, float] = (0.6, 0.6, 0.6)
    corr_mu: float = 0.3                                       # common correlation of muS, muE, muM
    support_trend: float = -0.05                               # change of S per session
    efficacy_trend: float = 0.0                                # change of E per session
    motivation_trend: float = -0.03                            # change of M per session
    sharing_trend: float = -0.04                               # change of K per session
    session_shock_sd: tuple[float, float, float, float] = (0.0, 0.0, 0.05, 0.05)   # shocks common to all, S E M K
    tau_community_session: float = 0.10                        # community x session shocks in K
    stationary_start: bool = True                              # lags before session 1 stationary (else 0)
    gap_dynamics: bool = False     # (Mw, Kw) evolve over the weeks between sessions (unit: weeks_between_sessions)
    sd_within: tuple[float, float] = (0.5, 0.5)                # SD of Sw, Ew
    phi: float = 0.30
    gamma0: float = 0.30
    f: tuple[float, ...] | None = None
    f_slope: float = -0.04
    gamma1: float = -0.20
    tau_beta: float = 0.10
    beta_e: float = 0.20
    beta_se: float = -0.10
    beta_m: float = 0.15
    sigma_k: float = 0.5
    pi0: float = 3.2
    pi: tuple[float, float, float] = (0.30, 0.20, 0.25)        # between effects of muS, muE, muM
    tau_org: float = 0.10
    tau_comm: float = 0.15
    tau_k: float = 0.40
    phi_m: float = 0.30
    delta: float = 0.20
    theta: float = 0.20
    sigma_m: float = 0.4

    def field_value(self, name: str, design: Design) -> Any:
        """The true value of field ``name`` in ``design`` (``f`` resolved per session)."""
        return self.f_values(design.sessions) if name == "f" else getattr(self, name)

    def f_values(self, sessions: int) -> np.ndarray:
        """The support-effect deviation per session, shape ``(sessions,)``, f[0] = 0."""
        if self.f is None:
            return self.f_slope * np.arange(sessions)
        f = np.asarray(self.f, dtype=float)
        if f.shape != (sessions,) or f[0] != 0:
            raise ValueError(f"SharingTruth.f must have {sessions} values starting with 0, got {self.f}")
        return f


# truth groups by process name: the keyword of simulate_study and the prefix of a plan's truth paths
TRUTHS: dict[str, type] = {"climate": ClimateTruth, "sharing": SharingTruth}


@dataclass
class Truth:
    """What generated a simulated study: seed, design, parameters and the latent draws.

    ``communities``: one row per community (size, organizations, composition z, random effects). ``community_sessions``:
    per community x session, the latent climate ``strength`` (community mean for an average member), ``consensus_sd``
    (square root of the whole latent within-community variance V_jt) and ``transient_sd`` (its residual part: the
    root mean square of the members' sigma_tij) and the community x session shock of sharing ``sharing_shock``.
    ``participants``: per participant, ids, timing and latent values. ``sessions``: per session, the effect common to
    all participants of support, self-efficacy, motivation and sharing (trend plus shock, not centred).
    """

    seed: int
    design: Design
    climate: ClimateTruth
    sharing: SharingTruth
    communities: pd.DataFrame
    community_sessions: pd.DataFrame
    participants: pd.DataFrame
    sessions: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        frames = {name: json.loads(getattr(self, name).to_json(orient="records"))
                  for name in ("communities", "community_sessions", "participants", "sessions")}
        return {"seed": self.seed, "design": asdict(self.design), "climate": asdict(self.climate),
                "sharing": {**asdict(self.sharing), "f": self.sharing.f_values(self.design.sessions).tolist()},
                **frames}

    def to_json(self, path: str | Path) -> Path:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))
        return Path(path)


@dataclass
class SimulatedStudy:
    """A simulated table, the roles that describe it and the truth that generated it."""

    table: pd.DataFrame
    roles: Roles
    truth: Truth


def _mvn(rng: np.random.Generator, sd: np.ndarray, corr: np.ndarray, size: int) -> np.ndarray:
    """Zero-mean normal draws, shape (size, k), with SDs ``sd`` (zeros allowed) and correlation ``corr``."""
    return rng.standard_normal((size, len(sd))) @ np.linalg.cholesky(corr).T * sd


def _pair(tau: tuple[float, float], rho: float) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(tau, dtype=float), np.array([[1.0, rho], [rho, 1.0]])


def _standardize(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _layout(design: Design, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Participants (community, organization, join and leave sessions) and session weeks."""
    T, J = design.sessions, design.communities
    sizes = _count(design.participants, rng, J)
    n_orgs = _count(design.orgs_per_community, rng, J)
    rows = []
    for j in range(J):
        pool = rng.choice(design.organizations, size=n_orgs[j], replace=False)
        orgs = rng.choice(pool, size=sizes[j])
        rows += [(j, f"C{j + 1:02d}", f"C{j + 1:02d}P{p + 1:02d}", f"O{orgs[p] + 1:02d}") for p in range(sizes[j])]
    people = pd.DataFrame(rows, columns=["j", "community", "participant", "organization"])
    n = len(people)
    late = rng.random(n) < design.late_join
    join = np.where(late, rng.integers(2, min(3, T) + 1, size=n), 1)
    # session at which a participant is first absent for good (T + 1: stays to the end)
    stay = np.full(n, T + 1)
    for t in range(2, T + 1):
        leaves = (stay == T + 1) & (t > join) & (rng.random(n) < design.attrition)
        stay[leaves] = t
    people["join"], people["leave"] = join, stay
    gaps = rng.uniform(-1, 1, size=(J, T - 1)) * design.gap_spread + design.weeks_between_sessions
    weeks = np.concatenate([np.zeros((J, 1)), np.cumsum(np.maximum(np.round(gaps), 1), axis=1)], axis=1)
    return people, weeks.astype(int)


def _sharing(people: pd.DataFrame, truth: SharingTruth, T: int, rng: np.random.Generator,
             gaps: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Latent model C processes for every participant and session (even unobserved ones); ``gaps`` (n, T): the weeks
    since the previous session over the typical gap, along which (Mw, Kw) evolve (None: one step per session).

    Returns the scores' latent values (n, T) by measure name, Sw (n, T), the person means (n, 3) and muK (n,),
    u_beta (n,), b_comm (J,), the community x session shocks c_jt (J, T) and the session effects (4, T) of S, E, M, K
    (trend plus shocks, not centred).
    """
    n = len(people)
    mu = np.asarray(truth.mu)
    corr = np.full((3, 3), truth.corr_mu) + (1 - truth.corr_mu) * np.eye(3)
    means = mu + _mvn(rng, np.asarray(truth.sd_mu), corr, n)
    centred = means - mu
    s = np.arange(T)
    Sw = rng.normal(0, truth.sd_within[0], size=(n, T))
    Ew = rng.normal(0, truth.sd_within[1], size=(n, T))
    J = people["j"].max() + 1
    org_codes, _ = pd.factorize(people["organization"], sort=True)
    a_org = rng.normal(0, truth.tau_org, size=org_codes.max() + 1)
    b_comm = rng.normal(0, truth.tau_comm, size=J)
    mu_k = (truth.pi0 + centred @ np.asarray(truth.pi) + a_org[org_codes]
            + b_comm[people["j"].to_numpy()] + rng.normal(0, truth.tau_k, size=n))
    u_beta = rng.normal(0, truth.tau_beta, size=n)
    f = truth.f_values(T)
    beta_s = support_slope(truth.gamma0, f[None, :], (truth.gamma1 * centred[:, 1] + u_beta)[:, None])
    eps = rng.normal(0, truth.sigma_k, size=(n, T))
    zeta = rng.normal(0, truth.sigma_m, size=(n, T))
    shocks = rng.standard_normal((4, T)) * np.asarray(truth.session_shock_sd, dtype=float)[:, None]
    c_jt = rng.normal(0, truth.tau_community_session, size=(J, T))
    q = np.array([truth.sd_within[0], truth.sd_within[1], truth.sigma_m, truth.sigma_k]) ** 2
    dynamics = SharingDynamics(phi=truth.phi, beta_m=truth.beta_m, delta=truth.delta, phi_m=truth.phi_m,
                               theta=truth.theta, beta_e=truth.beta_e, beta_se=truth.beta_se, q=tuple(q))
    lags = (np.zeros(n), np.zeros(n))
    if truth.stationary_start:
        s11, s12, s22 = dynamics.stationary(beta_s[:, 0])
        z = rng.standard_normal((2, n))
        lags = (np.sqrt(s11) * z[0], s12 / np.sqrt(s11) * z[0] + np.sqrt(s22 - s12**2 / s11) * z[1])
    _, _, Mw, Kw = sharing_paths(np.broadcast_to(beta_s, (n, T)), np.stack([Sw, Ew, zeta, eps]), lags, dynamics, gaps)
    trend = [truth.support_trend, truth.efficacy_trend, truth.motivation_trend, truth.sharing_trend]
    session = np.array(trend)[:, None] * s + shocks                    # (4, T) common to all participants
    return {"support": means[:, [0]] + session[0] + Sw, "self_efficacy": means[:, [1]] + session[1] + Ew,
            "motivation": means[:, [2]] + session[2] + Mw,
            "sharing": mu_k[:, None] + session[3] + c_jt[people["j"].to_numpy()] + Kw,
            "Sw": Sw, "mu": means, "mu_k": mu_k, "u_beta": u_beta, "b_comm": b_comm, "c_jt": c_jt,
            "session": session}


def _climate(people: pd.DataFrame, truth: ClimateTruth, T: int, lgo_obs: np.ndarray, safety_obs: np.ndarray,
             sharing: dict[str, np.ndarray], mu_s: float, rng: np.random.Generator) -> dict[str, Any]:
    """Latent climate y (n, T), its residual SD, and per-community quantities."""
    n, J = len(people), people["j"].max() + 1
    j = people["j"].to_numpy()
    s = np.arange(T, dtype=float)
    u = _mvn(rng, *_pair(truth.tau_u, truth.rho_u), J)
    r = _mvn(rng, *_pair(truth.tau_r, truth.rho_r), n)
    org_codes, _ = pd.factorize(people["organization"], sort=True)
    o = rng.normal(0, truth.tau_o, size=org_codes.max() + 1)
    v = np.column_stack([rng.normal(0, truth.tau_v[0], J), rng.normal(0, truth.tau_v[1], J)])
    lgo_sd = pd.Series(lgo_obs).groupby(j).std().to_numpy()
    z = _standardize(lgo_sd)
    w = _standardize(safety_obs)
    _, basis = time_basis(s, s + 1, "quadratic")                                         # s, s^2
    strength = climate_strength(truth.beta0, [(truth.beta1, basis[0]), (truth.beta2, basis[1])],
                                u[:, [0]], u[:, [1]], s)                                   # (J, T)
    log_sd_comm = climate_log_sd(truth.alpha0, s, truth.alpha1, (truth.alpha2 * z)[:, None],
                                 (truth.alpha3 * z)[:, None], None, v[:, [0]], v[:, [1]])  # (J, T)
    sigma = np.exp(climate_log_sd(log_sd_comm[j], s, trait=(truth.alpha4 * w)[:, None],
                                  trait_time=(truth.alpha5 * w)[:, None]))                 # (n, T)
    predictors = (truth.gamma_lgo * _standardize(lgo_obs)[:, None] + truth.gamma_support_within * sharing["Sw"]
                  + truth.gamma_support_between * (sharing["mu"][:, [0]] - mu_s))          # (n, T)
    y = (strength[j] + r[:, [0]] + r[:, [1]] * s + o[org_codes][:, None] + predictors
         + sigma * rng.standard_normal((n, T)))
    # the consensus estimand: whole latent within-community variance, parts as in the model
    members = pd.DataFrame({"j": j})
    mean = lambda x: pd.DataFrame(x).groupby(j).mean().to_numpy()                          # noqa: E731 (J, T)
    tau_r = np.asarray(truth.tau_r)
    participant = tau_r[0] ** 2 + 2 * truth.rho_r * tau_r[0] * tau_r[1] * s + tau_r[1] ** 2 * s**2
    shares = pd.crosstab(members["j"], org_codes, normalize="index").to_numpy()
    organization = (truth.tau_o**2 * (1 - (shares**2).sum(axis=1)))[:, None]
    V = within_community_variance(participant, organization, mean(sigma**2),
                                  mean(predictors**2) - mean(predictors) ** 2)
    return {"y": y, "strength": strength, "consensus_sd": np.sqrt(V), "transient_sd": np.sqrt(mean(sigma**2)),
            "u": u, "v": v, "r": r, "lgo_sd": lgo_sd, "z": z, "w": w}


def _measure(latent: np.ndarray, name: str, design: Design,
             rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Observed columns of one construct and its observed score.

    Continuous design: one column ``name`` holding the latent value. Likert design: k-point items ``name_1..`` (latent
    + item noise, rounded, clipped to 1..k; reverse-keyed items stored reversed) and the score is the mean of the keyed
    items.
    """
    if design.likert is None:
        return {name: latent}, latent
    k = design.likert
    n_items, reverse = _items_of(name, design)
    stretch = (k - 1) / 4                    # the 1-5 reference scale onto 1..k
    noise = rng.normal(0, design.item_sd, size=latent.shape + (n_items,))
    x = latent[..., None] + noise
    items = np.clip(np.rint(x if k == 5 else 1 + (x - 1) * stretch), 1, k)
    score = items.mean(axis=-1)
    items[..., list(reverse)] = k + 1 - items[..., list(reverse)]
    return {f"{name}_{i + 1}": items[..., i] for i in range(n_items)}, score


def _items_of(name: str, design: Design) -> tuple[int, tuple[int, ...]]:
    """Number of items of scale ``name`` in ``design`` and the indices of its reverse-keyed items."""
    n_items, reverse = SCALE_ITEMS[name]
    n_items = design.items or n_items
    return n_items, tuple(i for i in reverse if i < n_items)


def _roles(design: Design) -> Roles:
    variables: dict[str, Any] = {}
    scales: dict[str, Any] = {}
    for name in SCALE_ITEMS:
        level = "participant" if name in PARTICIPANT_LEVEL else "session"
        if design.likert is None:
            variables[name] = {"column": name, "level": level}
        else:
            n_items, reverse = _items_of(name, design)
            scales[name] = {"items": [f"{name}_{i + 1}" for i in range(n_items)],
                            "reverse": [f"{name}_{i + 1}" for i in reverse],
                            "range": [1, design.likert], "level": level}
    return Roles.parse({"community": "community", "participant": "participant", "organization": "organization",
                        "session": "session", "time": "week", "variables": variables, "scales": scales})


def simulate_study(design: Design | None = None, climate: ClimateTruth | None = None,
                   sharing: SharingTruth | None = None, seed: int = 0) -> SimulatedStudy:
    """Draw one study.

    Returns the long table (one row per participant x observed session; columns community, participant, organization,
    session, week, then the measures or their items), the roles describing it and the :class:`Truth`. Same arguments
    and seed: the same table, bit for bit.
    """
    design, climate, sharing = design or Design(), climate or ClimateTruth(), sharing or SharingTruth()
    streams = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS)))
    rng = dict(zip(STREAMS, streams, strict=True))
    T = design.sessions
    people, weeks = _layout(design, rng["design"])
    n = len(people)
    traits = TRAIT_MEAN + _mvn(rng["traits"], TRAIT_SD, TRAIT_CORR, n)   # latent traits (n, 4), columns as TRAITS
    columns: dict[str, dict[str, np.ndarray]] = {}   # construct -> observed column -> values
    trait_score = {}
    for i, name in enumerate(TRAITS):
        columns[name], trait_score[name] = _measure(traits[:, i], name, design, rng["measurement"])
    gaps = np.diff(weeks, axis=1, prepend=0)[people["j"].to_numpy()] / design.weeks_between_sessions
    proc = _sharing(people, sharing, T, rng["sharing"], gaps if sharing.gap_dynamics else None)
    clim = _climate(people, climate, T, trait_score["lgo"], trait_score["psych_safety"], proc,
                    sharing.mu[0], rng["climate"])
    j = people["j"].to_numpy()
    last = T - 1
    eta = (climate.eta0, climate.eta_strength, climate.eta_consensus, climate.eta_interaction)
    b = rng["outcome"].normal(0, climate.tau_learning, len(clim["z"]))
    learning = (learning_mean(eta, clim["strength"][j, last], np.log(clim["consensus_sd"][j, last])) + b[j]
                + rng["outcome"].normal(0, climate.sigma_learning, n))
    learning[people["leave"].to_numpy() <= T] = np.nan       # dropouts give no end-of-study outcome
    latent = {"learning": learning, "climate": clim["y"], **{k: proc[k] for k in TIME_VARYING_PREDICTORS},
              "sharing": proc["sharing"]}
    for name, values in latent.items():
        columns[name], _ = _measure(values, name, design, rng["measurement"])

    table = _long_table(people, weeks, columns, design, rng["missingness"])
    communities = pd.DataFrame({
        "community": [f"C{k + 1:02d}" for k in range(len(clim["z"]))], "size": people.groupby("j").size().to_numpy(),
        "organizations": people.groupby("j")["organization"].nunique().to_numpy(), "lgo_sd": clim["lgo_sd"],
        "z": clim["z"], "u0": clim["u"][:, 0], "u1": clim["u"][:, 1], "v0": clim["v"][:, 0], "v1": clim["v"][:, 1],
        "b_learning": b, "b_sharing": proc["b_comm"]})
    cs = pd.DataFrame({"community": np.repeat(communities["community"].to_numpy(), T),
                       "session": np.tile(np.arange(1, T + 1), len(communities)),
                       "strength": clim["strength"].ravel(), "consensus_sd": clim["consensus_sd"].ravel(),
                       "transient_sd": clim["transient_sd"].ravel(), "sharing_shock": proc["c_jt"].ravel()})
    measures = TIME_VARYING_PREDICTORS + ("sharing",)
    sessions = pd.DataFrame({"session": np.arange(1, T + 1), **dict(zip(measures, proc["session"], strict=True))})
    participants = people.drop(columns="j").assign(
        w=clim["w"], r0=clim["r"][:, 0], r1=clim["r"][:, 1], mu_support=proc["mu"][:, 0],
        mu_self_efficacy=proc["mu"][:, 1], mu_motivation=proc["mu"][:, 2], mu_sharing=proc["mu_k"],
        u_beta=proc["u_beta"], **{f"{name}_latent": traits[:, i] for i, name in enumerate(TRAITS)})
    truth = Truth(seed, design, climate, sharing, communities, cs, participants, sessions)
    return SimulatedStudy(table, _roles(design), truth)


def _long_table(people: pd.DataFrame, weeks: np.ndarray, columns: dict[str, dict[str, np.ndarray]],
                design: Design, rng: np.random.Generator) -> pd.DataFrame:
    """Keep the rows a participant attended; blank out missing predictor values."""
    T, n = design.sessions, len(people)
    session = np.arange(1, T + 1)
    join, leave = people["join"].to_numpy()[:, None], people["leave"].to_numpy()[:, None]
    enrolled = (session >= join) & (session < leave)
    attended = enrolled & (rng.random((n, T)) >= design.missed)
    first = np.argmax(enrolled, axis=1)
    attended[np.arange(n), first] |= ~attended.any(axis=1)      # everyone is seen at least once
    pi, ti = np.nonzero(attended)
    table = pd.DataFrame({**{c: people[c].to_numpy()[pi] for c in ("community", "participant", "organization")},
                          "session": session[ti], "week": weeks[people["j"].to_numpy()[pi], ti]})
    for observed in columns.values():
        for column, values in observed.items():
            table[column] = values[pi, ti] if values.ndim == 2 else values[pi]
    for construct in TIME_VARYING_PREDICTORS:
        table.loc[rng.random(len(table)) < design.predictor_missing, list(columns[construct])] = np.nan
    if design.likert is not None:  # item responses are whole numbers; <NA> where missing
        items = [c for observed in columns.values() for c in observed]
        table[items] = table[items].astype("Int64")
    return table
