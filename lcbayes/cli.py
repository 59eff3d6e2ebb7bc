"""The ``lcbayes`` command line: simulate studies, check data, tabulate agreement, fit models,
build reproducible reports, run power analyses and simulation-based calibration."""

from __future__ import annotations

import functools
import json
import logging
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from lcbayes.agreement import index_labels
from lcbayes.data.io import atomic_path, write_table
from lcbayes.errors import ConfigError, LcbayesError, LcbayesWarning, surfaced_interrupts

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Bayesian models for inter-organizational learning communities.")

# Warnings the commands silence (inside each command, not process-wide): PyTensor's C backend
# without BLAS, which lcbayes uses only for small post-processing graphs.
QUIET_WARNINGS = ("PyTensor could not link to a BLAS",)
# SBC studies draw from 2 organizations per community by default: with the Design's 3-5 per community each
# then recurs in about two communities, identifying the crossed organization effect (a pool of 30 would not).
SBC_ORGANIZATIONS_PER_COMMUNITY = 2

DataArg = Annotated[Path, typer.Argument(help="Study table (.csv or .parquet), one row per participant x session.")]
RolesOpt = Annotated[Path, typer.Option("--roles", "-r", help="Roles file (TOML) mapping columns to roles.")]


# exit statuses: 1 a result that fails its check (verify), 2 bad input or configuration (an lcbayes error; also
# the command line's own usage errors), 3 a fit or report that fails its convergence checks, 130 stopped by Ctrl-C or
# SIGTERM
INPUT_ERROR, UNCONVERGED, INTERRUPTED = 2, 3, 130
_debug = False
# whether a command printed its "interrupted: ..." line (lcbayes.main prints one for an interrupt that typer turned
# into a silent status 130 before any command ran)
interrupt_reported = False


def _print_version(value: bool) -> None:
    if value:
        from lcbayes import __version__

        typer.echo(f"lcbayes {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an lcbayes error.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the lcbayes version and exit.")] = False,
) -> None:
    """Bayesian models for inter-organizational learning communities."""
    global _debug
    _debug = debug


def _command(**options) -> Callable[[Callable], Callable]:
    """Register a command (``options``: those of ``app.command``) that runs with :data:`QUIET_WARNINGS` silenced (for
    its duration only) and prints lcbayes errors as one-line messages (a traceback only with ``--debug``), exiting with
    status 2. Ctrl-C and SIGTERM stop it with one line and status 130 (an interrupted fit raises before anything is
    saved from it)."""
    def register(command: Callable) -> Callable:
        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            previous = signal.signal(signal.SIGTERM, _interrupt)
            hidden: list[str] = []
            pymc_log, root = logging.getLogger("pymc"), logging.getLogger()
            level = pymc_log.level
            # PyMC's INFO lines ("Sampling: [...]") say what lcbayes' own lines already say. Importing pymc sets its
            # logger to INFO unless the root logger has a handler, so give the root one (WARNING and above, to
            # stderr, as Python prints them anyway) before pymc is imported, and quiet pymc if it already is.
            handler = logging.StreamHandler() if not root.handlers else None
            if handler is not None:
                root.addHandler(handler)
            pymc_log.setLevel(logging.INFO if _debug else logging.WARNING)
            try:
                with warnings.catch_warnings(), surfaced_interrupts("running"):
                    warnings.showwarning = functools.partial(_show_warning, hidden)
                    for message in QUIET_WARNINGS:
                        warnings.filterwarnings("ignore", message=message)
                    return command(*args, **kwargs)
            except LcbayesError as err:
                if _debug:
                    raise
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(INPUT_ERROR) from None
            except KeyboardInterrupt as err:
                global interrupt_reported
                interrupt_reported = True
                typer.echo(f"interrupted: {str(err) or 'stopped by Ctrl-C before it finished'} (nothing half-written "
                           "is left)", err=True)
                raise typer.Exit(INTERRUPTED) from None
            finally:
                signal.signal(signal.SIGTERM, previous)
                pymc_log.setLevel(level)
                if handler is not None:
                    root.removeHandler(handler)
                if hidden:
                    counts = ", ".join(f"{n} from {source}" for source, n in Counter(hidden).most_common())
                    typer.echo(f"note: {len(hidden)} library warning(s) not shown ({counts}); lcbayes --debug "
                               "shows them.", err=True)

        return app.command(**options)(wrapper)

    return register


