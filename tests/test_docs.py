"""The documentation lives in the repository and names every parameter the models have.

- No file of the repository points to the design notes outside it (the former steering
  file next to the repository, which readers of the code and of reports do not have).
- ``docs/models.md`` names, as inline code, every population parameter, every prior and
  every sampled or stored variable of each model, built with options that switch every part
  on. Building a model creates its PyMC graph without sampling, so this is fast.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lcbayes.data.simulate import Design, simulate_study
from lcbayes.data.study import Study
from lcbayes.models import create

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "models.md"
# built from parts so that this file does not contain the strings it searches for
FORBIDDEN = ("DESIGN" + ".md", ".." + "/shared")

# one spec per model with every optional part switched on
SPECS = {
    "climate_growth": {
        "model": "climate_growth", "outcome": "climate",
        "options": {"traits": ["lgo"], "time_varying": ["support"], "organization": True, "random_slopes": True,
                    "location": "help_seeking"},
    },
    "consensus_emergence": {
        "model": "consensus_emergence", "outcome": "climate",
        "options": {"traits": ["lgo"], "time_varying": ["support"], "organization": True, "random_slopes": True,
                    "participant_slopes": True, "emergence": True, "composition": ["lgo_sd", "n_organizations"],
                    "scale_traits": ["psych_safety"], "community_scale": True, "learning": "learning",
                    "own_perception": True, "location": "help_seeking", "scale": "help_giving"},
    },
    "knowledge_sharing": {
        "model": "knowledge_sharing", "outcome": "sharing",
        "options": {"organization": True, "location": "help_seeking"},   # every switch is on by default
    },
}


def repository_files() -> list[Path]:
    """Files git knows or would add (tracked, plus untracked files that are not ignored)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in repository_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "tests" or not path.is_file():
            continue
        text = path.read_bytes()
        offenders += [f"{relative}: {s}" for s in FORBIDDEN if s.encode() in text]
    assert not offenders, "files cite notes that are not in the repository (point to docs/models.md):\n" + \
        "\n".join(offenders)


@pytest.fixture(scope="module")
def study() -> Study:
    sim = simulate_study(Design(communities=4, participants=5, sessions=4, predictor_missing=0.1), seed=7)
    return Study.from_frame(sim.table, sim.roles)


@pytest.fixture(scope="module")
def documented() -> set[str]:
    """Every inline-code span of docs/models.md."""
    return set(re.findall(r"`([^`\n]+)`", DOC.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_parameter_and_prior_is_documented(name: str, study: Study, documented: set[str]):
    model = create(SPECS[name], study)
    assert name in documented
    missing = {
        "population": [p for p in model.population if p not in documented],
        "priors": [p for p in model.priors if p not in documented],
    }
    assert not any(missing.values()), f"{name}: not named in docs/models.md: {missing}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_stored_variable_is_documented(name: str, study: Study, documented: set[str]):
    """Free variables and deterministics of the graph: the names a reader meets in the
    posterior (per-cell deterministics that are recomputed rather than stored included)."""
    graph = create(SPECS[name], study).model
    names = [v.name for v in graph.free_RVs + graph.deterministics]
    assert names, name
    missing = [n for n in names if n not in documented]
    assert not missing, f"{name}: graph variables not named in docs/models.md: {missing}"


def test_the_documentation_site_builds_strictly(tmp_path):
    """`mkdocs build --strict` (offline): every page, link and API reference entry resolves."""
    import os
    import sys

    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    reference = (tmp_path / "site" / "reference" / "models" / "index.html").read_text()
    assert "ClimateGrowth" in reference and "default_priors" in reference
