"""The analyst notebooks in notebooks/ run from top to bottom and compute sensible numbers.

Each notebook is executed in memory (the committed file is never written) with
``LCBAYES_NOTEBOOK_QUICK=1`` in the kernel's environment, which makes every notebook use short
chains (and the power notebook a 2-design x 2-replicate plan). The working directory is
notebooks/, as when a reader opens them in Jupyter. Each notebook ends with a cell tagged
``checks`` that prints a small JSON dict; the tests below parse it and check numbers that
would be wrong if a model, a derived quantity or a summary broke.

The kernel is "python3": jupyter_client runs it with this interpreter (``sys.executable``),
so no user-level kernelspec is needed; the test asserts that the kernel ran in this
environment.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import nbclient      # dev dependencies: nbclient, nbformat, ipykernel (the kernel)
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_climate_growth.ipynb", "02_consensus_emergence.ipynb", "03_knowledge_sharing.ipynb",
         "04_power_planning.ipynb"]
CELL_TIMEOUT = 600   # seconds per cell
PROBE = "import json, sys\nprint(json.dumps({'kernel_prefix': sys.prefix}))"


def run_notebook(name: str) -> tuple[dict, str]:
    """Execute a copy of notebook ``name``; return its ``checks`` dict and the kernel's sys.prefix."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()   # raises CellExecutionError (with the cell and traceback) if a cell fails
    tagged = [c for c in nb.cells if "checks" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'checks', found {len(tagged)}"
    return _json_output(tagged[0]), _json_output(nb.cells[-1])["kernel_prefix"]


def _json_output(cell) -> dict:
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")
    return json.loads(text[text.index("{"):])


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _probability(values) -> bool:
    values = values if isinstance(values, list) else [values]
    return all(_finite(v) and 0.0 <= v <= 1.0 for v in values)


def check_climate_growth(c: dict) -> None:
    assert _finite(c["max_r_hat"]) and c["max_r_hat"] < 1.2           # short chains, but not stuck ones
    assert c["divergences"] == 0
    # the example study was drawn with beta1 = 0.05 per session (data/example_truth.json)
    assert abs(c["beta_time_mean"] - c["beta_time_truth"]) < 0.03
    assert c["p_growth"] > 0.95
    assert c["variance_share_sum"] == pytest.approx(1.0, abs=1e-9)
    assert c["ppc_rows"] == c["n_rows"] == 1140


def check_consensus_emergence(c: dict) -> None:
    assert _finite(c["max_r_hat"]) and c["max_r_hat"] < 1.2
    assert _probability(c["p_emergence"]) and c["p_emergence"] > 0.9  # the example has emergence (alpha1 = -0.08)
    # attenuated towards 0 by item measurement error (see the notebook), but clearly negative
    assert c["alpha_time_truth"] - 0.05 < c["alpha_time_mean"] < -0.02
    assert sorted(c["loo_models"]) == ["emergence", "no_emergence"]
    assert _finite(*c["loo_elpd"]) and c["loo_elpd"][0] >= c["loo_elpd"][1]
    assert _probability(c["consensus_rwg_range"]) and _probability(c["p_reached_range"])
    assert _probability(c["p_reached_strict_range"])
    assert c["p_reached_strict_range"][0] <= c["p_reached_range"][0]   # a stricter threshold is reached less often
    assert -1.0 < c["strength_effect_mean"] < 2.0                       # truth 0.6 (learning per point of strength)


def check_knowledge_sharing(c: dict) -> None:
    assert _finite(c["max_r_hat"]) and c["max_r_hat"] < 1.2
    assert abs(c["gamma_support_mean"] - c["gamma_support_truth"]) < 0.3   # truth 0.3, attenuated by measurement error
    assert 0.0 < c["within_support"] < 0.5 and 0.0 < c["between_support"] < 0.6
    assert _probability(c["p_stable"])
    assert c["support_effect_rows"] == 3 * 6                               # 3 self-efficacy levels x 6 sessions
    assert sorted(c["loo_models"]) == ["full", "no spiral"] and _finite(*c["loo_elpd"])


def check_power_planning(c: dict) -> None:
    assert c["result_rows"] == c["cells"] * c["replicates"] * c["targets"]
    assert c["summary_replicates"] == [c["replicates"]]
    assert c["summary_rows"] == c["cells"] * 3                         # 3 target x rule combinations per cell
    for lower, power, upper in zip(c["power_lower"], c["power"], c["power_upper"]):
        assert _probability([lower, power, upper]) and lower <= power <= upper
    assert _probability(c["failed_diagnostics"]) and _probability(c["coverage"])
    assert abs(c["alpha_time_mean_estimate"] - c["alpha_time_truth"]) < 0.06


CHECKS = {
    "01_climate_growth.ipynb": check_climate_growth,
    "02_consensus_emergence.ipynb": check_consensus_emergence,
    "03_knowledge_sharing.ipynb": check_knowledge_sharing,
    "04_power_planning.ipynb": check_power_planning,
}


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LCBAYES_NOTEBOOK_QUICK", "1")   # inherited by the kernel
    monkeypatch.setenv("TMPDIR", str(tmp_path))         # the power notebook's results folder lands here
    before = (NOTEBOOKS / name).read_bytes()
    checks, kernel_prefix = run_notebook(name)
    assert kernel_prefix == sys.prefix, "the kernel ran in another Python environment than the tests"
    assert checks["quick"] is True
    CHECKS[name](checks)
    assert (NOTEBOOKS / name).read_bytes() == before, "executing the notebook modified the committed file"