def _show_warning(hidden: list[str], message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file=None, line: str | None = None) -> None:
    """lcbayes warnings as one ``warning:`` line on stderr; other libraries' warnings counted in ``hidden`` by the
    package that raised them (shown as Python shows them with ``--debug``)."""
    if issubclass(category, LcbayesWarning):
        typer.echo(f"warning: {message}", err=True)
    elif _debug:
        typer.echo(warnings.formatwarning(message, category, filename, lineno, line), err=True, nl=False)
    else:
        parts = Path(filename).parts
        hidden.append(parts[parts.index("site-packages") + 1] if "site-packages" in parts else Path(filename).stem)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handler: stop as Ctrl-C does."""
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


def _count(text: str) -> int | tuple[int, int]:
    """'12' -> 12, '10-14' -> (10, 14)."""
    lo, sep, hi = text.partition("-")
    try:
        return (int(lo), int(hi)) if sep else int(lo)
    except ValueError:
        raise typer.BadParameter(f"expected a number like 12 or a range like 10-14, got {text!r}") from None


def _show(df: pd.DataFrame) -> str:
    with pd.option_context("display.max_rows", 500, "display.width", 160, "display.max_columns", 30):
        return df.to_string(index=False, float_format=lambda v: f"{v:.3f}")


@_command()
def simulate(
    out: Annotated[Path, typer.Option(help="Where to write the table (.csv or .parquet).")],
    truth: Annotated[Path | None, typer.Option(help="Where to write the true values (JSON).")] = None,
    roles_out: Annotated[Path | None, typer.Option(help="Where to write the roles file (TOML).")] = None,
    communities: Annotated[int, typer.Option(help="Number of learning communities.")] = 20,
    participants: Annotated[str, typer.Option(help="Participants per community: 12, or a range 10-14.")] = "12",
    sessions: Annotated[int, typer.Option(help="Sessions per community.")] = 6,
    organizations: Annotated[int, typer.Option(help="Organizations in the pool that communities draw from.")] = 30,
    orgs_per_community: Annotated[str, typer.Option(help="Organizations per community: 4, or a range 3-5.")] = "3-5",
    attrition: Annotated[float, typer.Option(help="Per-session probability of dropping out for good.")] = 0.05,
    late_join: Annotated[float, typer.Option(help="Share of participants joining at session 2 or 3.")] = 0.10,
    missed: Annotated[float, typer.Option(help="Probability of missing a session in between.")] = 0.10,
    predictor_missing: Annotated[float, typer.Option(help="Share of missing time-varying predictor values.")] = 0.0,
    likert: Annotated[int | None, typer.Option(
        help="Measure constructs with k-point items (omit: continuous).")] = None,
    seed: Annotated[int, typer.Option(help="Root seed; the same seed gives the same table.")] = 0,
) -> None:
    """Draw a synthetic study from the three generative models (see lcbayes.data.simulate)."""
    from lcbayes.data.simulate import Design, simulate_study

    try:
        design = Design(communities=communities, participants=_count(participants), sessions=sessions,
                        organizations=organizations, orgs_per_community=_count(orgs_per_community), attrition=attrition,
                        late_join=late_join, missed=missed, predictor_missing=predictor_missing, likert=likert)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    sim = simulate_study(design, seed=seed)
    written = [write_table(sim.table, out)]
    if truth is not None:
        written.append(sim.truth.to_json(truth))
    if roles_out is not None:
        sim.roles.to_toml(roles_out)
        written.append(roles_out)
    typer.echo(f"{len(sim.table)} rows; wrote {', '.join(map(str, written))}")


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]


@_command()
def example(folder: Annotated[Path, typer.Argument(help="A new or empty folder for the example project.")]) -> None:
    """Write the bundled example project (data/, models/, reports/) to FOLDER, ready to run: `lcbayes check
    data/example_study.csv --roles data/example_roles.toml`, `lcbayes fit models/climate_growth.toml ...` or the main
    job, `lcbayes report reports/example.toml`."""
    from lcbayes.examples import write_example

    written = write_example(folder)
    typer.echo(f"wrote the example project to {written}: data/, models/, reports/. Next, in that folder:\n"
               "  lcbayes check data/example_study.csv --roles data/example_roles.toml\n"
               "  lcbayes report reports/example.toml")


@_command()
def check(data: DataArg, roles: RolesOpt, as_json: JsonOpt = False) -> None:
    """Validate a study table against its roles; print the design summary and scale reliability. With --json: one
    object, {"valid": true, "summary": ..., "reliability": [...]}, or {"valid": false, "problems": [...]} (each with
    column, message, fix, rows and n_rows) and status 2."""
    from lcbayes.data.study import Study
    from lcbayes.data.summary import records
    from lcbayes.errors import StudyValidationError

    try:
        study = Study.from_path(data, roles)
    except StudyValidationError as err:
        if not as_json:
            raise
        problems = [{"column": p.column, "message": p.message, "fix": p.fix, "rows": [str(r) for r in p.rows],
                     "n_rows": p.n_rows} for p in err.problems]
        typer.echo(json.dumps({"data": str(data), "valid": False, "problems": problems}, indent=1))
        raise typer.Exit(INPUT_ERROR) from None
    reliability = study.reliability()
    pooled = reliability[reliability["session"] == "all"].drop(columns="session") if len(reliability) else reliability
    if as_json:
        typer.echo(json.dumps({"data": str(data), "valid": True, "summary": study.summary().to_dict(),
                               "reliability": records(pooled)}, indent=1))
        return
    typer.echo(f"{data}: valid\n\n{study.summary()}")
    if len(pooled):
        typer.echo("\nscale reliability (Cronbach's alpha, McDonald's omega; within- and between-person omega):")
        typer.echo(_show(pooled))


@_command(help=f"Climate table: per community x session the mean (strength), SD, n and the agreement "
              f"indices ({index_labels()}; single-item or multi-item ones as the measure has one "
              "or several items); then ICC(1) and ICC(2) per session.")
def agreement(
    data: DataArg,
    roles: RolesOpt,
    measure: Annotated[str | None, typer.Option(help="Variable or scale (default: the first scale).")] = None,
    by: Annotated[str, typer.Option(help="Grouping, comma-separated.")] = "community,session",
    null: Annotated[str, typer.Option(help="Null distribution: uniform, slight_skew, moderate_skew, "
                                           "heavy_skew, triangular, normal.")] = "uniform",
    out: Annotated[Path | None, typer.Option(help="Also write the table (.csv or .parquet).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Climate table and ICCs of a measure (help text: from the registry lcbayes.agreement.INDICES). With --json:
    one object {"measure", "by", "null", "table": [...], "icc": [...]} (NaN as null)."""
    from lcbayes.agreement import climate_table, study_icc
    from lcbayes.data.study import Study
    from lcbayes.data.summary import records

    study = Study.from_path(data, roles)
    measure = measure if measure is not None else next(iter(study.roles.scales), None)
    if measure is None:
        raise typer.BadParameter("the roles define no scale; name a variable with --measure")
    groups = [g.strip() for g in by.split(",") if g.strip()]
    table = climate_table(study, measure, by=groups, null=null)
    icc = (study_icc(study, measure)[["session", "icc1", "icc2", "f", "df_between", "df_within", "p_value", "k"]]
           if study.roles.level_of(measure) == "session" else None)
    written = write_table(table, out) if out is not None else None
    if as_json:
        typer.echo(json.dumps({"measure": measure, "by": groups, "null": null, "table": records(table),
                               "icc": records(icc) if icc is not None else None,
                               "written": str(written) if written else None}, indent=1))
        return
    typer.echo(f"climate table of '{measure}' by {', '.join(groups)} ({null} null):\n{_show(table)}")
    if icc is not None:
        typer.echo(f"\nICC of '{measure}' (communities as groups) per session:\n{_show(icc)}")
    if written is not None:
        typer.echo(f"\nwrote {written}")


