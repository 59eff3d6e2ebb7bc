"""One model's part of a report, in the order of the Bayesian analysis reporting guidelines (Kruschke 2021): model and
priors, prior predictive check, fit and convergence diagnostics for every reported quantity, posterior summaries and
derived quantities, posterior predictive check, model comparison (LOO) and prior sensitivity, then what to conclude."""

from __future__ import annotations

import html
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr

from lcbayes.cv import compare_loo
from lcbayes.data.study import Study
from lcbayes.diagnostics import MAX_RHAT, MIN_ESS, failing_elements, hdi_columns, summarize
from lcbayes.models import create
from lcbayes.models.base import BayesModel, Conclusion
from lcbayes.plots import figure_of, plot_forest
from lcbayes.predictive_check import PPC_TAILS, predictive_statistics
from lcbayes.prior_check import prior_check
from lcbayes.prior_check import table as prior_check_table
from lcbayes.report.config import ModelEntry
from lcbayes.report.equations import docstring_html
from lcbayes.report.numbers import significant
from lcbayes.report.sensitivity import THRESHOLD, element_series, prior_sensitivity
from lcbayes.tables import HDI

SIDE_BY_SIDE_MAX = 24    # parameters with more elements stay out of the side-by-side estimates of the comparison
WEAK_IDENTIFICATION = 0.7   # posterior SD / prior SD from which an estimate is called weakly identified
SUMMARY_COLUMNS = ["mean", "sd", *hdi_columns(HDI), "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]


class FitClock:
    """Numbers the fits of a report (each model and each LOO variant) in its log lines and, from the second on,
    estimates the time left at the pace so far (the seconds since the report started per fit begun, prior and
    posterior checks included, times the fits still to run)."""

    def __init__(self, total: int, log: Callable[[str], None] = print):
        self.total, self.log, self.begun, self.started = total, log, 0, time.monotonic()

    def fitting(self, what: str) -> None:
        """Log ``what`` (the fit about to start) as fit k of the total, with the estimate."""
        self.begun += 1
        left = ""
        if self.begun > 1:
            pace = (time.monotonic() - self.started) / (self.begun - 1)
            left = f"; about {max(1, round(pace * (self.total - self.begun + 1) / 60))} min left at the pace so far"
        self.log(f"{what} [fit {self.begun} of {self.total}{left}]")


@dataclass
class ModelSection:
    """Everything the report shows of one model: ``results`` (JSON-ready key numbers),
    tables (DataFrames), figures (matplotlib figures with captions), text and warnings."""

    entry: ModelEntry
    model: BayesModel
    results: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, tuple[str, Any]] = field(default_factory=dict)
    extra_tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    extra_figures: list[tuple[str, Any]] = field(default_factory=list)
    conclusions: list[Conclusion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    comparison_text: str = ""
    prior_sd: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))   # per parameter element

    @property
    def options_table(self) -> pd.DataFrame:
        return pd.DataFrame({"value": [str(v) for v in self.model.options.values()]}, index=list(self.model.options))

    @property
    def priors_table(self) -> pd.DataFrame:
        return pd.DataFrame([{"parameter": k, "distribution": p.dist,
                              "arguments": ", ".join(f"{a} = {_numbers(v)}" for a, v in p.to_dict().items()
                                                     if a != "dist")}
                             for k, p in self.model.priors.items()])

    @property
    def checks(self) -> dict[str, bool]:
        """Each check of the model and whether it passed, for the summary at the top of the report: convergence,
        the prior and posterior predictive checks (no statistic in the tails), LOO (no Pareto k above 0.7) and prior
        sensitivity (nothing flagged)."""
        r = self.results
        return {"converged": bool(r["diagnostics"]["converged"]),
                "prior predictive": bool(r["prior_predictive"]["passed"]),
                "posterior predictive": all(PPC_TAILS[0] <= v["p_value"] <= PPC_TAILS[1]
                                            for v in r["posterior_predictive"].values()),
                "LOO": r["loo"]["pareto_k_above_0.7"] == 0,
                "prior sensitivity": all(not v["diagnosis"] for v in r["prior_sensitivity"].values())}

    @property
    def equations(self) -> str:
        """The model's equations and notes, from its module docstring, as HTML with MathML."""
        text = inspect.getdoc(inspect.getmodule(type(self.model))) or ""
        try:
            return docstring_html(text)
        except ValueError:        # a model of the user's whose docstring is not written for it: as plain text
            return f"<pre>{html.escape(text)}</pre>"


