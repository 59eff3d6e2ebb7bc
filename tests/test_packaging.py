"""The wheel is a complete install: built from this checkout, installed into a fresh virtual environment (its
dependencies taken from the test environment, lcbayes only from the wheel), it writes the example project and runs
`check` and a tiny fit from it, outside the repository."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_names_every_subpackage():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {"lcbayes"} | {f"lcbayes.{p}" for p in find_packages(str(ROOT / "lcbayes"))}
    assert found <= set(listed), sorted(found - set(listed))


def test_the_wheel_runs_the_example_outside_the_repository(tmp_path):
    clean = {**os.environ, "PYTHONPATH": ""}           # nothing of this checkout on the path

    def call(*args: str | Path, cwd: Path = tmp_path) -> str:
        done = subprocess.run([str(a) for a in args], cwd=cwd, env=clean, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
        return done.stdout

    call(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
         ROOT)
    wheel = next((tmp_path / "dist").glob("lcbayes-*.whl"))
    venv.create(tmp_path / "env", with_pip=False)
    python = tmp_path / "env" / "bin" / "python"
    purelib = call(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    # the test environment's packages serve as dependencies (a path entry: its .pth files, such as the editable
    # install of this checkout, are not read)
    (Path(purelib) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    call(sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib, wheel)
    where = call(python, "-c", "import lcbayes; print(lcbayes.__file__)")
    assert where.startswith(purelib), where                     # lcbayes from the wheel, not from the checkout
    lcbayes = [python, "-c", "import sys, lcbayes; sys.argv[0] = 'lcbayes'; lcbayes.main()"]
    call(*lcbayes, "example", "project")
    project = tmp_path / "project"
    assert (project / "reports" / "example.toml").exists() and (project / "models" / "knowledge_sharing.toml").exists()
    assert "valid" in call(*lcbayes, "check", "data/example_study.csv", "--roles", "data/example_roles.toml",
                           cwd=project)
    fitted = call(*lcbayes, "fit", "models/climate_growth.toml", "--data", "data/example_study.csv", "--roles",
                  "data/example_roles.toml", "--backend", "nutpie-jax", "--chains", "1", "--draws", "30", "--tune",
                  "30", "--no-progress", "--allow-unconverged", cwd=project)
    assert "climate_growth fitted" in fitted and (project / "fits" / "climate_growth.nc").exists()