@_command()
def fit(
    spec: Annotated[Path, typer.Argument(help="Model specification (TOML), e.g. models/climate_growth.toml.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Study table (.csv or .parquet).")],
    roles: RolesOpt,
    out: Annotated[Path, typer.Option(help="Folder for the fitted netCDF and the summary table.")] = Path("fits"),
    backend: Annotated[str | None, typer.Option(help="Override the spec's sampler back end.")] = None,
    chains: Annotated[int | None, typer.Option(help="Override the spec's number of chains.")] = None,
    draws: Annotated[int | None, typer.Option(help="Override the spec's draws per chain.")] = None,
    tune: Annotated[int | None, typer.Option(help="Override the spec's tuning steps per chain.")] = None,
    target_accept: Annotated[float | None, typer.Option(help="Override the spec's target acceptance rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the spec's seed.")] = None,
    progress: Annotated[bool, typer.Option(help="Show the sampler's progress bar.")] = True,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 even when the fit fails its convergence checks (default: status 3, after writing).")] = False,
) -> None:
    """Fit a model to a study; write <out>/<model>.nc (InferenceData with provenance) and
    <out>/<model>_summary.csv, and print the summary and convergence verdicts. Exits with status 3 when the fit fails
    its convergence checks (the files are written; --allow-unconverged exits 0)."""
    from lcbayes.data.study import Study
    from lcbayes.diagnostics import hdi_columns
    from lcbayes.models import model_class
    from lcbayes.models.spec import read_spec

    mapping = read_spec(spec)
    model_cls = model_class(mapping.get("model"))   # an unknown model fails before the data are read
    name = model_cls.name
    model = model_cls(Study.from_path(data, roles), mapping)
    overrides = {"backend": backend, "chains": chains, "draws": draws, "tune": tune, "target_accept": target_accept,
                 "seed": seed}
    model.fit(progress=progress, **{k: v for k, v in overrides.items() if v is not None})
    path = model.save(out / f"{name}.nc")
    summary = model.summary()
    with atomic_path(out / f"{name}_summary.csv") as partial:
        summary.to_csv(partial)
    typer.echo(f"{name} fitted to {data}\n")
    typer.echo(summary[["mean", "sd", *hdi_columns(), "ess_bulk", "ess_tail", "r_hat"]].to_string(
        float_format=lambda v: f"{v:.3f}"))
    diagnostics = model.diagnostics()
    typer.echo(f"\n{diagnostics}\n\nwrote {path} and {out / f'{name}_summary.csv'}")
    if not diagnostics.passed and not allow_unconverged:
        typer.echo("the fit failed its convergence checks (above): status 3. Fix: follow the hints, or pass "
                   "--allow-unconverged to accept it.", err=True)
        raise typer.Exit(UNCONVERGED)


