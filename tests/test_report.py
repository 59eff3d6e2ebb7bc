"""Reproducible reports: outputs, byte-identical reruns, --verify, power-scaling, and the HTML
in a real browser (headless Chromium)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from lcbayes.cli import app
from lcbayes.errors import ConfigError
from lcbayes.models import ClimateGrowth
from lcbayes.plots import overlapping_text
from lcbayes.report import html
from lcbayes.report.build import build_report
from lcbayes.report.config import ReportConfig
from lcbayes.report.sensitivity import log_prior, prior_sensitivity
from lcbayes.report.verify import Verification, differences, verify

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "data" / "report_small.toml"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIGURE_TEXT: dict[str, list] = {}   # figure of the test report -> its overlapping texts (filled by ``reports``)
runner = CliRunner()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The small report built twice with the same seed: once directly, once through
    `lcbayes report --verify` against the first."""
    first = tmp_path_factory.mktemp("first")
    embed = html.figure

    def measured(fig):                      # every figure the report embeds, checked against the layout rule
        titles = [t for t in (fig._suptitle, *(ax.title for ax in fig.axes)) if t is not None and t.get_text()]
        FIGURE_TEXT[f"{len(FIGURE_TEXT) + 1}: {titles[0].get_text() if titles else ''}"] = overlapping_text(fig)
        return embed(fig)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(html, "figure", measured)
        build_report(ReportConfig.from_path(CONFIG), first, log=lambda line: None)
    second = tmp_path_factory.mktemp("second")
    result = runner.invoke(app, ["report", str(CONFIG), "--out", str(second), "--verify", str(first)])
    return first, second, result


def test_same_seed_gives_byte_identical_results_and_verify_passes(reports):
    first, second, result = reports
    converged = json.loads((second / "results.json").read_text())["models"]["climate_growth"]["diagnostics"]
    assert result.exit_code == (0 if converged["converged"] else 3), result.output   # 3: written but not converged
    assert re.search(r"^\[00:00:\d\d\] validating ", result.output, re.M)          # each step timed
    assert "Sampling: [" not in result.output                                      # PyMC's own lines left out
    assert (first / "results.json").read_bytes() == (second / "results.json").read_bytes()
    assert "byte-identical" in result.output
    assert f"report: {second / 'report.html'}" in result.output


def test_verify_flags_a_changed_config(reports, tmp_path):
    first, _, _ = reports
    text = CONFIG.read_text().replace("seed = 7", "seed = 8")
    text = re.sub(r'"\.\./\.\./([^"]+)"', lambda m: f'"{ROOT / m.group(1)}"', text)   # absolute paths in tmp
    text = text.replace('"power_summary"', f'"{CONFIG.parent / "power_summary"}"')
    changed = tmp_path / "changed.toml"
    changed.write_text(text)
    result = runner.invoke(app, ["report", str(changed), "--out", str(tmp_path / "out"), "--verify", str(first)])
    assert result.exit_code == 1, result.output
    assert "config SHA-256" in result.output and "seed 7 -> 8" in result.output
    assert "NOT verified" in result.output
    table = pd.read_csv(tmp_path / "out" / "verify.csv", index_col=0)
    judged = table.dropna(subset=["z"])
    assert len(judged) > 20                       # means and SDs compared against their MCSE
    assert (judged["z"] < 6).mean() > 0.9         # another seed: differences are Monte Carlo noise


