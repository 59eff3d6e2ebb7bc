"""``lcbayes report CONFIG --verify DIR``: compare a rerun with an earlier report.

First the earlier report's own integrity: its manifest records the SHA-256 of its ``results.json`` and ``report.html``,
and a file that no longer matches fails verification (it was changed after the report was written). Then the rerun:
same configuration, data, seed and package versions must give byte-identical ``results.json``. Otherwise every field of
either file is compared, and every difference gets a verdict:

- present in one run only (a deleted or added field): fails;
- fields that do not depend on posterior draws (the data and agreement section, the prior predictive check, which
  draws from the seeded prior, titles, verdicts, ranks and flags such as ``converged``): must be equal;
- posterior means and SDs: within Z x the Monte Carlo error, taken from the *rerun* (sqrt(2) x its MCSE, both runs
  having the same error), so that an earlier file cannot widen its own tolerance; interval bounds likewise, with the
  MCSE of a 5% or 95% quantile, about 2.1 SD / sqrt(tail ESS);
- other draw-dependent numbers (ESS, MCSE, R-hat, LOO, predictive p-values, sensitivities): within tolerances wide
  enough for Monte Carlo noise (:data:`TOLERANCES`).

Changed inputs (configuration, data, roles, spec, priors, seeds, package versions) are reported as such: a rerun of a
changed analysis does not verify."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcbayes.diagnostics import hdi_columns
from lcbayes.errors import ConfigError
from lcbayes.report.config import sha256_file
from lcbayes.tables import HDI

OUTPUTS = ("results.json", "report.html")   # the files whose SHA-256 a manifest records

Z = 4.0   # with a few hundred compared means, P(any |z| > 4 | same posterior) is about 1-2%
JUDGED = {"mean": "mcse_mean", "sd": "mcse_sd"}
QUANTILE_MCSE = 2.1        # MCSE of a 5% / 95% quantile in SDs per sqrt(tail ESS) (normal draws)
COLUMNS = ["old", "new", "difference", "mcse", "z", "ok"]
# (absolute, relative) tolerance of draw-dependent numbers other than means, SDs and interval bounds, by field name
TOLERANCES: dict[str, tuple[float, float]] = {
    "ess_bulk": (0.0, 0.5), "ess_tail": (0.0, 0.5), "min_ess_bulk": (0.0, 0.5), "min_ess_tail": (0.0, 0.5),
    "mcse_mean": (0.0, 0.5), "mcse_sd": (0.0, 0.5), "r_hat": (0.02, 0.0), "max_r_hat": (0.02, 0.0),
    "min_ebfmi": (0.1, 0.0), "divergences": (2.0, 0.25), "elpd_loo": (1.0, 0.002), "se": (0.5, 0.02),
    "p_loo": (1.0, 0.05), "elpd": (1.0, 0.002), "p": (1.0, 0.05), "elpd_diff": (1.0, 0.05), "dse": (0.5, 0.05),
    "weight": (0.15, 0.0),
    "p_value": (0.1, 0.0), "replicated_mean": (0.0, 0.05), "observed": (0.0, 0.0), "prior": (0.02, 0.0),
    "likelihood": (0.02, 0.0), "pareto_k_above_0.7": (2.0, 0.0)}
DRAW_SECTIONS = ("parameters", "derived", "diagnostics", "posterior_predictive", "loo", "comparison",
                 "comparison_estimates", "prior_sensitivity")


@dataclass(frozen=True)
class Verification:
    """Outcome of a comparison: ``identical`` (byte-equal results.json), the changed inputs,
    and a table of differing numbers with the verdict per number."""

    identical: bool
    changed_inputs: list[str]
    differences: pd.DataFrame

    @property
    def passed(self) -> bool:
        return self.identical or (not self.changed_inputs and bool(self.differences["ok"].fillna(True).all()))

    def __str__(self) -> str:
        if self.identical:
            return "verified: results.json is byte-identical to the earlier run."
        lines = ["inputs differ from the earlier run: " + "; ".join(self.changed_inputs)] if self.changed_inputs else []
        judged = self.differences.dropna(subset=["ok"])
        failed = judged[~judged["ok"].astype(bool)]
        lines.append(f"{len(self.differences)} numbers differ; {len(judged)} judged against Monte Carlo error, "
                     f"{len(failed)} beyond {Z:g} combined MCSE.")
        if len(failed):
            with pd.option_context("display.width", 200, "display.max_rows", 60):
                lines.append(failed.drop(columns="ok").to_string(float_format=lambda v: f"{v:.4g}"))
        lines.append("verified: the rerun agrees within Monte Carlo error." if self.passed
                     else "NOT verified: the rerun does not reproduce the earlier report.")
        return "\n".join(lines)


def read_outputs(folder: Path) -> tuple[bytes, dict[str, Any]]:
    """A report's results.json (bytes) and manifest, after checking that results.json and report.html are the files
    the manifest recorded (:func:`tampered`)."""
    name = "manifest.json"
    try:
        results, manifest = (folder / "results.json").read_bytes(), json.loads((folder / name).read_text())
        name = "results.json"
        json.loads(results)
    except FileNotFoundError as err:
        raise ConfigError(f"'{folder}' holds no earlier report ({err.filename} missing). "
                          "Fix: pass the output folder of an earlier `lcbayes report` run.") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"'{folder / name}' is not valid JSON: the report was changed or damaged. NOT verified. "
                          "Fix: verify against an untouched copy of the report.") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"'{folder / 'manifest.json'}' is not a report manifest (a JSON object). NOT verified. "
                          "Fix: verify against an untouched copy of the report.")
    changed = tampered(folder, manifest)
    if changed:
        raise ConfigError(f"'{folder}': {' and '.join(changed)} changed after the report was written (the SHA-256 in "
                          "its manifest.json no longer matches). NOT verified. Fix: verify against an untouched copy "
                          "of the report.")
    return results, manifest


def tampered(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Output files of the report in ``folder`` whose SHA-256 differs from the manifest's record (or that have no
    record: a manifest without ``outputs`` predates the check)."""
    recorded = manifest.get("outputs")
    if not isinstance(recorded, dict):
        return ["the manifest's record of its outputs"]
    return [name for name in OUTPUTS
            if not (folder / name).is_file() or sha256_file(folder / name) != recorded.get(name)]


