#!/usr/bin/env bash
# Smoke job on Python 3.13: the core install (no extras: the default Numba back end) writes the example project, checks
# its data and fits model A briefly, then loads the saved fit back. Run by .ci/run after the test suite (3.12).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
rm -rf .venv313
PYENV_VERSION=3.13 python3 -m venv .venv313
.venv313/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 13), sys.version'
.venv313/bin/pip install -q -e .
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$repo/.venv313/bin/lcbayes" example project
cd project
"$repo/.venv313/bin/lcbayes" check data/example_study.csv --roles data/example_roles.toml
"$repo/.venv313/bin/lcbayes" fit models/climate_growth.toml --data data/example_study.csv \
    --roles data/example_roles.toml --chains 2 --draws 50 --tune 50 --no-progress --allow-unconverged
"$repo/.venv313/bin/python" -c 'from lcbayes.models import BayesModel; m = BayesModel.load("fits/climate_growth.nc"); print("loaded", m.name, dict(m.fitted()["posterior"].sizes))'
echo "smoke (Python 3.13): passed"