def test_outputs_manifest_and_results(reports):
    first, _, _ = reports
    manifest = json.loads((first / "manifest.json").read_text())
    data = ROOT / "data" / "example_study.csv"
    assert manifest["data"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert manifest["config"]["sha256"] == hashlib.sha256(CONFIG.read_bytes()).hexdigest()
    assert manifest["seed"] == 7
    model = manifest["models"]["climate_growth"]
    assert model["sampler"]["seed"] == 7 and model["sampler"]["backend"] == "nutpie-jax"
    assert model["variants"] == {"no random slopes": {"options": {"random_slopes": False}, "sampler": {}}}
    for package in ("pymc", "arviz", "nutpie", "lcbayes"):
        assert manifest["packages"][package]
    assert (first / "fits" / "climate_growth.nc").is_file()
    power = ROOT / "tests" / "data" / "power_summary" / "summary.csv"
    assert manifest["power"]["summary_sha256"] == hashlib.sha256(power.read_bytes()).hexdigest()

    results = json.loads((first / "results.json").read_text())
    assert results["data"]["rows"] == 1140 and results["data"]["communities"] == 20
    fitted = results["models"]["climate_growth"]
    beta = fitted["parameters"]["beta_time[time]"]
    truth = json.loads((ROOT / "data" / "example_truth.json").read_text())["climate"]["beta1"]
    assert beta["hdi90_lb"] - 3 * beta["mcse_mean"] < truth < beta["hdi90_ub"] + 3 * beta["mcse_mean"]
    assert set(fitted["comparison"]) == {"Climate growth", "no random slopes"}
    side = fitted["comparison_estimates"]
    assert set(side["beta_time[time]"]) == {"Climate growth", "no random slopes"}
    assert side["tau_community[slope]"]["no random slopes"] == ""          # not in the variant without slopes
    assert re.fullmatch(r"-?[\d.e-]+ \[-?[\d.e-]+, -?[\d.e-]+\]", side["beta_time[time]"]["Climate growth"])
    prior_check = fitted["prior_predictive"]["measures"]["climate"]
    assert prior_check["share_outside"] <= 0.10 and prior_check["verdict"] == "ok"   # natural-scale default priors
    assert fitted["prior_predictive"]["passed"]
    assert fitted["posterior_predictive"]["mean"]["p_value"] == pytest.approx(0.5, abs=0.45)
    shares = [v["mean"] for k, v in fitted["derived"].items() if re.fullmatch(r"variance_share\[\w+, 1\]", k)]
    assert len(shares) == 4
    assert sum(shares) == pytest.approx(1.0, abs=1e-9)    # variance shares of one session add up to 1


def test_html_is_self_contained_and_follows_barg(reports):
    html = (reports[0] / "report.html").read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html)
    images = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(images) >= 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "<script" not in html
    for heading in ("Summary", "Data and design", "Model and priors", "Prior predictive check",
                    "Convergence diagnostics",
                    "Posterior summaries and derived quantities", "Posterior predictive check",
                    "Model comparison (LOO)", "Prior sensitivity", "What to conclude", "Power analysis",
                    "Reproducing this report"):
        assert heading in html, heading
    # short chains in the test config: the report must say the fit failed its checks, and every conclusion is
    # provisional, with its caveats beneath it
    assert "NOT converged" in html
    conclude = html[html.index("What to conclude</h3>"):html.index('<h2 id="power">')]
    conclusions = re.findall(r"<li>(?!Caveat: )", conclude)      # the items that are not caveats
    assert conclude.count("<li><strong>Provisional.</strong> ") == len(conclusions) >= 5
    assert "Caveat: the fit did not pass every convergence check" in conclude
    assert "Caveat: not converged: " in conclude          # the elements that failed, named


def test_numbers_in_html_tables_are_formatted_for_reading(reports):
    """Estimates to 3 significant digits, R-hat to 3 decimals, ESS and counts whole: no decimal number in an HTML
    table has more than 4 significant digits (results.json keeps full precision)."""
    html = (reports[0] / "report.html").read_text()
    cells = re.findall(r"<td>([^<]*)</td>", html)
    decimals = [c.strip() for c in cells if re.fullmatch(r"-?\d+\.\d+", c.strip())]
    assert len(decimals) > 100
    too_long = [c for c in decimals if len(c.lstrip("-").replace(".", "").lstrip("0")) > 4]
    assert too_long == []
    priors = html[html.index("Priors ("):html.index("Prior predictive check")]
    assert not re.search(r"\d\.\d{5,}", priors)                       # prior arguments too