def _numbers(value: Any) -> str:
    """A prior argument as the report prints it: numbers to 3 significant digits, lists element by element."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_numbers(v) for v in value) + "]"
    return significant(value)


def analyse_model(entry: ModelEntry, study: Study, seed: int, prior_draws: int,
                  log: Callable[[str], None] = print, clock: FitClock | None = None) -> ModelSection:
    """Fit one model of a report and compute every section (see the module docstring); ``clock`` numbers the fits
    across the report (default: this model's own)."""
    clock = clock or FitClock(1 + len(entry.variants), log)
    model = create(entry.spec, study)
    section = ModelSection(entry, model)
    log(f"{entry.key}: prior predictive check ({prior_draws} draws)")
    _prior_predictive(section, prior_draws, seed)
    s = model.spec.sampler
    clock.fitting(f"{entry.key}: fitting ({s.backend}, {s.chains} chains x ({s.tune} tuning + {s.draws} draws), "
                  f"target_accept {s.target_accept})")
    model.fit()
    _diagnostics(section)
    content = model.report_content()
    _posterior(section, content.derived)
    log(f"{entry.key}: posterior predictive check, LOO, prior sensitivity")
    _posterior_predictive(section, seed)
    _loo(section)
    _compare(section, study, clock)
    _sensitivity(section)
    section.extra_figures, section.extra_tables = content.figures, content.tables
    section.conclusions = [qualified(section, c) for c in
                           content.conclusions + ([section.comparison_text] if section.comparison_text else [])]
    plt.close("all")
    return section


def _prior_predictive(section: ModelSection, draws: int, seed: int) -> None:
    """The two-sided prior predictive check (:mod:`lcbayes.prior_check`): its numbers per measure, a warning for each
    problem, and the outcome's simulated densities on its response range."""
    model = section.model
    prior = model.sample_prior_predictive(draws=draws, seed=seed)
    checks = prior_check(model.study, prior["prior_predictive"].to_dataset())
    parameters = prior["prior"].to_dataset()
    present = [n for n in model.population if n in parameters]
    section.prior_sd = element_series(parameters[present].std(("chain", "draw")))
    section.results["prior_predictive"] = {"draws": draws, "passed": all(c.passed for c in checks),
                                           "measures": {c.measure: c.to_dict() for c in checks}}
    section.tables["prior_predictive"] = prior_check_table(checks)
    section.warnings += [f"Prior predictive check: {problem}." for c in checks for problem in c.problems]
    scale = model.study.response_range(model.spec.outcome)
    ax = figure_of(az.plot_ppc_dist(prior, group="prior_predictive", num_samples=min(draws, 100),
                                    backend="matplotlib", figure_kwargs={"figsize": (7, 3.5)})).axes[0]
    ax.set_xlim(scale.low - scale.half, scale.high + scale.half)
    for bound in (scale.low, scale.high):
        ax.axvline(bound, color="0.4", linestyle=":", linewidth=1)
    section.figures["prior_predictive"] = (
        f"Prior predictive check: densities of {model.spec.outcome} in datasets drawn from the priors (blue) against "
        f"the observed data (black); dotted lines mark the response range {scale.low:g}-{scale.high:g}.", ax.figure)


def _diagnostics(section: ModelSection) -> None:
    model, diag = section.model, section.model.diagnostics()
    section.results["diagnostics"] = {
        "converged": diag.passed, "divergences": diag.divergences, "min_ebfmi": diag.min_ebfmi,
        "max_r_hat": float(diag.table["max_r_hat"].max()), "min_ess_bulk": float(diag.table["min_ess_bulk"].min()),
        "min_ess_tail": float(diag.table["min_ess_tail"].min())}
    section.tables["diagnostics"] = diag.table.drop(columns="hint")
    if not diag.passed:
        section.warnings += [f"Convergence: {h}" for h in diag.hints()]
    worst = diag.table.sort_values("min_ess_bulk")["group"].head(3).tolist()
    figure = figure_of(az.plot_rank(model.fitted(), var_names=worst, backend="matplotlib",
                                    figure_kwargs={"figsize": (9, 2.2 * len(worst))}))
    section.figures["rank"] = (
        f"Rank ECDF plots of the three parameter groups with the lowest bulk ESS ({', '.join(worst)}): with mixed "
        "chains the ECDF of every chain's ranks stays inside the simultaneous band of uniform ranks.", figure)


def _posterior(section: ModelSection, derived: xr.Dataset) -> None:
    model = section.model
    for key, name, draws in (("parameters", "parameter", model.fitted()["posterior"].to_dataset()[model.population]),
                             ("derived", "derived quantity", derived)):
        table = summarize(draws, hdi_prob=HDI)[SUMMARY_COLUMNS] \
            if len(draws.data_vars) else pd.DataFrame(columns=SUMMARY_COLUMNS)
        section.tables[key], section.results[key] = table, _records(table)
        bad = table[failing_elements(table)]
        if len(bad):
            section.warnings.append(f"{len(bad)} {name} element(s) miss R-hat <= {MAX_RHAT} or ESS >= {MIN_ESS}: "
                                    + ", ".join(bad.index[:8]) + (" ..." if len(bad) > 8 else ""))
    groups: dict[str, list[str]] = {}
    for name in model.population:
        groups.setdefault(model.parameter_role(name), []).append(name)
    axes = plot_forest(model.fitted(), groups)
    section.figures["forest"] = ("Posterior means (dots) with 50% (thick) and 90% (thin) HDIs of the population "
                                 "parameters, one panel per role (" + ", ".join(groups) + "); parameters of one role "
                                 "on very different scales get a panel each.", axes[0].figure)


def _posterior_predictive(section: ModelSection, seed: int) -> None:
    """Statistics of the observed outcome against their replicates with their p-values
    (:func:`~lcbayes.predictive_check.predictive_statistics`), a warning for each in the tails, and the ECDFs of
    observed and replicated scores (suited to discrete scale means, unlike a density)."""
    model = section.model
    idata = model.sample_posterior_predictive(seed=seed)
    statistics = predictive_statistics(model, idata)
    section.tables["ppc"] = table = statistics.drop(columns="misfit")
    section.results["posterior_predictive"] = {str(k): {c: float(v) for c, v in row.items()}
                                               for k, row in table.iterrows()}
    extreme = statistics[statistics["misfit"]]
    if len(extreme):
        section.warnings.append("Posterior predictive check: the data's " + ", ".join(extreme.index)
                                + f" lie in the tails of the replicated data (p < {PPC_TAILS[0]} or > {PPC_TAILS[1]}).")
    figure = figure_of(az.plot_ppc_dist(idata, var_names=[model.spec.outcome], kind="ecdf", num_samples=100,
                                        backend="matplotlib", figure_kwargs={"figsize": (7, 3.5)}))
    section.figures["ppc"] = (
        f"Posterior predictive check: empirical CDF of {model.spec.outcome} (black) against the ECDFs of 100 "
        "replicated data sets (an ECDF shows a discrete scale's steps, which a density smooths over).", figure)


def _loo(section: ModelSection) -> None:
    loo = az.loo(section.model.fitted(), pointwise=True)
    k = np.asarray(loo.pareto_k)
    section.results["loo"] = {"elpd_loo": float(loo.elpd), "se": float(loo.se), "p_loo": float(loo.p),
                              "pareto_k_above_0.7": int((k > 0.7).sum()), "n": int(k.size),
                              "unit": "participant (all their sessions; participant-level quantities integrated out)"}
    if (k > 0.7).any():
        section.warnings.append(f"LOO: {(k > 0.7).sum()} of {k.size} Pareto k values above 0.7; the "
                                "PSIS estimate is unreliable for them (moment matching or K-fold would help).")


def _compare(section: ModelSection, study: Study, clock: FitClock) -> None:
    entry, model = section.entry, section.model
    if not entry.variants:
        return
    fits, models = {entry.label: model.fitted()}, {entry.label: model}
    for variant in entry.variants:
        clock.fitting(f"{entry.key}: refitting variant '{variant.label}' for the LOO comparison")
        other = type(model)(study, entry.variant_spec(variant))
        other.fit()
        checked = other.diagnostics()
        if not checked.passed:
            section.warnings.append(f"Comparison variant '{variant.label}' did not pass the convergence checks: "
                                    + "; ".join(checked.hints()))
        fits[variant.label], models[variant.label] = other.fitted(), other
    section.tables["comparison_estimates"] = estimates = side_by_side(models)
    section.results["comparison_estimates"] = {str(k): {str(c): v for c, v in row.items()}
                                               for k, row in estimates.iterrows()}
    section.tables["comparison"] = table = compare_loo(fits)
    compared = ("elpd", "p", "elpd_diff", "dse", "weight")
    section.results["comparison"] = {str(label): {"rank": int(r["rank"]), **{k: float(r[k]) for k in compared}}
                                     for label, r in table.iterrows()}
    (best, second), runner = table.index[:2], table.iloc[1]
    verdict = ("a clear difference (more than 2 SE)." if -runner["elpd_diff"] > 2 * runner["dse"]
               else "within 2 SE, so the models predict about equally well.")
    section.comparison_text = (f"LOO (leaving out one participant at a time, with all their sessions) prefers "
                               f"'{best}' over '{second}' by {-runner['elpd_diff']:.1f} elpd "
                               f"(SE {runner['dse']:.1f}); {verdict}")


def side_by_side(models: dict[str, BayesModel], max_elements: int = SIDE_BY_SIDE_MAX) -> pd.DataFrame:
    """Posterior mean and 90% HDI, as text, of every population parameter element of any of ``models`` (rows) per
    model (columns; empty where a model lacks the element). Parameters with more than ``max_elements`` elements (e.g.
    thresholds per session) are left out; the fits hold them."""
    columns = {}
    for label, model in models.items():
        post = model.fitted()["posterior"]
        names = [v for v in model.population if post[v].size // (post.sizes["chain"] * post.sizes["draw"])
                 <= max_elements]
        lower, upper = hdi_columns(HDI)
        table = summarize(model.fitted(), names, HDI)
        columns[label] = {k: f"{r['mean']:.3g} [{r[lower]:.3g}, {r[upper]:.3g}]" for k, r in table.iterrows()}
    return pd.DataFrame(columns).fillna("")


def _sensitivity(section: ModelSection) -> None:
    section.tables["sensitivity"] = table = prior_sensitivity(section.model)
    section.results["prior_sensitivity"] = {k: {"prior": float(r["prior"]), "likelihood": float(r["likelihood"]),
                                                "diagnosis": r["diagnosis"]} for k, r in table.iterrows()}
    flagged = table[table["diagnosis"] != ""]
    if len(flagged):
        listed = "; ".join(f"{k} ({r['diagnosis']})" for k, r in flagged.iterrows())
        section.warnings.append(f"Prior sensitivity (power-scaling >= {THRESHOLD}): {listed}. Report these with "
                                "their priors, or check them with refits under wider priors.")


def _elements_of(index: pd.Index, name: str) -> list[str]:
    """The rows of a summary (``index``: ``name[label, ...]``) that ``name`` picks: the element itself, or every
    element of a variable."""
    return [str(k) for k in index if k == name or str(k).startswith(name + "[")]


def qualified(section: ModelSection, conclusion: Conclusion | str) -> Conclusion:
    """``conclusion`` with the caveats its checks raise added (a plain string: a conclusion that rests on no
    estimate): provisional where the fit or an element it rests on failed the convergence checks; prior-sensitive or
    weakly identified where power-scaling flags an element it rests on, or where its posterior SD is at least
    :data:`WEAK_IDENTIFICATION` of its prior SD (the data add little)."""
    c = Conclusion(conclusion) if isinstance(conclusion, str) else conclusion
    caveats, provisional = list(c.caveats), False
    if not section.results["diagnostics"]["converged"]:
        caveats.append("the fit did not pass every convergence check (see the diagnostics)")
        provisional = True
    summaries = pd.concat([section.tables["parameters"], section.tables.get("derived", pd.DataFrame())])
    unconverged = set(summaries.index[failing_elements(summaries)])
    sensitivity = section.tables.get("sensitivity", pd.DataFrame(columns=["diagnosis"]))
    for name in c.rests_on:
        failing = [k for k in _elements_of(summaries.index, name) if k in unconverged]
        if failing:
            caveats.append(f"not converged: {', '.join(failing[:3])}{' ...' if len(failing) > 3 else ''} miss "
                           f"R-hat <= {MAX_RHAT} or ESS >= {MIN_ESS}")
            provisional = True
        for k in _elements_of(sensitivity.index, name):
            diagnosis = sensitivity.loc[k, "diagnosis"]
            if diagnosis == "prior-data conflict":
                caveats.append(f"prior-sensitive: {k} (power-scaling: prior-data conflict)")
            elif diagnosis:
                caveats.append(f"weakly identified: {k} (power-scaling: {diagnosis})")
        for k in _elements_of(section.prior_sd.index, name):
            ratio = float(summaries.loc[k, "sd"] / section.prior_sd[k]) if k in summaries.index else 0.0
            if section.prior_sd[k] > 0 and ratio >= WEAK_IDENTIFICATION:
                caveats.append(f"weakly identified: the posterior SD of {k} is {ratio:.0%} of its prior SD")
    return Conclusion(c.text, c.rests_on, tuple(dict.fromkeys(caveats)), provisional)


def _records(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """Summary rows as {element: {statistic: value}} for results.json."""
    return {str(k): {c: float(v) for c, v in row.items()} for k, row in table.iterrows()}