@_command()
def cv(
    specs: Annotated[list[Path], typer.Argument(help="Model specification(s) (TOML); several are compared.")],
    data: Annotated[Path, typer.Option("--data", "-d", help="Study table (.csv or .parquet).")],
    roles: RolesOpt,
    folds: Annotated[int, typer.Option(help="Folds of communities (each refit leaves one out).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the fold split and the refits.")] = 0,
    workers: Annotated[int | None, typer.Option(
        help="Local worker processes (1 = this process; default: cores // chains).")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for <model>_kfold.csv (elpd per community).")] = Path("cv"),
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Exact K-fold cross-validation leaving out whole communities: for each spec, FOLDS refits (compiled once), each
    scored on the communities it left out; prints elpd with its SE, and with several specs their comparison."""
    from lcbayes.cv import KFold, compare, kfold
    from lcbayes.data.study import Study
    from lcbayes.models import create
    from lcbayes.models.spec import read_spec

    study = Study.from_path(data, roles)
    results: dict[str, KFold] = {}
    for spec in specs:
        model = create(read_spec(spec), study)
        result = kfold(model, folds, seed, workers, scheduler, progress=not quiet)
        label = spec.stem if spec.stem not in results else f"{spec.stem}_{len(results) + 1}"
        results[label] = result
        path = out / f"{label}_kfold.csv"
        write_table(result.pointwise, path)
        typer.echo(f"{label}: {result}\nwrote {path}")
    if len(results) > 1:
        typer.echo("\n" + compare(results).to_string(float_format=lambda v: f"{v:.1f}"))


@_command()
def report(
    config: Annotated[Path, typer.Argument(help="Report configuration (TOML), e.g. reports/example.toml.")],
    out: Annotated[Path | None, typer.Option(help="Output folder; default: the configuration's out.")] = None,
    verify: Annotated[Path | None, typer.Option(
        help="Folder of an earlier report: rerun and compare its results.json with the new one.")] = None,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 even when a model fails its convergence checks (default: status 3, after writing).")] = False,
) -> None:
    """Validate the data, tabulate agreement, fit every model of CONFIG and write a self-contained report.html,
    results.json, manifest.json and fits/ to the output folder. With --verify DIR the rerun is compared with DIR's
    results (exit status 1 if it does not reproduce them; the rerun goes to DIR-rerun unless --out names another
    folder, never into DIR). The folder is written whole or not at all, and only a new, empty or earlier report's
    folder is replaced. A report written with a model that fails its convergence checks exits with status 3
    (--allow-unconverged: 0)."""
    from lcbayes.report.build import build_report
    from lcbayes.report.config import ReportConfig
    from lcbayes.report.verify import read_outputs
    from lcbayes.report.verify import verify as compare

    parsed = ReportConfig.from_path(config)
    earlier = read_outputs(verify) if verify is not None else None
    target = out or (verify.parent / f"{verify.name}-rerun" if verify is not None else parsed.out)
    if verify is not None and target.resolve() == verify.resolve():
        raise ConfigError(f"--out '{out}' is the report under audit (--verify): the rerun would replace it. Fix: give "
                          "the rerun another folder, or leave out --out (the rerun then goes to "
                          f"'{verify.name}-rerun').")
    start = time.monotonic()

    def log(line: str) -> None:   # each step with the time since the start
        typer.echo(f"[{time.strftime('%H:%M:%S', time.gmtime(time.monotonic() - start))}] {line}", err=True)

    typer.echo(f"report: {build_report(parsed, target, log=log)}")
    if earlier is not None:
        outcome = compare(earlier, read_outputs(target))
        with atomic_path(target / "verify.csv") as partial:
            outcome.differences.to_csv(partial)
        typer.echo(f"{outcome}\ndifferences: {target / 'verify.csv'}")
        if not outcome.passed:
            raise typer.Exit(1)
    unconverged = _unconverged(json.loads((target / "results.json").read_text()))
    if unconverged and not allow_unconverged:
        typer.echo(f"{', '.join(unconverged)} failed the convergence checks (see the report): status 3. Fix: follow "
                   "the report's hints (more draws or tuning), or pass --allow-unconverged to accept.", err=True)
        raise typer.Exit(UNCONVERGED)


def _unconverged(results: dict) -> list[str]:
    """The models of a report's results whose diagnostics did not pass."""
    return [key for key, model in results.get("models", {}).items()
            if not model.get("diagnostics", {}).get("converged", True)]


@_command()
def power(
    plan: Annotated[Path, typer.Argument(help="Power plan (TOML), e.g. benchmarks/power_plan.toml.")],
    out: Annotated[Path | None, typer.Option(help="Results folder; default power/<plan name>.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Local worker processes (1 = this process; default: cores // chains).")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler.")] = None,
    power_level: Annotated[float, typer.Option("--target-power", help="Power to look for in the designs.")] = 0.8,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Run (or resume) a power plan and summarise it: power with exact 95% intervals, bias,
    RMSE, coverage, interval width and diagnostic failures per design, scenario, target and
    rule; writes <out>/summary.csv and <out>/power_<target>.png."""
    import matplotlib.pyplot as plt

    from lcbayes.compat import agg_backend
    from lcbayes.power import Plan, plot_power_curve, run, smallest_design, summarize
    from lcbayes.power.summary import design_columns

    parsed = Plan.from_path(plan)
    out = out or Path("power") / plan.stem
    summary = summarize(run(parsed, str(out), workers=workers, scheduler=scheduler, progress=not quiet).load())
    write_table(summary, out / "summary.csv")
    typer.echo(_show(summary.drop(columns=["cell", "recompiled", "mean_fit_seconds"])))
    x = next((c for c in ("communities", "participants", "sessions") if c in summary and summary[c].nunique() > 1),
             None)   # the first design axis the plan varies, if any
    shown = design_columns(summary) + ["scenario"]
    for target in parsed.targets:
        for rule in target.rules:
            best = smallest_design(summary, target.parameter, rule.name, power_level)
            found = "none reaches it" if best is None else ", ".join(f"{c}={best[c]}" for c in shown)
            typer.echo(f"\n{target.parameter} / {rule.name}: smallest design with power >= {power_level}: {found}")
        if x is not None:
            with agg_backend():
                ax = plot_power_curve(summary, target.parameter, target.rules[0].name, x=x, target_power=power_level)
                with atomic_path(out / f"power_{target.variable}.png") as partial:
                    ax.figure.savefig(partial, format="png", dpi=120, bbox_inches="tight")
                plt.close(ax.figure)
    typer.echo(f"\nwrote {out / 'summary.csv'}")


@_command()
def sbc(
    spec: Annotated[Path, typer.Argument(help="Model specification (TOML); its sampler settings are used.")],
    communities: Annotated[int, typer.Option(help="Communities per simulated study.")] = 8,
    participants: Annotated[int, typer.Option(help="Participants per community.")] = 6,
    sessions: Annotated[int, typer.Option(help="Sessions.")] = 5,
    organizations: Annotated[int | None, typer.Option(
        help=f"Organizations the communities draw from (default: {SBC_ORGANIZATIONS_PER_COMMUNITY} per community, "
             "so that each recurs in about two communities).")] = None,
    replicates: Annotated[int, typer.Option(help="Prior draws (replicates).")] = 100,
    seed: Annotated[int, typer.Option(help="Root seed.")] = 1,
    min_ess: Annotated[float, typer.Option(help="ESS a fit needs to pass its diagnostics.")] = 400,
    out: Annotated[Path | None, typer.Option(help="Results folder; default sbc/<spec name>.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Local worker processes (1 = this process; default: cores // chains).")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Simulation-based calibration of a model (resumable): ranks of prior-drawn true values
    among posterior draws; writes <out>/sbc.csv and <out>/sbc_ecdf.png and prints, per
    parameter, whether the rank ECDF stays inside the simultaneous 95% band."""
    import matplotlib.pyplot as plt

    from lcbayes.compat import agg_backend
    from lcbayes.models.spec import read_spec
    from lcbayes.power import Plan, run
    from lcbayes.power.sbc import plot_sbc, sbc_check, sbc_replicate

    mapping = read_spec(spec)
    raw = {"model": mapping.get("model"), "spec": mapping, "replicates": replicates, "seed": seed, "min_ess": min_ess,
           "design": {"communities": communities, "participants": participants, "sessions": sessions,
                      "organizations": organizations or SBC_ORGANIZATIONS_PER_COMMUNITY * communities}}
    plan = Plan.parse(raw, require_targets=False)
    out = out or Path("sbc") / spec.stem
    results = run(plan, str(out), workers=workers, scheduler=scheduler, progress=not quiet,
                  task=sbc_replicate, kind="sbc").load()
    check = sbc_check(results)
    write_table(results, out / "sbc.csv")
    with agg_backend():
        figure = plot_sbc(results)
        with atomic_path(out / "sbc_ecdf.png") as partial:
            figure.savefig(partial, format="png", dpi=110)
        plt.close(figure)
    typer.echo(f"{_show(check)}\n\n{int(check['inside_band'].sum())} of {len(check)} parameters inside the band; "
               f"wrote {out / 'sbc.csv'}")


if __name__ == "__main__":
    app()