@pytest.mark.parametrize("name", ["climate_growth", "consensus_emergence", "knowledge_sharing"])
def test_every_model_has_its_equations_as_mathml(name, reports):
    """Each model's equations are written once, in LaTeX in its module docstring, and reach the report as MathML
    (display blocks and inline symbols), with no leftover LaTeX or reST markup."""
    import importlib
    import inspect

    from lcbayes.report.equations import docstring_html

    rendered = docstring_html(inspect.getdoc(importlib.import_module(f"lcbayes.models.{name}")))
    assert rendered.count('display="block"') >= 2 and rendered.count("<math") >= 10
    text = re.sub(r"<math.*?</math>", "", rendered, flags=re.S)
    assert "$" not in text and "\\" not in text and "``" not in text and ":mod:" not in text
    html = (reports[0] / "report.html").read_text()
    section = html[html.index("1 Model and priors"):html.index("Options as fitted")]
    assert section.count('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">') >= 2


def test_the_summary_at_the_top_gives_design_verdicts_and_headlines(reports):
    html = (reports[0] / "report.html").read_text()
    summary = html[html.index('<h2 id="summary">'):html.index("<nav>")]
    results = json.loads((reports[0] / "results.json").read_text())
    assert f"{results['data']['communities']} communities" in summary
    assert f"{results['data']['participants']} participants" in summary
    row = re.search(r'<tr><td><a href="#climate_growth">.*?</tr>', summary, re.S).group(0)
    assert re.findall(r"<td>(passed|FAILED)</td>", row)[0] == "FAILED"    # short chains: not converged
    assert "Provisional" in row and "per unit of time" in row            # the first conclusion, marked provisional


def test_number_formats():
    from lcbayes.report.numbers import column_format, significant

    assert [significant(v) for v in (3.51234, 0.0123456, 123.456, 12345.6, 0.0, 2.0, -0.5, 1.23e-5, float("nan"))] == \
        ["3.51", "0.0123", "123", "12346", "0", "2", "-0.500", "1.23e-05", "–"]
    values = pd.Series([1.00412, 1.0])
    assert column_format("r_hat", values)(1.00412) == "1.004"
    assert column_format("ess_bulk", values)(1234.6) == "1235"
    assert column_format("mean", values)(0.123456) == "0.123"
    assert column_format("n", pd.Series([3, 4]))(3) == "3"


# Text boxes of the page that must not overlap (elements that contain one another are exempt): a sweep over the
# visible ones sorted by their top edge, more than a pixel of overlap each way counts.
OVERLAPPING_BOXES_JS = """() => {
  const els = Array.from(document.querySelectorAll('h1,h2,h3,h4,p,li,figcaption,th,td,pre,summary,img,math'))
    .filter(e => e.checkVisibility({visibilityProperty: true}))     // not inside a closed <details>
    .map(e => [e, e.getBoundingClientRect()]).filter(([e, r]) => r.width > 0 && r.height > 0)
    .sort((a, b) => a[1].top - b[1].top);
  const out = [];
  for (let i = 0; i < els.length; i++) {
    const [a, ra] = els[i];
    for (let j = i + 1; j < els.length && els[j][1].top < ra.bottom - 1; j++) {
      const [b, rb] = els[j];
      if (a.contains(b) || b.contains(a)) continue;
      const x = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const y = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (x > 1 && y > 1) out.push(a.tagName + ': ' + a.textContent.slice(0, 40) + ' / ' + b.tagName + ': '
                                   + b.textContent.slice(0, 40));
    }
  }
  return out;
}"""
# Each section of the report: from its heading to the next h2, as (id, top, height) in page pixels.
SECTIONS_JS = """() => {
  const heads = Array.from(document.querySelectorAll('h2[id]'));
  const end = document.body.scrollHeight;
  return heads.map((h, i) => {
    const top = h.getBoundingClientRect().top + window.scrollY;
    const next = i + 1 < heads.length ? heads[i + 1].getBoundingClientRect().top + window.scrollY : end;
    return [h.id, top, next - top];
  });
}"""


