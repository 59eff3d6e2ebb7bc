"""Provenance of a report: versions, hashes of every input, seeds and sampler settings."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from lcbayes.report.config import ReportConfig, sha256_file

PACKAGES = ["lcbayes", "pymc", "pytensor", "arviz", "nutpie", "numpyro", "jax", "numpy", "scipy", "pandas",
            "xarray", "matplotlib"]


def package_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in PACKAGES}


def git_state(where: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git work tree holding ``where`` (None outside one)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(config: ReportConfig, models: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a report built from ``config``; ``models`` maps each model's key to
    its fitted model's provenance (spec, spec hash, data hash, sampler, variants)."""
    inputs = {"config": config.path, "data": config.data, "roles": config.roles}
    return {"title": config.title, "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": package_versions(), "seed": config.seed, "prior_predictive_draws": config.prior_draws,
            **{key: {"path": str(path), "sha256": sha256_file(path)} for key, path in inputs.items()},
            "models": models, "git": git_state(config.path.parent), "power": None if config.power is None else {
                "path": str(config.power), "summary_sha256": sha256_file(config.power / "summary.csv")}}