def verify(old: tuple[bytes, dict[str, Any]], new: tuple[bytes, dict[str, Any]]) -> Verification:
    """Compare an earlier run (results.json bytes, manifest) with a new one."""
    (old_bytes, old_manifest), (new_bytes, new_manifest) = old, new
    if old_bytes == new_bytes:
        return Verification(True, [], pd.DataFrame(columns=COLUMNS))
    try:
        earlier = json.loads(old_bytes)
    except json.JSONDecodeError:
        raise ConfigError("the earlier results.json is not valid JSON. NOT verified.") from None
    return Verification(False, changed_inputs(old_manifest, new_manifest), differences(earlier, json.loads(new_bytes)))


def changed_inputs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Inputs that differ between two manifests (package versions included)."""
    out = [f"{what} SHA-256" for what in ("config", "data", "roles")
           if old.get(what, {}).get("sha256") != new[what]["sha256"]]
    if old.get("seed") != new["seed"]:
        out.append(f"seed {old.get('seed')} -> {new['seed']}")
    for key in sorted(set(old.get("models", {})) | set(new["models"])):
        a, b = old.get("models", {}).get(key), new["models"].get(key)
        if a is None or b is None:
            out.append(f"model '{key}' {'added' if a is None else 'removed'}")
            continue
        out += [f"{key}: {part}" for part in ("spec_hash", "data_hash", "priors", "variants")
                if a.get(part) != b.get(part)]
    versions = [f"{p} {old.get('packages', {}).get(p)} -> {v}"
                for p, v in new["packages"].items() if old.get("packages", {}).get(p) != v]
    if versions:
        out.append("package versions (" + ", ".join(versions) + ")")
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> pd.DataFrame:
    """Every field that differs between two results, with its verdict (see the module docstring)."""
    a, b = dict(_leaves(old)), dict(_leaves(new))
    rows = {}
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x == y and path in a and path in b:
            continue
        numbers = [v for v in (x, y) if isinstance(v, (int, float)) and not isinstance(v, bool)]  # JSON numbers
        difference = numbers[1] - numbers[0] if len(numbers) == 2 else None
        row: dict[str, Any] = dict.fromkeys(COLUMNS) | {"old": x, "new": y, "difference": difference}
        row["ok"] = False          # absent from one run, a sampling-free field, or a type change
        if path in a and path in b and difference is not None and _draw_dependent(path):
            row["mcse"], row["z"], row["ok"] = _judge(path, difference, float(numbers[0]), b)
        elif path in a and path in b and _draw_dependent(path) and isinstance(x, str) and isinstance(y, str) \
                and path.split("/")[2:3] == ["comparison_estimates"]:
            row["ok"] = True       # display text of draw-dependent numbers, each judged in its own right
        rows[path] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)


def _draw_dependent(path: str) -> bool:
    """Whether a results field comes from posterior draws (models/<key>/<section>/..., section in DRAW_SECTIONS) and
    is a number rather than a verdict."""
    parts = path.split("/")
    return parts[0] == "models" and len(parts) > 2 and parts[2] in DRAW_SECTIONS and parts[-1] not in (
        "converged", "passed", "rank", "diagnosis", "verdict", "unit", "n")


def _judge(path: str, difference: float, old: float, new: dict[str, Any]) -> tuple[float | None, float | None, bool]:
    """(MCSE used, z, ok) for a draw-dependent number; the MCSE comes from the rerun's fields."""
    parent, _, stat = path.rpartition("/")
    section = path.split("/")[2]
    if section in ("parameters", "derived") and stat in JUDGED:
        se = np.sqrt(2) * float(new.get(f"{parent}/{JUDGED[stat]}") or 0.0)
    elif section in ("parameters", "derived") and stat in hdi_columns(HDI):
        sd, ess = float(new.get(f"{parent}/sd") or 0.0), float(new.get(f"{parent}/ess_tail") or 0.0)
        se = np.sqrt(2) * QUANTILE_MCSE * sd / np.sqrt(ess) if ess > 0 else 0.0
    else:
        absolute, relative = TOLERANCES.get(stat, (0.0, 0.05))
        return None, None, bool(abs(difference) <= absolute + relative * abs(old))
    z = abs(difference) / se if se > 0 else np.inf
    return se, z, bool(z <= Z)


def _leaves(tree: Any, prefix: str = ""):
    """(path, value) for every leaf of nested dicts; paths like models/x/parameters/beta/mean."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, tree