def test_report_renders_in_headless_chromium(reports):
    """A real browser loads the report with no console errors and no network requests; no figure is shown wider
    than its natural width, no two text boxes overlap, and a screenshot of each section at 1400 px width is written
    to ``screenshots/`` in the report's temp folder (for a reader to look at)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is not installed: apt-get install chromium (.ci/run does this)"
    page_path = reports[0] / "report.html"
    shots = reports[0] / "screenshots"
    shots.mkdir()
    messages, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri(), wait_until="load")
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        n_images = page.evaluate("document.images.length")
        upscaled = page.evaluate("Array.from(document.images).filter(i => i.naturalWidth < i.clientWidth)"
                                 ".map(i => i.alt)")
        overlapping = page.evaluate(OVERLAPPING_BOXES_JS)
        sections = page.evaluate(SECTIONS_JS)
        page_width = page.evaluate("document.documentElement.scrollWidth")
        for key, top, height in sections:
            page.screenshot(path=str(shots / f"{key}.png"), full_page=True,
                            clip={"x": 0, "y": top, "width": 1400, "height": max(height, 1)})
        browser.close()
    assert messages == []
    assert requests == [page_path.as_uri()]        # the file itself; images are inline data
    assert n_images >= 5 and broken == 0
    assert upscaled == []                          # every figure shown at most at its natural width
    assert overlapping == []
    assert page_width == 1400                      # nothing wider than the window: wide tables scroll
    assert [key for key, _, _ in sections][:3] == ["summary", "data", "climate_growth"]
    for key, _, height in sections:
        with (shots / f"{key}.png").open("rb") as fh:
            head = fh.read(24)
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") == 1400, key
        assert int.from_bytes(head[20:24], "big") >= min(height, 100), key


def test_report_figures_have_no_overlapping_text(reports):
    """The layout rule (:func:`lcbayes.plots.overlapping_text`) on every figure of the test report: the fixture
    measured each figure as the report embedded it."""
    assert len(FIGURE_TEXT) >= 5
    assert {title: clashes for title, clashes in FIGURE_TEXT.items() if clashes} == {}


def test_a_comparison_variant_may_set_its_own_sampler_settings(tmp_path):
    config = (ROOT / "reports" / "example.toml").read_text().replace('"../', f'"{ROOT}/')
    (tmp_path / "r.toml").write_text(config)
    entry = ReportConfig.from_path(tmp_path / "r.toml").models[2]
    trends, spiral = (next(v for v in entry.variants if word in v.label) for word in ("trends", "spiral"))
    assert entry.variant_spec(trends)["sampler"]["draws"] == 3000 and entry.variant_spec(spiral)["sampler"]["draws"] \
        == entry.spec["sampler"]["draws"] == 1500
    assert entry.variant_spec(trends)["sampler"]["seed"] == entry.spec["sampler"]["seed"]    # the report's seed
    bad = config.replace("sampler = { draws = 3000 }", "sampler = { draws = 3000, seed = 1 }")
    (tmp_path / "bad.toml").write_text(bad)
    with pytest.raises(ConfigError, match="sets a sampler seed"):
        ReportConfig.from_path(tmp_path / "bad.toml")


# ---------------------------------------------------------------- verification logic
def _results(mean: float, mcse: float) -> dict:
    parameter = {"mean": mean, "mcse_mean": mcse, "r_hat": 1.0}
    return {"data": {"rows": 10}, "models": {"m": {"parameters": {"b": parameter}}}}


def _manifest(**changes) -> dict:
    m = {"config": {"sha256": "c"}, "data": {"sha256": "d"}, "roles": {"sha256": "r"}, "seed": 1,
         "packages": {"pymc": "5.28.5"},
         "models": {"m": {"spec_hash": "s", "data_hash": "h", "priors": {}, "variants": {}}}}
    m.update(changes)
    return m


def _run(results: dict, manifest: dict) -> tuple[bytes, dict]:
    return json.dumps(results, sort_keys=True).encode(), manifest


def test_verify_judges_differences_against_monte_carlo_error():
    old = _run(_results(1.0, 0.01), _manifest())
    assert verify(old, old).identical
    small = verify(old, _run(_results(1.02, 0.01), _manifest(packages={"pymc": "5.28.6"})))
    assert not small.identical and small.differences.loc["models/m/parameters/b/mean", "ok"]
    assert small.changed_inputs == ["package versions (pymc 5.28.5 -> 5.28.6)"]
    assert not small.passed                      # other versions: reported as a changed input
    same_inputs = Verification(False, [], small.differences)
    assert same_inputs.passed                    # 1.4 combined MCSE: Monte Carlo noise
    large = verify(old, _run(_results(1.10, 0.01), _manifest()))
    assert large.differences.loc["models/m/parameters/b/mean", "z"] == pytest.approx(0.1 / np.hypot(0.01, 0.01))
    assert not large.passed and "NOT verified" in str(large)


def test_verify_requires_sampling_free_numbers_to_be_equal():
    old = _results(1.0, 0.01)
    new = json.loads(json.dumps(old))
    new["data"]["rows"] = 11
    table = differences(old, new)
    assert table.loc["data/rows", "ok"] == False  # noqa: E712 (a numpy bool)


# ---------------------------------------------------------------- configuration errors
@pytest.mark.review_case(88, 97, 98, 100)
@pytest.mark.parametrize("text, message", [
    ('data = "x.csv"\nroles = "r.toml"\nmodles = []', "Did you mean 'models'"),
    ('roles = "../../data/example_roles.toml"', "names no data"),
    ('data = "missing.csv"\nroles = "../../data/example_roles.toml"', "missing.csv' not found"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"', "lists no models"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"\n'
     '[[models]]\nspec = "../../models/climate_growth.toml"\n[[models]]\nspec = "../../models/climate_growth.toml"',
     "distinct name"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"\n'
     '[[models]]\nspec = "../../models/climate_growth.toml"\nsampler = { seed = 3 }', "report's seed"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"\n'
     '[[models]]\nspec = "../../models/climate_growth.toml"\nname = "../../x"', "cannot name its fit file"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"\nmodels = "spec.toml"',
     "models must be a list of [[models]] tables"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"\n[prior_predictive]\ndraws = 0',
     "draws must be a whole number of at least 10"),
    ('data = "../../data/example_study.csv"\nroles = "../../data/example_roles.toml"\n[prior_predictive]\n'
     'draws = "many"', "got 'many'"),
])
def test_bad_configurations_are_explained(tmp_path, text, message):
    folder = tmp_path / "a" / "b"
    folder.mkdir(parents=True)
    for name in ("data", "models"):
        shutil.copytree(ROOT / name, tmp_path / name)
    path = folder / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        ReportConfig.from_path(path)


# ---------------------------------------------------------------- power-scaling sensitivity
@pytest.fixture(scope="module")
def small_fit():
    from lcbayes.data.simulate import Design, simulate_study
    from lcbayes.data.study import Study

    sim = simulate_study(Design(communities=8, participants=6, sessions=4), seed=3)
    study = Study.from_frame(sim.table, sim.roles)
    sampler = dict(backend="nutpie-jax", chains=2, draws=400, tune=400, seed=1)
    vague = ClimateGrowth(study, {"outcome": "climate", "options": {"random_slopes": False, "organization": False}})
    vague.fit(**sampler)
    truth = sim.truth.climate.beta1
    tight = ClimateGrowth(study, {"outcome": "climate", "options": {"random_slopes": False, "organization": False},
                                  "priors": {"beta_time": {"dist": "Normal", "mu": truth + 0.5, "sigma": 0.02}}})
    tight.fit(**sampler)
    return vague, tight


def test_log_prior_matches_scipy(small_fit):
    model = small_fit[0]
    post, lp, priors = model.idata.posterior, log_prior(model), model.priors
    sigma = post["sigma"].values
    assert np.allclose(lp["sigma"], stats.halfnorm.logpdf(sigma, scale=priors["sigma"].params["sigma"]))
    tau = post["tau_community"].values
    expected = stats.halfnorm.logpdf(tau, scale=np.asarray(priors["tau_community"].params["sigma"])).sum(-1)
    assert np.allclose(lp["tau_community"], expected)
    beta = priors["beta_intercept"].params
    assert np.allclose(lp["beta_intercept"],
                       stats.norm.logpdf(post["beta_intercept"].values, beta["mu"], beta["sigma"]))


def test_power_scaling_flags_a_conflicting_prior_only(small_fit):
    vague, tight = (prior_sensitivity(m) for m in small_fit)
    assert vague.loc["beta_time[time]", "diagnosis"] == ""
    assert tight.loc["beta_time[time]", "diagnosis"] == "prior-data conflict"
    assert tight.loc["beta_time[time]", "prior"] > 0.05 and vague.loc["beta_time[time]", "prior"] < 0.05


# ---------------------------------------------------------------- output folders
@pytest.mark.review_case(85, 87, 99)
def test_report_folders_are_claimed_before_anything_is_written(tmp_path):
    from lcbayes.report.build import MARKER, claim

    claim(tmp_path / "new")                                    # new: fine
    (tmp_path / "empty").mkdir()
    claim(tmp_path / "empty")                                  # empty: fine
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my notes")
    with pytest.raises(ConfigError, match="'notes.txt'.*Fix: choose a new or empty folder"):
        claim(tmp_path / "mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        claim(tmp_path / "file")
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / MARKER).write_text("")
    (tmp_path / "earlier" / "report.html").write_text("old")
    claim(tmp_path / "earlier")                                # an earlier report's: fine


@pytest.mark.review_case(89, 96)
def test_a_failed_or_interrupted_report_leaves_the_earlier_one_untouched(tmp_path, monkeypatch):
    """The folder is built beside its destination: an interrupt during a model fit leaves the earlier report as it was
    and no partial folder behind."""
    import lcbayes.report.build as build
    from lcbayes.report.build import MARKER

    out = tmp_path / "report"
    out.mkdir()
    (out / MARKER).write_text("")
    (out / "results.json").write_text("earlier")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("stopped")

    monkeypatch.setattr(build, "analyse_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_report(ReportConfig.from_path(CONFIG), out, log=lambda line: None)
    assert (out / "results.json").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]          # no .building folder left


@pytest.mark.review_case(93, 94)
def test_verify_never_reruns_into_the_audited_folder(reports, tmp_path, monkeypatch):
    import lcbayes.report.build as build

    targets = []
    monkeypatch.setattr(build, "build_report", lambda config, out, log: targets.append(out) or out / "report.html")
    audited = tmp_path / "theirs"
    shutil.copytree(reports[0], audited)
    result = runner.invoke(app, ["report", str(CONFIG), "--out", str(audited), "--verify", str(audited)])
    assert result.exit_code == 2 and "the rerun would replace it" in result.output and not targets
    runner.invoke(app, ["report", str(CONFIG), "--verify", str(audited)])
    assert targets == [tmp_path / "theirs-rerun"]           # not the configuration's out


def _tamper(results: dict, how: str) -> str:
    """Change a finished report's results in one of the ways an audit must catch; returns the field to be named."""
    model = results["models"]["climate_growth"]
    name = next(iter(model["parameters"]))
    if how == "converged":
        model["diagnostics"]["converged"] = not model["diagnostics"]["converged"]
        return "models/climate_growth/diagnostics/converged"
    if how == "hdi":
        model["parameters"][name]["hdi90_ub"] += 0.5
        return f"models/climate_growth/parameters/{name}/hdi90_ub"
    if how == "deleted":
        del model["parameters"]
        return f"models/climate_growth/parameters/{name}/mean"
    if how == "mean_and_mcse":
        model["parameters"][name]["mean"] += 0.5
        model["parameters"][name]["mcse_mean"] = 1.0          # an earlier file cannot widen its own tolerance
        return f"models/climate_growth/parameters/{name}/mean"
    results["title"] = "Another title"
    return "title"


