"""``lcbayes report``: validate the data, tabulate agreement, fit every model of a report configuration and write
``report.html`` (self-contained), ``results.json`` (the key numbers; byte-identical for the same configuration, data,
seed and versions), ``manifest.json`` (provenance) and ``fits/<model>.nc`` to the output folder.

The folder is built beside its destination and renamed into place when everything is written, so an interrupted or
failed run leaves the earlier report untouched and nothing half-written; lcbayes replaces only a folder that is new,
empty or an earlier report's (marked by :data:`MARKER`)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcbayes.agreement import climate_table, study_icc
from lcbayes.agreement import per_session as agreement_per_session
from lcbayes.compat import agg_backend
from lcbayes.data.study import Study
from lcbayes.errors import ConfigError
from lcbayes.report.config import ReportConfig, sha256_file
from lcbayes.report.html import render
from lcbayes.report.manifest import manifest
from lcbayes.report.model_section import FitClock, ModelSection, analyse_model
from lcbayes.report.verify import OUTPUTS

RESULTS, MANIFEST, HTML = "results.json", "manifest.json", "report.html"
MARKER = ".lcbayes-report"   # marks a folder as a report's, which the next run may replace


def build_report(config: ReportConfig, out: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Run the whole analysis of ``config`` and write its outputs to ``out`` (default:
    the configuration's ``out``); returns the path of the HTML report. Figures are drawn
    with matplotlib's Agg backend; the caller's backend is back afterwards."""
    out = Path(out or config.out)
    claim(out)
    building = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    try:
        _build(config, building, log)
        (building / MARKER).write_text("written by lcbayes report; the folder is replaced by the next run\n")
        replace_folder(building, out)
    except BaseException:          # an error or an interrupt: the earlier report, if any, stays as it was
        shutil.rmtree(building, ignore_errors=True)
        raise
    log(f"wrote {out / HTML}, {out / RESULTS} and {out / MANIFEST}")
    return out / HTML


def claim(out: Path) -> None:
    """Check that lcbayes may (re)write the report folder ``out``: new, empty, or an earlier report's (its
    :data:`MARKER` file); a typed error otherwise, so that no folder of the user's is overwritten."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"the report folder '{out}' is a file. Fix: pass a folder path with --out (or out = "
                          "\"...\" in the configuration).")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        first = sorted(p.name for p in out.iterdir())[0]
        raise ConfigError(f"'{out}' holds files that no lcbayes report wrote (e.g. '{first}'), and a report replaces "
                          "its whole folder. Fix: choose a new or empty folder with --out.")


def replace_folder(new: Path, out: Path) -> None:
    """Move the finished folder ``new`` to ``out`` (renames on one file system: a reader sees the old report or the
    new one, never a mixture); an earlier report there is removed."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _build(config: ReportConfig, out: Path, log: Callable[[str], None]) -> None:
    with agg_backend():
        started = time.perf_counter()
        log(f"validating {config.data}")
        study = Study.from_path(config.data, config.roles)
        data = data_section(study, config)
        sections: list[ModelSection] = []
        clock = FitClock(sum(1 + len(entry.variants) for entry in config.models), log)
        for entry in config.models:
            sections.append(analyse_model(entry, study, config.seed, config.prior_draws, log, clock))
            sections[-1].model.save(out / "fits" / f"{entry.key}.nc")
        power = pd.read_csv(config.power / "summary.csv") if config.power is not None else None
        write_json(out / RESULTS, {"title": config.title, "data": data["results"],
                                   "models": {s.entry.key: s.results for s in sections}})
        prov = manifest(config, {s.entry.key: _model_provenance(s) for s in sections})
        prov["elapsed_seconds"] = round(time.perf_counter() - started, 1)
        (out / HTML).write_text(render(config, data, sections, power, prov), encoding="utf-8")
        prov["outputs"] = {name: sha256_file(out / name) for name in OUTPUTS}   # what --verify checks first
        write_json(out / MANIFEST, prov)
        log(f"finished in {prov['elapsed_seconds']:.0f} s")


def data_section(study: Study, config: ReportConfig) -> dict[str, Any]:
    """Design summary, reliability, the agreement (climate) table and ICCs."""
    summary = study.summary()
    measure = config.measure or next(iter(study.roles.scales), None)
    if measure is None:
        raise ConfigError("the roles define no scale; name the agreement measure in [agreement] measure = \"...\".")
    table = climate_table(study, measure, null=config.null)
    icc = study_icc(study, measure)
    per_session = agreement_per_session(table)
    results = {"rows": summary.n_rows, "communities": summary.n_communities, "participants": summary.n_participants,
               "organizations": summary.n_organizations, "sessions": summary.n_sessions,
               "late_joiners": summary.late_joiners, "dropouts": summary.dropouts,
               "missed_sessions": summary.missed_sessions, "agreement_measure": measure,
               "agreement_median_per_session": {str(s): {k: float(v) for k, v in row.items()}
                                                for s, row in per_session.iterrows()},
               "icc": {str(r.session): {"icc1": float(r.icc1), "icc2": float(r.icc2)} for r in icc.itertuples()}}
    reliability = study.reliability()
    return {"summary": summary, "measure": measure, "agreement": table, "agreement_per_session": per_session,
            "icc": icc, "reliability": reliability[reliability["session"] == "all"].drop(columns="session"),
            "results": results}


def _model_provenance(section: ModelSection) -> dict[str, Any]:
    model, entry, spec = section.model, section.entry, section.model.spec.to_dict()
    return {"model": model.name, "label": entry.label, "spec_path": str(entry.spec_path), "spec": spec,
            "spec_hash": model.spec.hash(), "data_hash": model.data_hash(),
            "priors": {k: p.to_dict() for k, p in model.priors.items()}, "sampler": spec["sampler"],
            "variants": {v.label: {"options": v.options, "sampler": v.sampler} for v in entry.variants},
            "fit": f"fits/{entry.key}.nc"}


def write_json(path: Path, content: Any) -> None:
    """Canonical JSON (sorted keys, full float precision, NaN as null): equal content, equal bytes."""
    path.write_text(json.dumps(_finite(content), indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def _finite(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _finite(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_finite(v) for v in tree]
    return None if isinstance(tree, float) and not np.isfinite(tree) else tree
