"""The analyst notebooks in notebooks/ run from top to bottom and compute sensible numbers.

Each notebook is executed in memory (the committed file is never written) with
``LCBAYES_NOTEBOOK_QUICK=1`` in the kernel's environment, which makes every notebook use short
chains (and the power notebook a 2-design x 2-replicate plan). The working directory is
notebooks/, as when a reader opens them in Jupyter. Each notebook ends with a cell tagged
``checks`` that prints a small JSON dict; the tests below parse it and check numbers that
would be wrong if a model, a derived quantity or a summary broke. For some notebooks the test
appends a cell (``INTERVALS``) that prints, from the kernel's variables, 90% intervals the
notebook computes and the values needed to judge them, so that estimates are checked against
their own uncertainty rather than against fixed wide bands.

The kernel is "python3": jupyter_client runs it with this interpreter (``sys.executable``),
so no user-level kernelspec is needed; the test asserts that the kernel ran in this
environment.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import nbclient  # dev dependencies: nbclient, nbformat, ipykernel (the kernel)
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_climate_growth.ipynb", "02_consensus_emergence.ipynb", "03_knowledge_sharing.ipynb",
         "04_power_planning.ipynb"]
CELL_TIMEOUT = 600   # seconds per cell
PROBE = "import json, sys\nprint(json.dumps({'kernel_prefix': sys.prefix}))"
# Appended before PROBE: numbers the notebook computes but its checks cell does not print.
# 02: the 90% HDI of the learning effect of strength at average consensus (eta_average[strength]; es_lo, es_hi: the
# interval the notebook's interpretation prints) and its true value. 03: the 90% HDI of
# gamma_support from the notebook's summary table, the model's (latent) within-person SD of
# support and the simulator's.
INTERVALS = {
    "02_consensus_emergence.ipynb": (
        "import json\n"
        "print(json.dumps({'strength_effect_hdi': [es_lo, es_hi],\n"
        "                  'strength_effect_truth': float(truth['eta_strength'])}))"),
    "03_knowledge_sharing.ipynb": (
        "import json\n"
        "print(json.dumps({'gamma_support_hdi': [float(summary.loc['gamma_support', q])\n"
        "                                        for q in ('hdi90_lb', 'hdi90_ub')],\n"
        "                  'sigma_within_support': float(post['sigma_within'].sel(predictor='support').mean()),\n"
        "                  'sd_within_support_truth': float(truth['sd_within'][0])}))"),
}


def run_notebook(name: str) -> tuple[dict, str]:
    """Execute a copy of notebook ``name``; return its ``checks`` dict (with the ``INTERVALS``
    numbers added) and the kernel's sys.prefix."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    if name in INTERVALS:
        nb.cells.append(nbformat.v4.new_code_cell(INTERVALS[name]))
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()   # raises CellExecutionError (with the cell and traceback) if a cell fails
    tagged = [c for c in nb.cells if "checks" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected one cell tagged 'checks', found {len(tagged)}"
    checks = _json_output(tagged[0])
    if name in INTERVALS:
        extra = _json_output(nb.cells[-2])
        assert not set(extra) & set(checks), "INTERVALS keys must not shadow the notebook's checks"
        checks.update(extra)
    return checks, _json_output(nb.cells[-1])["kernel_prefix"]


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
    # Item measurement error is in the likelihood, so alpha1 refers to the latent spread, as the simulator's does.
    # Recorded (quick settings, seeds 2026, 7, 11): mean -0.095 to -0.096, posterior SD about 0.027, 90% HDI
    # about -0.14 to -0.055. The truth must lie in the 90% HDI, the mean within 0.04 (1.5 posterior SDs) of it,
    # and the HDI must be narrower than 0.15 (the prior, N(0, 0.5 / sd_s), gives a width near 1).
    lo, hi = c["alpha_time_hdi"]
    assert lo < c["alpha_time_truth"] < hi, (lo, hi)
    assert abs(c["alpha_time_mean"] - c["alpha_time_truth"]) < 0.04, c["alpha_time_mean"]
    assert hi - lo < 0.15, (lo, hi)
    assert sorted(c["loo_models"]) == ["emergence", "no_emergence"]
    assert _finite(*c["loo_elpd"]) and c["loo_elpd"][0] >= c["loo_elpd"][1]
    # r*_wg(J) = 1 - (V + theta) / sigma_E^2 per community x session (posterior means). The truth gives 0.45 to 0.63
    # (with the estimated theta 0.41), the fit 0.50 to 0.65; above 0.75 would mean a J-inflated index (r_wg(J) is
    # about 0.85 here) or theta left out, below 0.3 a variance part counted twice.
    lo, hi = c["consensus_rstar_range"]
    assert -1 < lo <= hi < 1 and 0.3 < lo and hi < 0.75, (lo, hi)
    assert c["rwg_j_ge_rstar"] and c["transient_le_consensus"]
    assert _probability(c["consensus_sd_coverage"]) and c["consensus_sd_coverage"] > 0.6   # recorded 0.93
    # P(consensus reached by session t): a survival curve per community, non-decreasing over sessions. At the
    # default .70 no community gets there (true r*_wg(J) at most 0.63; the ceiling set by stable member differences
    # and item error is about 0.67); at .60 (the notebook's sensitivity analysis) some do and some do not (true values
    # 0.48 to 0.63 at the last session), and a lower threshold is reached at least as often.
    strict, lenient = c["p_consensus_by"], c["p_consensus_by_60"]
    for table in (strict, lenient):
        assert len(table) == 20 and all(len(row) == 6 and _probability(row) for row in table)
        assert all(a <= b + 1e-12 for row in table for a, b in zip(row[:-1], row[1:], strict=True)), table
    assert all(a <= b + 1e-12 for r, s in zip(strict, lenient, strict=True) for a, b in zip(r, s, strict=True))
    assert max(row[-1] for row in strict) < 0.5 and _probability(c["share_reached_last"])
    assert max(row[-1] for row in lenient) > 0.5 > min(row[-1] for row in lenient)
    # Random responders (climate items uniform over 1..5): the item error variance is about sigma_E^2, the latent
    # variance about 0, so r*_wg(J) is near 0 (recorded -0.02 to -0.005) and no community reaches consensus (the old
    # index put such groups at 0.75).
    lo, hi = c["random_rstar_range"]
    assert -0.15 < lo <= hi < 0.15, (lo, hi)
    assert _probability(c["random_p_reached_max"]) and c["random_p_reached_max"] < 0.05
    # Learning per point of latent strength at average consensus (eta_average[strength]; truth eta_strength = 0.6;
    # latent strength carries no item error, so no attenuation is expected). Recorded 90% HDIs (quick settings,
    # seeds 2026, 7, 11): -0.75 to 1.53, -0.83 to 1.40, -0.89 to 1.80, width 2.2 to 2.7: 20 communities inform it
    # weakly. The prior SD of eta_centred[strength] is 1.95 (0.5 sd_L / sd_S), a 90% width near 6.4, so a learning
    # part that the data did not inform would give a width of 6 or more; 3.5 fails if that information is lost.
    lo, hi = c["strength_effect_hdi"]
    assert _finite(c["strength_effect_mean"], lo, hi) and lo <= c["strength_effect_mean"] <= hi
    assert lo < c["strength_effect_truth"] < hi, (lo, hi)
    assert hi - lo < 3.5, (lo, hi)
    # Learning per unit of log consensus_sd at average strength (truth -0.5): recorded 90% HDIs -1.8 to 1.9,
    # -1.5 to 2.1, -1.2 to 2.1 (width about 3.5; the prior alone, SD 3.5, gives about 11).
    lo, hi = c["consensus_effect_hdi"]
    assert lo < c["consensus_effect_truth"] < hi and hi - lo < 6, (lo, hi)


def check_knowledge_sharing(c: dict) -> None:
    assert _finite(c["max_r_hat"]) and c["max_r_hat"] < 1.2
    # gamma_support is the support effect averaged over sessions, gamma0 + mean f = 0.3 - 0.1 = 0.2 in the example.
    # The model carries the items' measurement error, so it targets the latent effect (the former model, without it,
    # targeted 0.21 x reliability ~0.14): the truth must lie in the 90% HDI, and the HDI must be narrower than 0.45
    # (the prior, N(0, 2.6), would give a width near 8.5). The within SD of support is the latent 0.5, not the
    # observed ~0.6 that includes item error.
    lo, hi = c["gamma_support_hdi"]
    assert _finite(c["gamma_support_mean"], lo, hi) and lo <= c["gamma_support_mean"] <= hi
    assert lo < c["gamma_support_truth"] < hi, (lo, hi, c["gamma_support_truth"])
    assert hi - lo < 0.45, (lo, hi)
    assert 0.38 < c["sigma_within_support"] < 0.6, c["sigma_within_support"]
    assert 0.0 < c["within_support"] < 0.5 and 0.0 < c["between_support"] < 0.6
    assert _probability(c["p_stable"])
    assert c["support_effect_rows"] == 3 * 6                               # 3 self-efficacy levels x 6 sessions
    assert sorted(c["loo_models"]) == ["full", "no spiral"] and _finite(*c["loo_elpd"])
    assert c["pareto_k_good"] > 0.9                                        # whole participants left out
    # the trend contrast: without session effects the shared decline inflates the support effect
    with_trends, without = c["trend_gamma"]
    assert without - with_trends > 0.05, c["trend_gamma"]


def check_power_planning(c: dict) -> None:
    assert c["result_rows"] == c["cells"] * c["replicates"] * c["targets"]
    assert c["summary_replicates"] == [c["replicates"]]
    assert c["summary_rows"] == c["cells"] * 3                         # 3 target x rule combinations per cell
    for lower, power, upper in zip(c["power_lower"], c["power"], c["power_upper"], strict=True):
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


# Hand computations of what the library provides: an HDI or summary computed with ArviZ directly (the library's
# summarize, mean_hdi, hdi_table and describe give them) or a helper that re-implements one.
HAND_COMPUTED = ("az.hdi(", "az.summary(", "def mean_hdi", "def interval")


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_use_the_library_and_open_and_close_as_readers_need(name: str):
    """No re-implementation of a library function in the code; the first cell says what the reader will learn, a
    section before the checks says how to report the result, and the stored outputs come from the full settings."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        assert not [p for p in HAND_COMPUTED if p in cell.source], (name, i, cell.source[:200])
    assert "**What you will learn.**" in nb.cells[0].source
    headings = [c.source.split("\n")[0] for c in nb.cells if c.cell_type == "markdown"]
    assert any(h.startswith("## ") and h.endswith("How to report it") for h in headings)
    settings = "".join(o.get("text", "") for o in code[0].get("outputs", []))
    assert settings.startswith("full settings"), f"{name}: stored outputs are not from the full settings"