@pytest.mark.review_case(92)
@pytest.mark.parametrize("damage, message", [
    ("results", "results.json' is not valid JSON"), ("manifest", "manifest.json' is not valid JSON"),
    ("packages", None)])
def test_verify_reads_the_earlier_report_before_rerunning(reports, tmp_path, damage, message):
    """A damaged earlier report is named before the (long) rerun starts; a manifest without package versions is
    compared without them."""
    from lcbayes.report.build import write_json
    from lcbayes.report.config import sha256_file
    from lcbayes.report.verify import changed_inputs, read_outputs

    copy = tmp_path / "copy"
    shutil.copytree(reports[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    if damage == "results":
        (copy / "results.json").write_text("{cut sho")
        manifest["outputs"]["results.json"] = sha256_file(copy / "results.json")
        write_json(copy / "manifest.json", manifest)
    elif damage == "manifest":
        (copy / "manifest.json").write_text("[1, 2")
    else:
        del manifest["packages"]
        write_json(copy / "manifest.json", manifest)
    if message is None:
        assert verify(read_outputs(copy), read_outputs(reports[1])).passed
        rerun = json.loads((reports[1] / "manifest.json").read_text())
        assert any(line.startswith("package versions (") for line in changed_inputs(manifest, rerun))
        return
    with pytest.raises(ConfigError, match=message):
        read_outputs(copy)


@pytest.mark.review_case(91)
@pytest.mark.parametrize("how", ["converged", "hdi", "deleted", "mean_and_mcse", "title"])
def test_verify_catches_a_tampered_report(reports, tmp_path, monkeypatch, how):
    """Each tampering fails twice over: the manifest's SHA-256 of results.json no longer matches; and if the tamperer
    updates that too, the comparison with the rerun names the changed field."""
    import lcbayes.report.build as build
    from lcbayes.report.build import write_json
    from lcbayes.report.config import sha256_file
    from lcbayes.report.verify import read_outputs

    first, second, _ = reports
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    results = json.loads((copy / "results.json").read_text())
    field = _tamper(results, how)
    write_json(copy / "results.json", results)
    with pytest.raises(ConfigError, match="results.json changed after the report was written"):
        read_outputs(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["outputs"]["results.json"] = sha256_file(copy / "results.json")
    write_json(copy / "manifest.json", manifest)
    outcome = verify(read_outputs(copy), read_outputs(second))
    assert not outcome.passed and field in str(outcome)
    assert outcome.differences.loc[field, "ok"] == False  # noqa: E712 (a numpy bool)
    # the command, with the rerun stood in for by the fixture's second run
    monkeypatch.setattr(build, "build_report",
                        lambda config, out, log: shutil.copytree(second, out) and out / "report.html")
    result = runner.invoke(app, ["report", str(CONFIG), "--out", str(tmp_path / "rerun"), "--verify", str(copy)])
    assert result.exit_code == 1 and field in result.output and "NOT verified" in result.output


def test_fit_clock_numbers_the_fits_and_estimates_the_time_left(monkeypatch):
    from lcbayes.report import model_section

    now = iter([0.0, 600.0, 1500.0])                 # report start, start of fit 2, start of fit 3 (seconds)
    monkeypatch.setattr(model_section.time, "monotonic", lambda: next(now))
    lines: list[str] = []
    clock = model_section.FitClock(4, lines.append)
    for what in ("a: fitting", "a: refitting variant", "b: fitting"):
        clock.fitting(what)
    assert lines == ["a: fitting [fit 1 of 4]",
                     "a: refitting variant [fit 2 of 4; about 30 min left at the pace so far]",   # 600 s x 3 fits
                     "b: fitting [fit 3 of 4; about 25 min left at the pace so far]"]             # 750 s x 2 fits
