"""``lcbayes report CONFIG --verify DIR``: compare a rerun with an earlier report.

Same configuration, data, seed and package versions must give byte-identical ``results.json``. Otherwise every number is
compared: posterior means and SDs against their Monte Carlo error (|difference| <= Z x the combined MCSE of both runs),
numbers that do not depend on sampling (the data and agreement section) exactly; the rest (interval bounds, ESS, LOO,
sensitivities and the verdicts drawn from them) is listed without a verdict. Changed inputs (configuration, data, roles,
spec, priors, seeds) are reported as such: a rerun of a changed analysis does not verify."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lcbayes.errors import ConfigError

Z = 4.0   # with a few hundred compared means, P(any |z| > 4 | same posterior) is about 1-2%
JUDGED = {"mean": "mcse_mean", "sd": "mcse_sd"}
COLUMNS = ["old", "new", "difference", "mcse", "z", "ok"]


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
    """An earlier report's results.json (bytes) and manifest."""
    try:
        return (folder / "results.json").read_bytes(), json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"'{folder}' holds no earlier report ({err.filename} missing). "
                          "Fix: pass the output folder of an earlier `lcbayes report` run.") from None


def verify(old: tuple[bytes, dict[str, Any]], new: tuple[bytes, dict[str, Any]]) -> Verification:
    """Compare an earlier run (results.json bytes, manifest) with a new one."""
    (old_bytes, old_manifest), (new_bytes, new_manifest) = old, new
    if old_bytes == new_bytes:
        return Verification(True, [], pd.DataFrame(columns=COLUMNS))
    return Verification(False, changed_inputs(old_manifest, new_manifest),
                        differences(json.loads(old_bytes), json.loads(new_bytes)))


def changed_inputs(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Inputs that differ between two manifests (package versions included)."""
    out = [f"{what} SHA-256" for what in ("config", "data", "roles") if old[what]["sha256"] != new[what]["sha256"]]
    if old["seed"] != new["seed"]:
        out.append(f"seed {old['seed']} -> {new['seed']}")
    for key in sorted(set(old["models"]) | set(new["models"])):
        a, b = old["models"].get(key), new["models"].get(key)
        if a is None or b is None:
            out.append(f"model '{key}' {'added' if a is None else 'removed'}")
            continue
        out += [f"{key}: {part}" for part in ("spec_hash", "data_hash", "priors", "variants") if a[part] != b[part]]
    versions = [f"{p} {old['packages'].get(p)} -> {v}"
                for p, v in new["packages"].items() if old["packages"].get(p) != v]
    if versions:
        out.append("package versions (" + ", ".join(versions) + ")")
    return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> pd.DataFrame:
    """Every value that differs, with its verdict where one applies (None: listed only)."""
    a, b = dict(_leaves(old)), dict(_leaves(new))
    rows = {}
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        numbers = [v for v in (x, y) if isinstance(v, (int, float)) and not isinstance(v, bool)]  # JSON numbers
        difference = numbers[1] - numbers[0] if len(numbers) == 2 else None
        row: dict[str, Any] = dict.fromkeys(COLUMNS) | {"old": x, "new": y, "difference": difference}
        parent, _, stat = path.rpartition("/")
        if path.startswith("data/"):
            row["ok"] = False            # no sampling involved: must be equal
        elif difference is not None and stat in JUDGED and parent.split("/")[2:3] in (["parameters"], ["derived"]):
            se = np.hypot(a.get(f"{parent}/{JUDGED[stat]}") or 0.0, b.get(f"{parent}/{JUDGED[stat]}") or 0.0)
            z = abs(difference) / se if se > 0 else np.inf
            row["mcse"], row["z"], row["ok"] = se, z, z <= Z
        rows[path] = row
    return pd.DataFrame.from_dict(rows, orient="index", columns=COLUMNS)


def _leaves(tree: Any, prefix: str = ""):
    """(path, value) for every leaf of nested dicts; paths like models/x/parameters/beta/mean."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _leaves(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, tree
